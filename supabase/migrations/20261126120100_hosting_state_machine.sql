-- Hosting Automator: the state machine in SQL. What is due, the atomic claim (with the global
-- concurrency cap and the lease), step events, finishing a claim, operator resets and read-only peeks.
-- The Edge Function calls these through supabase-js RPC; operators and pg_cron call them in SQL.

-- What a row needs now: 'provision' (pending and due, or provisioning with an expired lease),
-- 'analytics' (active without a Matomo id, not leased, due), or null. The one definition of "due",
-- shared by the sweeper, the claim and the dry run.
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
    when s.status_hosting = 'active' and s.matomo_site_id is null
      and (s.hosting_lease_until is null or s.hosting_lease_until <= now())
      and (s.hosting_next_attempt_at is null or s.hosting_next_attempt_at <= now()) then 'analytics'
  end
$$;

-- Since when a row's work has been due: the order in which claims, sweeps and dry runs take
-- sites (never tried first, then the longest waiting).
create or replace function public.hosting_due_since(s public.sites)
returns timestamptz
language sql
stable
set search_path = ''
as $$
  select coalesce(s.hosting_next_attempt_at, s.hosting_lease_until, s.hosting_updated_at,
                  '-infinity'::timestamptz)
$$;

-- The row as the function sees it (no claim token: that only travels with a claim).
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
    'updated_at', s.hosting_updated_at, 'due', public.hosting_due_work(s))
$$;

-- A claimed job as the function receives it: the row's fields plus the claim token and lease.
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
    'matomo_site_id', s.matomo_site_id)
$$;

create or replace function public.hosting_record_event(
  p_site_id uuid,
  p_attempt integer,
  p_step text,
  p_outcome text,
  p_code text default null,
  p_message text default null,
  p_duration_ms integer default null
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
  return v_id;
end
$$;

-- Claim due work atomically. Provisioning claims move pending (due) or provisioning (lease expired)
-- to provisioning with a new lease, token and attempt number, never more than p_max_concurrent
-- leased provisioning rows in all; analytics claims lease an active row without a Matomo id.
-- Returns {"claimed": [job…], "site": <row or null>}; "site" is the row of p_site_id when it was not
-- claimed (so the caller can say why), null otherwise.
create or replace function public.hosting_claim(
  p_site_id uuid default null,
  p_limit integer default 1,
  p_max_concurrent integer default 3,
  p_lease_seconds integer default 600,
  p_max_attempts integer default 8,
  p_analytics_lease_seconds integer default 120
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
begin
  if p_limit < 1 or p_max_concurrent < 1 or p_lease_seconds < 1 or p_max_attempts < 1
     or p_analytics_lease_seconds < 1 then
    raise exception 'hosting_claim: every limit must be a positive number'
      using errcode = '22023';
  end if;

  -- Claims run one at a time across every function instance, so the cap below is exact.
  -- (A transaction-scoped lock: held for the few milliseconds of this call.)
  perform pg_advisory_xact_lock(7243106511);

  -- A worker that vanished on its last allowed attempt: stop, say so.
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
  v_room := least(p_limit, greatest(p_max_concurrent - v_busy, 0));

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
    where public.hosting_due_work(s) = 'analytics' and (p_site_id is null or s.id = p_site_id)
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
  end if;

  return jsonb_build_object('claimed', v_jobs, 'site', v_site);
end
$$;

-- Write the outcome of a claim. Applies only while p_claim_token still holds the row; a stale
-- worker gets {"applied": false}. p_status: 'active', 'pending' (retry at p_next_attempt_at) or
-- 'failed'. For an active site p_next_attempt_at is when to try the Matomo registration again (null
-- when it has its id). The finish event carries p_duration_ms (claim to finish) and p_event_code.
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
  p_event_code text default null
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

  insert into public.hosting_events (site_id, attempt, step, outcome, code, message, duration_ms)
  values (p_site_id, v_row.hosting_attempts, 'finish',
          case p_status when 'active' then 'ok' else 'error' end,
          coalesce(p_event_code, case p_status when 'active' then 'ACTIVE' else p_error_code end),
          case when p_status = 'active' then null
               when p_status = 'pending' then left(coalesce(p_error_message, '') || format(' (next attempt at %s)', p_next_attempt_at), 2000)
               else left(p_error_message, 2000) end,
          greatest(p_duration_ms, 0));

  return jsonb_build_object('applied', true, 'site', public.hosting_site_json(v_row));
end
$$;

-- Read-only: what a claim would take now (for dry runs), and the row of p_site_id.
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

-- An operator moving a site back to pending (from failed or active in plain SQL, or through
-- hosting_retry for a stuck one) starts a fresh cycle: no lease, no backoff, a full set of attempts,
-- and a 'reset' event, which is what the metrics count as a manual step.
create or replace function public.hosting_on_reset()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if new.status_hosting = 'pending'
     and (old.status_hosting in ('failed', 'active')
          or coalesce(current_setting('hosting_automator.reset', true), '') = 'on') then
    insert into public.hosting_events (site_id, attempt, step, outcome, code, message)
    values (new.id, old.hosting_attempts, 'reset', 'ok', 'RESET',
            format('%s -> pending by %s', old.status_hosting, session_user));
    new.hosting_attempts := 0;
    new.hosting_lease_until := null;
    new.hosting_claim_token := null;
    new.hosting_next_attempt_at := null;
    new.hosting_updated_at := now();
  end if;
  return new;
end
$$;

drop trigger if exists hosting_on_reset on public.sites;
create trigger hosting_on_reset
before update of status_hosting on public.sites
for each row
when (new.status_hosting = 'pending')
execute function public.hosting_on_reset();

-- Operator entry point: put a failed or stuck (provisioning, or pending in backoff) site back to
-- pending, due now. An active site is refused: re-provisioning it is a deliberate plain update.
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
  if v_site.status_hosting = 'active' then
    raise exception 'hosting_retry: % is already active', v_site.domain
      using errcode = '22023',
            hint = format('to provision it again on purpose: update public.sites set status_hosting = ''pending'' where domain = %L', v_site.domain);
  end if;

  perform set_config('hosting_automator.reset', 'on', true);
  update public.sites s set status_hosting = 'pending' where s.id = v_site.id returning s.* into v_after;
  perform set_config('hosting_automator.reset', 'off', true);

  return jsonb_build_object('previous_status', v_site.status_hosting, 'site', public.hosting_site_json(v_after));
end
$$;

revoke execute on function public.hosting_due_work(public.sites), public.hosting_due_since(public.sites),
  public.hosting_site_json(public.sites), public.hosting_job_json(public.sites, text),
  public.hosting_record_event(uuid, integer, text, text, text, text, integer),
  public.hosting_claim(uuid, integer, integer, integer, integer, integer),
  public.hosting_finish(uuid, uuid, text, text, text, integer, text, text, timestamptz, integer, text),
  public.hosting_peek(uuid, integer), public.hosting_on_reset(), public.hosting_retry(text)
  from public, anon, authenticated;
grant execute on function public.hosting_due_work(public.sites), public.hosting_due_since(public.sites),
  public.hosting_site_json(public.sites), public.hosting_job_json(public.sites, text),
  public.hosting_record_event(uuid, integer, text, text, text, text, integer),
  public.hosting_claim(uuid, integer, integer, integer, integer, integer),
  public.hosting_finish(uuid, uuid, text, text, text, integer, text, text, timestamptz, integer, text),
  public.hosting_peek(uuid, integer), public.hosting_retry(text)
  to service_role;
