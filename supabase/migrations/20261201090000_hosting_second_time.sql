-- Hosting Automator: what happens the second time. Server and Matomo health shared by every
-- function instance (a broken server or a wrong Matomo token pauses claims, not sites), attempts
-- refunded when a failure is not the site's, bounded analytics retries, no second worker beside a
-- valid lease, one request per statement from the trigger and one per sweep.

-- How many Matomo registrations of an active site failed in a row (reset when it gets its id).
alter table public.sites
  add column if not exists hosting_analytics_failures integer not null default 0;
comment on column public.sites.hosting_analytics_failures is
  'failed Matomo registrations in a row; at the limit hosting_next_attempt_at becomes infinity (given up)';

-- Health of what the function depends on, keyed by target ('ssh:user@host:port',
-- 'matomo:<base url>'). `credential` is a digest of the settings that failed (never a secret):
-- a corrected setting has another digest, so the pause no longer applies to it.
create table if not exists public.hosting_health (
  target text primary key,
  credential text,
  paused_until timestamptz,
  failures integer not null default 0 check (failures >= 0),
  last_code text,
  last_error text,
  updated_at timestamptz not null default now()
);
comment on table public.hosting_health is
  'Hosting Automator: a failing SSH server or Matomo pauses claims until paused_until (backoff)';

-- The concurrency cap the function last claimed with, so the sweeper knows the free capacity.
create table if not exists public.hosting_runtime (
  id boolean primary key default true check (id),
  max_concurrent integer not null check (max_concurrent > 0),
  updated_at timestamptz not null default now()
);

alter table public.hosting_health enable row level security;
alter table public.hosting_runtime enable row level security;
revoke all on table public.hosting_health, public.hosting_runtime from anon, authenticated;
grant select, insert, update, delete on table public.hosting_health, public.hosting_runtime
  to service_role;

-- Due work, redefined: an active row is due for analytics only when this product made it active
-- (it has a document root); an active row set by hand, or before this product, is never due.
-- 'infinity' in hosting_next_attempt_at means "given up": never due until an operator retries.
create or replace function public.hosting_due_work(s public.sites)
returns text
language sql
stable
set search_path = ''
as $$
  select case
    when s.status_dns is distinct from 'active' then null
    when s.status_hosting = 'pending'
      and (s.hosting_next_attempt_at is null or s.hosting_next_attempt_at <= now()) then 'provision'
    when s.status_hosting = 'provisioning' and s.hosting_lease_until <= now() then 'provision'
    when s.status_hosting = 'active' and s.matomo_site_id is null and s.hosting_doc_root is not null
      and (s.hosting_lease_until is null or s.hosting_lease_until <= now())
      and (s.hosting_next_attempt_at is null or s.hosting_next_attempt_at <= now()) then 'analytics'
  end
$$;

-- Why a row has no due work now, from the database's clock: the one place the skip reasons are
-- decided (the function reports it as is).
create or replace function public.hosting_skip_reason(s public.sites)
returns text
language sql
stable
set search_path = ''
as $$
  select case
    when s.id is null then 'NOT_FOUND'
    when public.hosting_due_work(s) is not null then 'AT_CAPACITY'
    when s.status_dns is distinct from 'active' then 'DNS_NOT_ACTIVE'
    when s.hosting_lease_until > now() then 'IN_PROGRESS'
    when s.status_hosting = 'failed' then 'FAILED'
    when s.status_hosting = 'active' and s.matomo_site_id is null and s.hosting_doc_root is not null
      and s.hosting_next_attempt_at = 'infinity' then 'ANALYTICS_GAVE_UP'
    when s.status_hosting = 'active' and s.matomo_site_id is null and s.hosting_doc_root is not null
      then 'NOT_DUE'
    when s.status_hosting = 'active' then 'ALREADY_ACTIVE'
    else 'NOT_DUE'
  end
$$;

create or replace function public.hosting_site_json(s public.sites)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select jsonb_build_object(
    'site_id', s.id, 'domain', s.domain, 'status_dns', s.status_dns,
    'status_hosting', s.status_hosting, 'attempt', s.hosting_attempts,
    'site_user', s.hosting_site_user, 'doc_root', s.hosting_doc_root,
    'matomo_site_id', s.matomo_site_id, 'error', s.hosting_error,
    'lease_until', s.hosting_lease_until, 'next_attempt_at', s.hosting_next_attempt_at,
    'updated_at', s.hosting_updated_at, 'due', public.hosting_due_work(s),
    'skip_reason', case when public.hosting_due_work(s) is null
                        then public.hosting_skip_reason(s) end)
$$;

create or replace function public.hosting_job_json(s public.sites, p_kind text)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select jsonb_build_object(
    'kind', p_kind, 'site_id', s.id, 'domain', s.domain, 'attempt', s.hosting_attempts,
    'claim_token', s.hosting_claim_token, 'lease_until', s.hosting_lease_until,
    'site_user', s.hosting_site_user, 'doc_root', s.hosting_doc_root,
    'matomo_site_id', s.matomo_site_id, 'analytics_failures', s.hosting_analytics_failures)
$$;

-- A health row's pause, if it applies to the given credential digest.
create or replace function public.hosting_paused_until(p_target text, p_credential text)
returns timestamptz
language sql
stable
set search_path = ''
as $$
  select h.paused_until from public.hosting_health h
  where h.target = p_target and h.paused_until > now()
    and h.credential is not distinct from p_credential
$$;

drop function if exists public.hosting_record_event(uuid, integer, text, text, text, text, integer);

-- Record one step's event. New: with the claim's token it also renews the lease (p_lease_seconds
-- from now), so a lease only has to outlast one step, and a worker that vanished (or whose
-- hand-back failed) holds its capacity slot for at most that long.
create or replace function public.hosting_record_event(
  p_site_id uuid,
  p_attempt integer,
  p_step text,
  p_outcome text,
  p_code text default null,
  p_message text default null,
  p_duration_ms integer default null,
  p_claim_token uuid default null,
  p_lease_seconds integer default null
)
returns bigint
language plpgsql
set search_path = ''
as $$
declare
  v_id bigint;
begin
  insert into public.hosting_events (site_id, attempt, step, outcome, code, message, duration_ms)
  values (p_site_id, coalesce(p_attempt, 0), p_step, p_outcome, p_code,
          left(p_message, 2000), greatest(p_duration_ms, 0))
  returning id into v_id;
  if p_claim_token is not null and p_lease_seconds > 0 then
    update public.sites s
    set hosting_lease_until = greatest(s.hosting_lease_until,
                                       now() + make_interval(secs => p_lease_seconds))
    where s.id = p_site_id and s.hosting_claim_token = p_claim_token;
  end if;
  return v_id;
end
$$;

drop function if exists public.hosting_claim(uuid, integer, integer, integer, integer, integer);

-- Claim due work atomically (see the first version's notes). New: no provisioning claim while the
-- SSH target is paused for these settings, no analytics claim while Matomo is; the answer says
-- which pauses apply ("paused": {"ssh", "matomo"}). The cap is remembered for the sweeper.
create or replace function public.hosting_claim(
  p_site_id uuid default null,
  p_limit integer default 1,
  p_max_concurrent integer default 3,
  p_lease_seconds integer default 600,
  p_max_attempts integer default 8,
  p_analytics_lease_seconds integer default 120,
  p_ssh_target text default null,
  p_ssh_credential text default null,
  p_matomo_target text default null,
  p_matomo_credential text default null
)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_busy integer;
  v_room integer;
  v_jobs jsonb;
  v_analytics jsonb;
  v_site jsonb;
  v_ssh_paused timestamptz;
  v_matomo_paused timestamptz;
begin
  if p_limit < 1 or p_max_concurrent < 1 or p_lease_seconds < 1 or p_max_attempts < 1
     or p_analytics_lease_seconds < 1 then
    raise exception 'hosting_claim: every limit must be a positive number'
      using errcode = '22023';
  end if;

  -- Claims run one at a time across every function instance, so the cap below is exact.
  perform pg_advisory_xact_lock(7243106511);

  insert into public.hosting_runtime (id, max_concurrent) values (true, p_max_concurrent)
  on conflict (id) do update set max_concurrent = excluded.max_concurrent, updated_at = now()
  where public.hosting_runtime.max_concurrent <> excluded.max_concurrent;

  -- One CloudPanel server and one Matomo: a health row of another target, or of other settings
  -- than these, is from an earlier configuration — the operator changed it, so its pause is over.
  -- Analytics retries pushed back by a Matomo pause that ends this way are due again at once.
  if p_ssh_target is not null then
    delete from public.hosting_health h
    where h.target like 'ssh:%'
      and (h.target <> p_ssh_target or h.credential is distinct from p_ssh_credential);
  end if;
  if p_matomo_target is not null then
    with lifted as (
      delete from public.hosting_health h
      where h.target like 'matomo:%'
        and (h.target <> p_matomo_target or h.credential is distinct from p_matomo_credential)
      returning h.paused_until
    )
    update public.sites s set hosting_next_attempt_at = now()
    from lifted l
    where s.status_hosting = 'active' and s.matomo_site_id is null
      and s.hosting_next_attempt_at = l.paused_until;
  end if;
  v_ssh_paused := public.hosting_paused_until(p_ssh_target, p_ssh_credential);
  v_matomo_paused := public.hosting_paused_until(p_matomo_target, p_matomo_credential);

  with given_up as (
    update public.sites s
    set status_hosting = 'failed',
        hosting_error = format('LEASE_EXPIRED: no result within the lease after %s attempts',
                               s.hosting_attempts),
        hosting_lease_until = null, hosting_claim_token = null, hosting_updated_at = now()
    where s.status_hosting = 'provisioning' and s.hosting_lease_until <= now()
      and s.hosting_attempts >= p_max_attempts
    returning s.id, s.hosting_attempts
  )
  insert into public.hosting_events (site_id, attempt, step, outcome, code, message)
  select g.id, g.hosting_attempts, 'finish', 'error', 'LEASE_EXPIRED',
         format('no result within the lease after %s attempts', g.hosting_attempts)
  from given_up g;

  select count(*) into v_busy
  from public.sites s
  where s.status_hosting = 'provisioning' and s.hosting_lease_until > now();
  v_room := case when v_ssh_paused is null
                 then least(p_limit, greatest(p_max_concurrent - v_busy, 0)) else 0 end;

  with picked as (
    select s.id, s.status_hosting as was
    from public.sites s
    where public.hosting_due_work(s) = 'provision' and (p_site_id is null or s.id = p_site_id)
    order by public.hosting_due_since(s), s.id
    limit v_room
    for update of s skip locked
  ), claimed as (
    update public.sites s
    set status_hosting = 'provisioning',
        hosting_attempts = s.hosting_attempts + 1,
        hosting_lease_until = now() + make_interval(secs => p_lease_seconds),
        hosting_claim_token = gen_random_uuid(),
        hosting_next_attempt_at = null,
        hosting_updated_at = now()
    from picked p
    where s.id = p.id
    returning s as site, p.was
  ), logged as (
    insert into public.hosting_events (site_id, attempt, step, outcome, code, message)
    select (c.site).id, (c.site).hosting_attempts, 'claim', 'ok',
           case when c.was = 'provisioning' then 'RECLAIMED' else 'CLAIMED' end,
           case when c.was = 'provisioning' then 'the previous lease expired' end
    from claimed c
  )
  select coalesce(jsonb_agg(public.hosting_job_json(c.site, 'provision')), '[]'::jsonb)
  into v_jobs
  from claimed c;

  with picked as (
    select s.id
    from public.sites s
    where v_matomo_paused is null
      and public.hosting_due_work(s) = 'analytics' and (p_site_id is null or s.id = p_site_id)
    order by public.hosting_due_since(s), s.id
    limit p_limit
    for update of s skip locked
  ), claimed as (
    update public.sites s
    set hosting_lease_until = now() + make_interval(secs => p_analytics_lease_seconds),
        hosting_claim_token = gen_random_uuid(),
        hosting_next_attempt_at = null,
        hosting_updated_at = now()
    from picked p
    where s.id = p.id
    returning s as site
  )
  select coalesce(jsonb_agg(public.hosting_job_json(c.site, 'analytics')), '[]'::jsonb)
  into v_analytics
  from claimed c;

  v_jobs := v_jobs || v_analytics;

  if p_site_id is not null and jsonb_array_length(v_jobs) = 0 then
    select public.hosting_site_json(s) into v_site from public.sites s where s.id = p_site_id;
    if v_site is null then
      v_site := null;
    elsif v_site ->> 'due' = 'provision' and v_ssh_paused is not null then
      v_site := v_site || jsonb_build_object('skip_reason', 'SERVER_PAUSED');
    elsif v_site ->> 'due' = 'analytics' and v_matomo_paused is not null then
      v_site := v_site || jsonb_build_object('skip_reason', 'ANALYTICS_PAUSED');
    end if;
  end if;

  return jsonb_build_object('claimed', v_jobs, 'site', v_site,
    'paused', jsonb_build_object('ssh', v_ssh_paused, 'matomo', v_matomo_paused));
end
$$;

drop function if exists public.hosting_finish(uuid, uuid, text, text, text, integer, text, text,
  timestamptz, integer, text);

-- Write the outcome of a claim (see the first version). New: p_refund_attempt gives the attempt
-- back when the failure was not the site's (server down, runtime shutting down); p_analytics_failed
-- counts a failed Matomo registration (reset when the site gets its id); p_next_attempt_at may be
-- 'infinity' for an active site whose analytics retries are used up.
create or replace function public.hosting_finish(
  p_site_id uuid,
  p_claim_token uuid,
  p_status text,
  p_site_user text default null,
  p_doc_root text default null,
  p_matomo_site_id integer default null,
  p_error_code text default null,
  p_error_message text default null,
  p_next_attempt_at timestamptz default null,
  p_duration_ms integer default null,
  p_event_code text default null,
  p_refund_attempt boolean default false,
  p_analytics_failed boolean default false
)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_row public.sites;
  v_error text;
begin
  if p_status is null or p_status not in ('active', 'pending', 'failed') then
    raise exception 'hosting_finish: status must be active, pending or failed, not %', p_status
      using errcode = '22023';
  end if;
  if p_status <> 'active' and p_error_code is null then
    raise exception 'hosting_finish: a % outcome needs an error code', p_status using errcode = '22023';
  end if;
  if p_status = 'pending' and p_next_attempt_at is null then
    raise exception 'hosting_finish: a retry needs p_next_attempt_at' using errcode = '22023';
  end if;
  if p_claim_token is null then
    raise exception 'hosting_finish: p_claim_token is required' using errcode = '22023';
  end if;

  v_error := case when p_error_code is not null
                  then left(p_error_code || coalesce(': ' || p_error_message, ''), 2000) end;

  update public.sites s
  set status_hosting = p_status,
      hosting_site_user = coalesce(p_site_user, s.hosting_site_user),
      hosting_doc_root = coalesce(p_doc_root, s.hosting_doc_root),
      matomo_site_id = coalesce(p_matomo_site_id, s.matomo_site_id),
      hosting_error = case when p_status = 'active' then null else v_error end,
      hosting_attempts = case when p_refund_attempt then greatest(s.hosting_attempts - 1, 0)
                              else s.hosting_attempts end,
      hosting_analytics_failures = case
        when coalesce(p_matomo_site_id, s.matomo_site_id) is not null then 0
        when p_analytics_failed then s.hosting_analytics_failures + 1
        else s.hosting_analytics_failures end,
      hosting_lease_until = null,
      hosting_claim_token = null,
      hosting_next_attempt_at = case when p_status = 'failed' then null else p_next_attempt_at end,
      hosting_updated_at = now()
  where s.id = p_site_id and s.hosting_claim_token = p_claim_token
    and s.status_hosting in ('provisioning', 'active')
  returning s.* into v_row;

  if not found then
    return jsonb_build_object('applied', false, 'reason', 'STALE_CLAIM');
  end if;

  if p_status = 'active' and v_row.hosting_doc_root is null then
    raise exception 'hosting_finish: an active site needs its document root' using errcode = '22023';
  end if;
  -- A success ends an old failure streak (a pause still running stays until it ends).
  if p_status = 'active' and p_event_code is distinct from 'INTERRUPTED' then
    delete from public.hosting_health h
    where (h.target like 'ssh:%' or (h.target like 'matomo:%' and v_row.matomo_site_id is not null))
      and (h.paused_until is null or h.paused_until <= now());
  end if;

  insert into public.hosting_events (site_id, attempt, step, outcome, code, message, duration_ms)
  values (p_site_id, v_row.hosting_attempts, 'finish',
          case when p_status = 'active' then 'ok'
               when p_refund_attempt then 'warning' else 'error' end,
          coalesce(p_event_code, case p_status when 'active' then 'ACTIVE' else p_error_code end),
          case when p_status = 'active' then null
               when p_status = 'pending' then left(coalesce(p_error_message, '')
                 || format(' (next attempt at %s%s)', p_next_attempt_at,
                           case when p_refund_attempt then '; attempt not counted' else '' end), 2000)
               else left(p_error_message, 2000) end,
          greatest(p_duration_ms, 0));

  return jsonb_build_object('applied', true, 'site', public.hosting_site_json(v_row));
end
$$;

-- Give back claims that were never started (the run stopped first): the row is as before the
-- claim — pending and due (or active and due for analytics), the attempt not counted.
create or replace function public.hosting_release(p_claim_tokens uuid[], p_reason text)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_count integer;
begin
  with released as (
    update public.sites s
    set status_hosting = case when s.status_hosting = 'provisioning' then 'pending'
                              else s.status_hosting end,
        hosting_attempts = case when s.status_hosting = 'provisioning'
                                then greatest(s.hosting_attempts - 1, 0) else s.hosting_attempts end,
        hosting_lease_until = null, hosting_claim_token = null, hosting_updated_at = now()
    where s.hosting_claim_token = any (p_claim_tokens)
    returning s.id, s.hosting_attempts
  ), logged as (
    insert into public.hosting_events (site_id, attempt, step, outcome, code, message)
    select r.id, r.hosting_attempts, 'finish', 'skipped', 'HANDED_BACK', left(p_reason, 2000)
    from released r
  )
  select count(*) into v_count from released;
  return v_count;
end
$$;

-- Report how a target fared. A failure pauses it with backoff (base doubling to max, at least
-- p_min_seconds); a failure with other settings than the recorded ones starts the count afresh;
-- a success clears the row. While Matomo is paused, the analytics retries of every active site
-- wait for the pause instead of being dispatched to no purpose.
create or replace function public.hosting_report_health(
  p_target text,
  p_credential text,
  p_ok boolean,
  p_code text default null,
  p_message text default null,
  p_base_seconds integer default 60,
  p_max_seconds integer default 900,
  p_min_seconds integer default 0
)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_row public.hosting_health;
begin
  if p_target is null or p_target !~ '^(ssh|matomo):' then
    raise exception 'hosting_report_health: target must start with ssh: or matomo:'
      using errcode = '22023';
  end if;
  if p_ok then
    delete from public.hosting_health h where h.target = p_target;
    return jsonb_build_object('paused_until', null, 'failures', 0);
  end if;

  insert into public.hosting_health as h (target, credential, failures, last_code, last_error)
  values (p_target, p_credential, 1, p_code, left(p_message, 2000))
  on conflict (target) do update
  set failures = case when h.credential is not distinct from excluded.credential
                      then h.failures + 1 else 1 end,
      credential = excluded.credential,
      last_code = excluded.last_code,
      last_error = excluded.last_error,
      updated_at = now()
  returning * into v_row;

  update public.hosting_health h
  set paused_until = now() + make_interval(secs => greatest(p_min_seconds,
        least(p_max_seconds::double precision, p_base_seconds * 2 ^ least(v_row.failures - 1, 30))))
  where h.target = p_target
  returning * into v_row;

  if p_target like 'matomo:%' then
    update public.sites s
    set hosting_next_attempt_at = v_row.paused_until
    where s.status_hosting = 'active' and s.matomo_site_id is null
      and s.hosting_next_attempt_at is distinct from 'infinity'
      and (s.hosting_next_attempt_at is null or s.hosting_next_attempt_at < v_row.paused_until);
  end if;

  return jsonb_build_object('paused_until', v_row.paused_until, 'failures', v_row.failures);
end
$$;

-- An operator moving a site back to pending starts a fresh cycle (first version). New: never
-- beside a running worker — while a lease is valid the update is refused with the reason; the
-- product's own writes (which always clear the claim token) are not resets.
create or replace function public.hosting_on_reset()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if new.status_hosting = 'pending' and old.status_hosting <> 'pending'
     and new.hosting_claim_token is not distinct from old.hosting_claim_token then
    if old.hosting_lease_until > now() then
      raise exception 'hosting-automator: % is being worked on until % (lease); reset it after that, or wait for its result',
        old.domain, old.hosting_lease_until
        using errcode = '55006',
              hint = 'select status_hosting, hosting_lease_until from public.sites where domain = ...';
    end if;
    insert into public.hosting_events (site_id, attempt, step, outcome, code, message)
    values (new.id, old.hosting_attempts, 'reset', 'ok', 'RESET',
            format('%s -> pending by %s', old.status_hosting, session_user));
    new.hosting_attempts := 0;
    new.hosting_analytics_failures := 0;
    new.hosting_lease_until := null;
    new.hosting_claim_token := null;
    new.hosting_next_attempt_at := null;
    new.hosting_updated_at := now();
  end if;
  return new;
end
$$;

-- Operator entry point. A failed or stuck site → pending, due now, fresh attempts; an active site
-- without its Matomo id → the analytics registration only, at once; anything with a valid lease
-- is refused (a worker is on it); an active, complete site is refused (use a plain update).
create or replace function public.hosting_retry(domain text)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_site public.sites;
  v_after public.sites;
begin
  select * into v_site from public.sites s where s.domain = lower(btrim(hosting_retry.domain)) for update;
  if not found then
    raise exception 'hosting_retry: no site with domain %', hosting_retry.domain
      using errcode = 'P0002';
  end if;
  if v_site.hosting_lease_until > now() then
    raise exception 'hosting_retry: % is being worked on until % (lease); nothing changed',
      v_site.domain, v_site.hosting_lease_until using errcode = '55006';
  end if;
  if v_site.status_hosting = 'active' and v_site.matomo_site_id is null
     and v_site.hosting_doc_root is not null then
    update public.sites s
    set hosting_next_attempt_at = null, hosting_analytics_failures = 0, hosting_updated_at = now()
    where s.id = v_site.id returning s.* into v_after;
    insert into public.hosting_events (site_id, attempt, step, outcome, code, message)
    values (v_site.id, v_site.hosting_attempts, 'reset', 'ok', 'ANALYTICS_RETRY',
            format('analytics registration retried by %s', session_user));
    return jsonb_build_object('previous_status', v_site.status_hosting, 'retried', 'analytics',
                              'site', public.hosting_site_json(v_after));
  end if;
  if v_site.status_hosting = 'active' then
    raise exception 'hosting_retry: % is already active', v_site.domain
      using errcode = '22023',
            hint = format('to provision it again on purpose: update public.sites set status_hosting = ''pending'' where domain = %L', v_site.domain);
  end if;

  if v_site.status_hosting = 'pending' then
    -- in backoff: due now, with fresh attempts (no status change, so no reset trigger)
    update public.sites s
    set hosting_next_attempt_at = null, hosting_attempts = 0, hosting_updated_at = now()
    where s.id = v_site.id returning s.* into v_after;
    insert into public.hosting_events (site_id, attempt, step, outcome, code, message)
    values (v_site.id, v_site.hosting_attempts, 'reset', 'ok', 'RESET',
            format('pending (backoff) -> due now by %s', session_user));
  else
    update public.sites s set status_hosting = 'pending' where s.id = v_site.id
    returning s.* into v_after;
  end if;

  return jsonb_build_object('previous_status', v_site.status_hosting, 'retried', 'provision',
                            'site', public.hosting_site_json(v_after));
end
$$;

-- Queue one POST to the function. Returns true when queued (pg_net sends it after commit), false
-- with a WARNING (and, for a single site, a 'dispatch' event) when it cannot be: never raises.
-- The Vault key is a dedicated dispatch token, never the service-role key: pg_net's queue and
-- response tables are readable by other roles.
create or replace function public.hosting_send(p_body jsonb, p_source text)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_url text;
  v_key text;
  v_problem text;
begin
  begin
    select ds.decrypted_secret into v_url
    from vault.decrypted_secrets ds where ds.name = 'hosting_automator_url';
    select ds.decrypted_secret into v_key
    from vault.decrypted_secrets ds where ds.name = 'hosting_automator_key';

    if coalesce(v_url, '') = '' or coalesce(v_key, '') = '' then
      v_problem := 'NOT_CONFIGURED: Vault secret '
        || case when coalesce(v_url, '') = '' then 'hosting_automator_url' else 'hosting_automator_key' end
        || ' is missing';
    else
      perform net.http_post(
        url := v_url,
        body := p_body,
        headers := jsonb_build_object('Content-Type', 'application/json', 'apikey', v_key),
        timeout_milliseconds := 10000
      );
      return true;
    end if;
  exception when others then
    v_problem := format('DISPATCH_FAILED: %s (SQLSTATE %s)', sqlerrm, sqlstate);
  end;

  raise warning 'hosting-automator: % not dispatched (%): %; the sweeper will try again',
    coalesce(p_body ->> 'site_id', 'due work'), p_source, v_problem;
  begin
    insert into public.hosting_events (site_id, attempt, step, outcome, code, message)
    select s.id, s.hosting_attempts, 'dispatch', 'warning', split_part(v_problem, ':', 1),
           format('%s (from %s)', v_problem, p_source)
    from public.sites s where s.id = (p_body ->> 'site_id')::uuid;
  exception when others then
    raise warning 'hosting-automator: could not record the dispatch problem: %', sqlerrm;
  end;
  return false;
end
$$;

-- Kept for operators and older callers: one site's request.
create or replace function public.hosting_dispatch(p_site_id uuid, p_source text default 'trigger')
returns boolean
language sql
security definer
set search_path = ''
as $$
  select public.hosting_send(jsonb_build_object('site_id', p_site_id), p_source)
$$;

-- One request per statement: the rows that this statement made due (newly active + pending +
-- due, or reset) are counted; one of them → {"site_id"}, several → {} (the function drains every
-- due site itself, within its cap). Never fails the caller's statement.
create or replace function public.hosting_on_sites_statement()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_count bigint;
  v_one uuid;
begin
  if tg_op = 'INSERT' then
    select count(*), min(n.id::text)::uuid into v_count, v_one
    from new_rows n
    where public.hosting_due_work(n) = 'provision';
  else
    select count(*), min(n.id::text)::uuid into v_count, v_one
    from new_rows n
    join old_rows o on o.id = n.id
    where public.hosting_due_work(n) = 'provision' and n.status_hosting = 'pending'
      and (public.hosting_due_work(o) is distinct from 'provision'
           or o.status_hosting <> 'pending'
           or n.hosting_attempts < o.hosting_attempts);
  end if;
  if v_count = 1 then
    perform public.hosting_send(jsonb_build_object('site_id', v_one), lower(tg_op));
  elsif v_count > 1 then
    perform public.hosting_send('{}'::jsonb, lower(tg_op));
  end if;
  return null;
exception when others then
  raise warning 'hosting-automator: trigger error: %', sqlerrm;
  return null;
end
$$;

drop trigger if exists hosting_automator_dispatch on public.sites;
drop function if exists public.hosting_on_site_change();
drop trigger if exists hosting_automator_dispatch_insert on public.sites;
create trigger hosting_automator_dispatch_insert
after insert on public.sites
referencing new table as new_rows
for each statement
execute function public.hosting_on_sites_statement();
drop trigger if exists hosting_automator_dispatch_update on public.sites;
create trigger hosting_automator_dispatch_update
after update on public.sites
referencing old table as old_rows new table as new_rows
for each statement
execute function public.hosting_on_sites_statement();

drop function if exists public.hosting_automator_sweep(integer);

-- What pg_cron runs every minute: at most one request, {} — the function claims up to the free
-- capacity and drains — and only when that request can do something: provisioning is due and a
-- slot is free and the server is not paused, or analytics is due and Matomo is not paused.
-- Returns the number of requests queued (0 or 1).
create or replace function public.hosting_automator_sweep()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_cap integer;
  v_busy integer;
  v_provision boolean;
  v_analytics boolean;
begin
  select r.max_concurrent into v_cap from public.hosting_runtime r;
  select count(*) into v_busy from public.sites s
  where s.status_hosting = 'provisioning' and s.hosting_lease_until > now();
  select exists (select 1 from public.sites s where public.hosting_due_work(s) = 'provision')
     and v_busy < coalesce(v_cap, 1)
     and not exists (select 1 from public.hosting_health h
                     where h.target like 'ssh:%' and h.paused_until > now())
    into v_provision;
  select exists (select 1 from public.sites s where public.hosting_due_work(s) = 'analytics')
     and not exists (select 1 from public.hosting_health h
                     where h.target like 'matomo:%' and h.paused_until > now())
    into v_analytics;
  if not (v_provision or v_analytics) then
    return 0;
  end if;
  return case when public.hosting_send('{}'::jsonb, 'sweep') then 1 else 0 end;
end
$$;

-- Read-only peek for dry runs: also the named site's skip reason.
create or replace function public.hosting_peek(p_site_id uuid default null, p_limit integer default 10)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select jsonb_build_object(
    'due', coalesce((
      select jsonb_agg(d.j)
      from (
        select public.hosting_site_json(s) as j
        from public.sites s
        where public.hosting_due_work(s) is not null and (p_site_id is null or s.id = p_site_id)
        order by public.hosting_due_since(s), s.id
        limit greatest(p_limit, 0)
      ) d), '[]'::jsonb),
    'site', (select public.hosting_site_json(s) from public.sites s where s.id = p_site_id))
$$;

revoke execute on function public.hosting_skip_reason(public.sites),
  public.hosting_record_event(uuid, integer, text, text, text, text, integer, uuid, integer),
  public.hosting_paused_until(text, text),
  public.hosting_claim(uuid, integer, integer, integer, integer, integer, text, text, text, text),
  public.hosting_finish(uuid, uuid, text, text, text, integer, text, text, timestamptz, integer,
                        text, boolean, boolean),
  public.hosting_release(uuid[], text),
  public.hosting_report_health(text, text, boolean, text, text, integer, integer, integer),
  public.hosting_send(jsonb, text), public.hosting_on_sites_statement(),
  public.hosting_automator_sweep()
  from public, anon, authenticated;
grant execute on function public.hosting_skip_reason(public.sites),
  public.hosting_record_event(uuid, integer, text, text, text, text, integer, uuid, integer),
  public.hosting_paused_until(text, text),
  public.hosting_claim(uuid, integer, integer, integer, integer, integer, text, text, text, text),
  public.hosting_finish(uuid, uuid, text, text, text, integer, text, text, timestamptz, integer,
                        text, boolean, boolean),
  public.hosting_release(uuid[], text),
  public.hosting_report_health(text, text, boolean, text, text, integer, integer, integer),
  public.hosting_automator_sweep()
  to service_role;

-- The cron job calls the sweeper without arguments: re-schedule under the same name (an upsert).
do $$
begin
  if exists (select 1 from pg_catalog.pg_namespace where nspname = 'cron') then
    perform cron.schedule('hosting-automator-sweep', '* * * * *',
                          'select public.hosting_automator_sweep()');
  end if;
exception when others then
  raise warning 'hosting-automator: could not schedule the sweeper (%)', sqlerrm;
end
$$;

-- The brief's Matomo API error rate, now that a Matomo failure is the site's warning (not an error).
create or replace view public.hosting_metrics
with (security_invoker = true)
as
with activations as (
  select e.duration_ms
  from public.hosting_events e
  where e.step = 'finish' and e.outcome = 'ok' and e.code = 'ACTIVE'
),
cli as (
  select e.outcome
  from public.hosting_events e
  where e.step in ('site', 'certificate') and e.outcome in ('ok', 'warning', 'error')
),
matomo as (
  -- A failure is an API error whether the site recorded it as a warning (it still went active) or
  -- an error; a duplicate is not; a pause or the give-up note made no call at all.
  select case when e.code like 'MATOMO\_%' and e.code not in ('MATOMO_FOUND', 'MATOMO_CREATED',
                   'MATOMO_DUPLICATES') then 'error' else 'ok' end as outcome
  from public.hosting_events e
  where e.step = 'analytics' and e.outcome in ('ok', 'warning', 'error')
    and e.code not in ('MATOMO_PAUSED', 'ANALYTICS_GAVE_UP')
)
select
  (select count(*) from public.sites) as sites_total,
  (select count(*) from public.sites where status_hosting = 'pending') as sites_pending,
  (select count(*) from public.sites where status_hosting = 'provisioning') as sites_provisioning,
  (select count(*) from public.sites where status_hosting = 'active') as sites_active,
  (select count(*) from public.sites where status_hosting = 'failed') as sites_failed,
  (select count(*) from public.sites where status_hosting = 'active' and matomo_site_id is null)
    as sites_active_without_analytics,
  (select round(avg(case when exists (select 1 from public.hosting_events r
                                       where r.site_id = s.id and r.step = 'reset')
                         then 0.0 else 1.0 end), 4)
   from public.sites s where s.status_hosting = 'active') as auto_share,
  (select round(avg(a.duration_ms) / 1000.0, 3) from activations a) as claim_to_active_mean_s,
  (select round((percentile_cont(0.95) within group (order by a.duration_ms) / 1000.0)::numeric, 3)
   from activations a) as claim_to_active_p95_s,
  (select count(*) from activations) as activations,
  (select round(avg(case when c.outcome = 'error' then 0.0 else 1.0 end), 4) from cli c)
    as cli_success_rate,
  (select count(*) from cli) as cli_commands,
  (select round(avg(case when m.outcome = 'error' then 1.0 else 0.0 end), 4) from matomo m)
    as matomo_error_rate,
  (select count(*) from matomo) as matomo_calls;

