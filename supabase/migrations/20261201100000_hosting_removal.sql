-- Hosting Automator: the rest of a site's life. Removing a site (hosting_deprovision: the row goes
-- to 'removing', is claimed like provisioning, runs `clpctl site:delete`, deletes the Matomo site
-- only when asked, and ends 'removed'), and live progress on the row (hosting_step and when it
-- started, kept current by the step events themselves; public.sites and public.hosting_events in
-- the supabase_realtime publication where it exists).

-- States: 'removing' (waiting for, or holding, a removal claim) and 'removed'.
alter table public.sites drop constraint if exists sites_status_hosting_check;
alter table public.sites add constraint sites_status_hosting_check
  check (status_hosting in ('pending', 'provisioning', 'active', 'failed', 'removing', 'removed'))
  not valid;
do $$
begin
  alter table public.sites validate constraint sites_status_hosting_check;
exception when check_violation then
  raise warning 'hosting-automator: existing rows of public.sites violate sites_status_hosting_check; fix them, then run: alter table public.sites validate constraint sites_status_hosting_check';
end
$$;
comment on column public.sites.status_hosting is
  'pending -> provisioning -> active | failed; removing -> removed (hosting_deprovision); set back to pending to provision again (Hosting Automator)';

alter table public.sites
  add column if not exists hosting_remove_analytics boolean not null default false,
  add column if not exists hosting_step text,
  add column if not exists hosting_step_started_at timestamptz;
comment on column public.sites.hosting_remove_analytics is
  'while removing (or failed removing): the removal also deletes the Matomo site (matomo_site_id only)';
comment on column public.sites.hosting_step is
  'while a claim holds the row: the step it is in (site, certificate, analytics, finish); null otherwise';
comment on column public.sites.hosting_step_started_at is 'when hosting_step began';

alter table public.hosting_events drop constraint if exists hosting_events_step_check;
alter table public.hosting_events add constraint hosting_events_step_check
  check (step in ('dispatch', 'claim', 'site', 'certificate', 'analytics', 'finish', 'reset',
                  'remove'));

-- Due work, redefined: 'remove' for a removing row that no valid lease holds and that is due.
-- Removal does not wait for DNS: a site being taken down may no longer point anywhere.
create or replace function public.hosting_due_work(s public.sites)
returns text
language sql
stable
set search_path = ''
as $$
  select case
    when s.status_hosting = 'removing'
      and (s.hosting_lease_until is null or s.hosting_lease_until <= now())
      and (s.hosting_next_attempt_at is null or s.hosting_next_attempt_at <= now()) then 'remove'
    when s.status_dns is distinct from 'active' then null
    when s.status_hosting = 'pending'
      and (s.hosting_next_attempt_at is null or s.hosting_next_attempt_at <= now()) then 'provision'
    when s.status_hosting = 'provisioning' and s.hosting_lease_until <= now() then 'provision'
    when s.status_hosting = 'active' and s.matomo_site_id is null and s.hosting_doc_root is not null
      and (s.hosting_lease_until is null or s.hosting_lease_until <= now())
      and (s.hosting_next_attempt_at is null or s.hosting_next_attempt_at <= now()) then 'analytics'
  end
$$;

create or replace function public.hosting_skip_reason(s public.sites)
returns text
language sql
stable
set search_path = ''
as $$
  select case
    when s.id is null then 'NOT_FOUND'
    when public.hosting_due_work(s) is not null then 'AT_CAPACITY'
    when s.hosting_lease_until > now() then 'IN_PROGRESS'
    when s.status_hosting = 'removed' then 'REMOVED'
    when s.status_hosting = 'removing' then 'NOT_DUE'
    when s.status_dns is distinct from 'active' then 'DNS_NOT_ACTIVE'
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
                        then public.hosting_skip_reason(s) end,
    'delete_analytics', s.hosting_remove_analytics,
    'step', s.hosting_step, 'step_started_at', s.hosting_step_started_at)
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
    'matomo_site_id', s.matomo_site_id, 'analytics_failures', s.hosting_analytics_failures,
    'delete_analytics', s.hosting_remove_analytics)
$$;

-- Progress. The step that follows a recorded one, for the kind of claim the row's state says:
-- provisioning site -> certificate -> analytics -> finish; removing site -> analytics -> finish;
-- an active row's analytics claim analytics -> finish.
create or replace function public.hosting_step_after(p_status text, p_step text)
returns text
language sql
immutable
set search_path = ''
as $$
  select case p_step
    when 'site' then case when p_status = 'removing' then 'analytics' else 'certificate' end
    when 'certificate' then 'analytics'
    when 'analytics' then 'finish'
    else p_step
  end
$$;

-- A new claim starts at its first step; when the claim ends (finish, release, reset, lease given
-- up: the token is cleared) the row shows no step. No write of the function is needed for either.
create or replace function public.hosting_on_claim_change()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.hosting_claim_token is null then
    new.hosting_step := null;
    new.hosting_step_started_at := null;
  elsif new.hosting_claim_token is distinct from old.hosting_claim_token then
    new.hosting_step := case when new.status_hosting = 'active' then 'analytics' else 'site' end;
    new.hosting_step_started_at := now();
  end if;
  return new;
end
$$;

-- Named to fire after hosting_on_reset (BEFORE triggers run in name order), which may clear the token.
drop trigger if exists hosting_progress on public.sites;
create trigger hosting_progress
before update on public.sites
for each row
execute function public.hosting_on_claim_change();

-- Record one step's event (same signature as before). New: with the claim's token the same update
-- that renews the lease moves the row to the next step, so progress costs no extra round trip.
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
  if p_claim_token is not null then
    update public.sites s
    set hosting_lease_until = case when p_lease_seconds > 0
          then greatest(s.hosting_lease_until, now() + make_interval(secs => p_lease_seconds))
          else s.hosting_lease_until end,
        hosting_step = public.hosting_step_after(s.status_hosting, p_step),
        hosting_step_started_at = case
          when public.hosting_step_after(s.status_hosting, p_step) is distinct from s.hosting_step
          then now() else s.hosting_step_started_at end
    where s.id = p_site_id and s.hosting_claim_token = p_claim_token;
  end if;
  return v_id;
end
$$;

-- The claim, redefined with the same signature: due removals are taken with provisioning in one
-- queue (oldest first) under the same cap, lease, token and attempt count; the SSH pause holds
-- both back. A removal whose lease expired on its last attempt fails like a provisioning one.
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

  perform pg_advisory_xact_lock(7243106511);

  insert into public.hosting_runtime (id, max_concurrent) values (true, p_max_concurrent)
  on conflict (id) do update set max_concurrent = excluded.max_concurrent, updated_at = now()
  where public.hosting_runtime.max_concurrent <> excluded.max_concurrent;

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
    where s.status_hosting in ('provisioning', 'removing') and s.hosting_lease_until <= now()
      and s.hosting_attempts >= p_max_attempts
    returning s.id, s.hosting_attempts
  )
  insert into public.hosting_events (site_id, attempt, step, outcome, code, message)
  select g.id, g.hosting_attempts, 'finish', 'error', 'LEASE_EXPIRED',
         format('no result within the lease after %s attempts', g.hosting_attempts)
  from given_up g;

  select count(*) into v_busy
  from public.sites s
  where s.status_hosting in ('provisioning', 'removing') and s.hosting_lease_until > now();
  v_room := case when v_ssh_paused is null
                 then least(p_limit, greatest(p_max_concurrent - v_busy, 0)) else 0 end;

  with picked as (
    select s.id, public.hosting_due_work(s) as work, s.hosting_lease_until is not null as reclaimed
    from public.sites s
    where public.hosting_due_work(s) in ('provision', 'remove')
      and (p_site_id is null or s.id = p_site_id)
    order by public.hosting_due_since(s), s.id
    limit v_room
    for update of s skip locked
  ), claimed as (
    update public.sites s
    set status_hosting = case when p.work = 'remove' then 'removing' else 'provisioning' end,
        hosting_attempts = s.hosting_attempts + 1,
        hosting_lease_until = now() + make_interval(secs => p_lease_seconds),
        hosting_claim_token = gen_random_uuid(),
        hosting_next_attempt_at = null,
        hosting_updated_at = now()
    from picked p
    where s.id = p.id
    returning s as site, p.work, p.reclaimed
  ), logged as (
    insert into public.hosting_events (site_id, attempt, step, outcome, code, message)
    select (c.site).id, (c.site).hosting_attempts, 'claim', 'ok',
           case when c.reclaimed then 'RECLAIMED' else 'CLAIMED' end,
           case when c.reclaimed then 'the previous lease expired'
                when c.work = 'remove' then 'removal' end
    from claimed c
  )
  select coalesce(jsonb_agg(public.hosting_job_json(c.site, c.work)), '[]'::jsonb)
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
    elsif v_site ->> 'due' in ('provision', 'remove') and v_ssh_paused is not null then
      v_site := v_site || jsonb_build_object('skip_reason', 'SERVER_PAUSED');
    elsif v_site ->> 'due' = 'analytics' and v_matomo_paused is not null then
      v_site := v_site || jsonb_build_object('skip_reason', 'ANALYTICS_PAUSED');
    end if;
  end if;

  return jsonb_build_object('claimed', v_jobs, 'site', v_site,
    'paused', jsonb_build_object('ssh', v_ssh_paused, 'matomo', v_matomo_paused));
end
$$;

-- Claims handed back unstarted, redefined: a removal goes back to 'removing', due, its attempt
-- not counted, like a provisioning claim goes back to 'pending'.
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
        hosting_attempts = case when s.status_hosting in ('provisioning', 'removing')
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

-- Ask for a site's removal (the function's RPC; operators use hosting_deprovision). Never beside a
-- running worker: a valid lease of a provisioning (or analytics) claim is refused; a removal that
-- runs or a removed site change nothing. Otherwise the row goes to 'removing', due now, with fresh
-- attempts and a 'remove' event; p_dispatch also wakes the function through pg_net.
-- Answers {outcome: requested | in_progress | removing | removed | not_found, site}.
create or replace function public.hosting_request_removal(
  p_site_id uuid,
  p_delete_analytics boolean default false,
  p_dispatch boolean default false
)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_site public.sites;
  v_after public.sites;
begin
  select * into v_site from public.sites s where s.id = p_site_id for update;
  if not found then
    return jsonb_build_object('outcome', 'not_found', 'site', null);
  end if;
  if v_site.status_hosting = 'removed' then
    return jsonb_build_object('outcome', 'removed', 'site', public.hosting_site_json(v_site));
  end if;
  if v_site.hosting_lease_until > now() then
    return jsonb_build_object(
      'outcome', case when v_site.status_hosting = 'removing' then 'removing' else 'in_progress' end,
      'site', public.hosting_site_json(v_site));
  end if;

  update public.sites s
  set status_hosting = 'removing',
      hosting_remove_analytics = coalesce(p_delete_analytics, false),
      hosting_attempts = 0,
      hosting_lease_until = null,
      hosting_claim_token = null,
      hosting_next_attempt_at = null,
      hosting_updated_at = now()
  where s.id = v_site.id
  returning s.* into v_after;
  insert into public.hosting_events (site_id, attempt, step, outcome, code, message)
  values (v_site.id, 0, 'remove', 'ok', 'REMOVAL_REQUESTED',
          format('%s -> removing by %s; Matomo site %s', v_site.status_hosting, session_user,
                 case when coalesce(p_delete_analytics, false) then 'to be deleted' else 'kept' end));
  if p_dispatch then
    perform public.hosting_send(jsonb_build_object('site_id', v_site.id), 'deprovision');
  end if;
  return jsonb_build_object('outcome', 'requested', 'previous_status', v_site.status_hosting,
                            'site', public.hosting_site_json(v_after));
end
$$;

-- Operator entry point: remove a site's hosting (CloudPanel site, and its Matomo site when asked).
-- Refuses an unknown domain (P0002) and a site a worker is provisioning (55006, like
-- hosting_retry); a removed site, or one being removed, is answered as it is and not changed.
create or replace function public.hosting_deprovision(domain text, delete_analytics boolean default false)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_id uuid;
  v_answer jsonb;
begin
  select s.id into v_id from public.sites s where s.domain = lower(btrim(hosting_deprovision.domain));
  if v_id is null then
    raise exception 'hosting_deprovision: no site with domain %', hosting_deprovision.domain
      using errcode = 'P0002';
  end if;
  v_answer := public.hosting_request_removal(v_id, hosting_deprovision.delete_analytics, true);
  if v_answer ->> 'outcome' = 'in_progress' then
    raise exception 'hosting_deprovision: % is being worked on until % (lease); nothing changed',
      v_answer #>> '{site,domain}', v_answer #>> '{site,lease_until}'
      using errcode = '55006',
            hint = 'wait for its result (status_hosting), then remove it';
  end if;
  return v_answer;
end
$$;

-- Whether the site's latest operator request was a removal (a 'remove' event after any 'reset').
create or replace function public.hosting_removal_requested(p_site_id uuid)
returns boolean
language sql
stable
set search_path = ''
as $$
  select coalesce((
    select e.step = 'remove' from public.hosting_events e
    where e.site_id = p_site_id and e.step in ('remove', 'reset')
    order by e.id desc limit 1), false)
$$;

-- hosting_retry, redefined: a failed or waiting removal is retried as a removal, never turned
-- into provisioning; everything else as before.
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
  -- A removal waiting for its next attempt, or one that failed, is retried as a removal.
  if v_site.status_hosting = 'removing'
     or (v_site.status_hosting = 'failed' and public.hosting_removal_requested(v_site.id)) then
    return public.hosting_request_removal(v_site.id, v_site.hosting_remove_analytics, true)
      || jsonb_build_object('previous_status', v_site.status_hosting, 'retried', 'remove');
  end if;
  if v_site.status_hosting = 'removed' then
    raise exception 'hosting_retry: % is removed', v_site.domain
      using errcode = '22023',
            hint = format('to provision it again: update public.sites set status_hosting = ''pending'' where domain = %L', v_site.domain);
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

-- Write the outcome of a removal claim: 'removed' (document root and site user cleared, the Matomo
-- id only when its site was deleted), 'removing' again with p_next_attempt_at (a retry), or
-- 'failed' with the reason. Only while the claim's token holds the row (else STALE_CLAIM).
create or replace function public.hosting_finish_removal(
  p_site_id uuid,
  p_claim_token uuid,
  p_status text,
  p_matomo_deleted boolean default false,
  p_error_code text default null,
  p_error_message text default null,
  p_next_attempt_at timestamptz default null,
  p_duration_ms integer default null,
  p_refund_attempt boolean default false,
  p_event_code text default null
)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_row public.sites;
begin
  if p_status is null or p_status not in ('removed', 'removing', 'failed') then
    raise exception 'hosting_finish_removal: status must be removed, removing or failed, not %',
      p_status using errcode = '22023';
  end if;
  if p_status <> 'removed' and p_error_code is null then
    raise exception 'hosting_finish_removal: a % outcome needs an error code', p_status
      using errcode = '22023';
  end if;
  if p_status = 'removing' and p_next_attempt_at is null then
    raise exception 'hosting_finish_removal: a retry needs p_next_attempt_at' using errcode = '22023';
  end if;
  if p_claim_token is null then
    raise exception 'hosting_finish_removal: p_claim_token is required' using errcode = '22023';
  end if;

  update public.sites s
  set status_hosting = p_status,
      hosting_doc_root = case when p_status = 'removed' then null else s.hosting_doc_root end,
      hosting_site_user = case when p_status = 'removed' then null else s.hosting_site_user end,
      matomo_site_id = case when p_matomo_deleted then null else s.matomo_site_id end,
      hosting_remove_analytics = case when p_status = 'removed' then false
                                      else s.hosting_remove_analytics end,
      hosting_analytics_failures = 0,
      hosting_error = case when p_status = 'removed' then null
                           else left(p_error_code || coalesce(': ' || p_error_message, ''), 2000) end,
      hosting_attempts = case when p_refund_attempt then greatest(s.hosting_attempts - 1, 0)
                              else s.hosting_attempts end,
      hosting_lease_until = null,
      hosting_claim_token = null,
      hosting_next_attempt_at = case when p_status = 'removing' then p_next_attempt_at end,
      hosting_updated_at = now()
  where s.id = p_site_id and s.hosting_claim_token = p_claim_token
    and s.status_hosting = 'removing'
  returning s.* into v_row;

  if not found then
    return jsonb_build_object('applied', false, 'reason', 'STALE_CLAIM');
  end if;

  insert into public.hosting_events (site_id, attempt, step, outcome, code, message, duration_ms)
  values (p_site_id, v_row.hosting_attempts, 'finish',
          case when p_status = 'removed' then 'ok'
               when p_refund_attempt then 'warning' else 'error' end,
          coalesce(p_event_code, case when p_status = 'removed' then 'REMOVED' else p_error_code end),
          case when p_status = 'removing' then left(coalesce(p_error_message, '')
                 || format(' (next attempt at %s%s)', p_next_attempt_at,
                           case when p_refund_attempt then '; attempt not counted' else '' end), 2000)
               when p_status = 'failed' then left(p_error_message, 2000) end,
          greatest(p_duration_ms, 0));

  return jsonb_build_object('applied', true, 'site', public.hosting_site_json(v_row));
end
$$;

-- The reset trigger, redefined: also from 'removed' (or a failed removal) an operator's pending
-- provisions the site again from scratch; the removal's request is forgotten.
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
    new.hosting_remove_analytics := false;
    new.hosting_lease_until := null;
    new.hosting_claim_token := null;
    new.hosting_next_attempt_at := null;
    new.hosting_updated_at := now();
  end if;
  return new;
end
$$;

-- The sweeper, redefined: due removals count as work for the server, like provisioning.
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
  where s.status_hosting in ('provisioning', 'removing') and s.hosting_lease_until > now();
  select exists (select 1 from public.sites s
                 where public.hosting_due_work(s) in ('provision', 'remove'))
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

revoke execute on function public.hosting_step_after(text, text),
  public.hosting_removal_requested(uuid),
  public.hosting_on_claim_change(),
  public.hosting_request_removal(uuid, boolean, boolean),
  public.hosting_deprovision(text, boolean),
  public.hosting_finish_removal(uuid, uuid, text, boolean, text, text, timestamptz, integer,
                                boolean, text)
  from public, anon, authenticated;
grant execute on function public.hosting_step_after(text, text),
  public.hosting_removal_requested(uuid),
  public.hosting_request_removal(uuid, boolean, boolean),
  public.hosting_deprovision(text, boolean),
  public.hosting_finish_removal(uuid, uuid, text, boolean, text, text, timestamptz, integer,
                                boolean, text)
  to service_role;

-- Realtime: where the project has the supabase_realtime publication (hosted Supabase does), the
-- row's progress and the events are published. RLS still decides who receives them.
do $$
declare
  v_table text;
begin
  if not exists (select 1 from pg_catalog.pg_publication where pubname = 'supabase_realtime') then
    return;
  end if;
  foreach v_table in array array['sites', 'hosting_events'] loop
    if not exists (select 1 from pg_catalog.pg_publication_tables
                   where pubname = 'supabase_realtime' and schemaname = 'public'
                     and tablename = v_table) then
      execute format('alter publication supabase_realtime add table public.%I', v_table);
    end if;
  end loop;
exception when others then
  raise warning 'hosting-automator: could not add the tables to supabase_realtime (%)', sqlerrm;
end
$$;

-- Metrics, redefined: a removal's successful deleteSite is a Matomo call that worked, not an error.
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
                   'MATOMO_DUPLICATES', 'MATOMO_DELETED') then 'error' else 'ok' end as outcome
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
