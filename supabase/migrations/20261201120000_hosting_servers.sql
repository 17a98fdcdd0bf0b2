-- Hosting Automator: several CloudPanel servers. public.hosting_servers lists them (connection,
-- pinned host key, caps, public addresses, health); a new site is placed on one when its row is
-- created, so the DNS side can point the domain there (public.hosting_dns_targets); the claim
-- enforces the global cap and each server's cap in one step; a failing server pauses only itself.
-- With no row in hosting_servers nothing changes: sites without a server belong to the function's
-- SSH_HOST (the implicit server), as before.

create table if not exists public.hosting_servers (
  -- Also names the server's key override in the function's environment: fra-1 →
  -- SSH_PRIVATE_KEY__FRA_1 (lower case, digits and single hyphens, so the mapping is one to one).
  name text primary key
    check (name ~ '^[a-z0-9]+(-[a-z0-9]+)*$' and length(name) <= 40),
  ssh_host text not null check (ssh_host ~ '^[A-Za-z0-9.:\-\[\]]+$'),
  ssh_port integer not null default 22 check (ssh_port between 1 and 65535),
  ssh_user text not null default 'root' check (ssh_user ~ '^[a-z_][a-z0-9_-]{0,31}$'),
  -- As `ssh-keygen -lf` prints it: the only host key the function accepts for this server.
  host_key_fingerprint text not null check (host_key_fingerprint ~ '^SHA256:[A-Za-z0-9+/]{43}$'),
  -- Sites provisioning or being removed on this server at once (HOSTING_MAX_CONCURRENT caps all).
  max_concurrent integer not null default 3 check (max_concurrent > 0),
  -- How many sites (any state but removed) the server may hold; placement only.
  capacity integer not null check (capacity >= 0),
  accepts_new_sites boolean not null default true,
  -- What the DNS side publishes (A, AAAA) and the DNS check compares with; the check is off for a
  -- server with neither.
  public_ipv4 inet check (family(public_ipv4) = 4 and masklen(public_ipv4) = 32),
  public_ipv6 inet check (family(public_ipv6) = 6 and masklen(public_ipv6) = 128),
  -- Health, written by the function (hosting_report_health with target 'server:<name>'): while
  -- paused_until is ahead nothing is claimed for this server. health_key is a digest of the
  -- private key the failures were seen with (never the key): a new key lifts the pause at once,
  -- and so does a change of host, port, user or fingerprint.
  paused_until timestamptz,
  failures integer not null default 0 check (failures >= 0),
  last_code text,
  last_error text,
  health_key text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.hosting_servers is
  'Hosting Automator: the CloudPanel servers sites are placed on (no secret here: keys stay function secrets)';

alter table public.hosting_servers enable row level security;
revoke all on table public.hosting_servers from anon, authenticated;
grant select, insert, update, delete on table public.hosting_servers to service_role;

-- Whether the function has an implicit server (SSH_HOST), as it last claimed: the sweeper wakes
-- it for sites without a server only then.
alter table public.hosting_runtime
  add column if not exists implicit_server boolean not null default true;

alter table public.sites
  add column if not exists hosting_server text
    references public.hosting_servers (name) on update cascade on delete restrict;
comment on column public.sites.hosting_server is
  'the CloudPanel server (hosting_servers.name) the site is placed on, chosen when the row is created; null: the function''s SSH_HOST';
create index if not exists sites_hosting_server_idx on public.sites (hosting_server)
  where status_hosting <> 'removed';

-- A server's pause is over before its time (corrected row or key): its sites whose next attempt
-- falls within the pause could not have gone on before its end anyway (each failure of a run may
-- have pushed its site to a later end), so they are due now — and, through the sites trigger, woken.
create or replace function public.hosting_lift_server_pause(p_server text, p_paused_until timestamptz)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_count integer;
begin
  -- (+ 1 ms: the function writes that end back as a JavaScript Date, in milliseconds)
  update public.sites s set hosting_next_attempt_at = null
  where s.hosting_server = p_server and s.status_hosting in ('pending', 'removing')
    and s.hosting_next_attempt_at > now()
    and s.hosting_next_attempt_at <= p_paused_until + interval '1 millisecond';
  get diagnostics v_count = row_count;
  return v_count;
end
$$;

-- A changed connection or host key is a corrected server: its pause is over.
create or replace function public.hosting_on_server_change()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if (new.ssh_host, new.ssh_port, new.ssh_user, new.host_key_fingerprint)
     is distinct from (old.ssh_host, old.ssh_port, old.ssh_user, old.host_key_fingerprint) then
    if old.paused_until > now() then
      perform public.hosting_lift_server_pause(old.name, old.paused_until);
    end if;
    new.paused_until := null;
    new.failures := 0;
    new.health_key := null;
  end if;
  new.updated_at := now();
  return new;
end
$$;

drop trigger if exists hosting_server_change on public.hosting_servers;
create trigger hosting_server_change
before update on public.hosting_servers
for each row
execute function public.hosting_on_server_change();

-- The server a new site goes to: the most free capacity among those accepting new sites, ties by
-- name; null when none has room. Sites that are not removed hold their place.
create or replace function public.hosting_pick_server()
returns text
language sql
stable
set search_path = ''
as $$
  select h.name
  from public.hosting_servers h
  cross join lateral (
    select count(*) as used from public.sites s
    where s.hosting_server = h.name and s.status_hosting <> 'removed') u
  where h.accepts_new_sites and h.capacity > u.used
  order by h.capacity - u.used desc, h.name
  limit 1
$$;

-- Placement when a row is created without a server (a row that names one is pinned there, full or
-- not). Inserts that place run one transaction at a time, so two never take the last free place.
-- No server with room: the row is kept unplaced with a WARNING (skip reason NO_SERVER) until an
-- operator adds room and runs hosting_place.
create or replace function public.hosting_on_site_insert()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if new.hosting_server is null and exists (select 1 from public.hosting_servers) then
    perform pg_advisory_xact_lock(7243106512);
    new.hosting_server := public.hosting_pick_server();
    if new.hosting_server is null then
      raise warning 'hosting-automator: no server accepts new sites with free capacity; % is not placed',
        new.domain
        using hint = 'add a server or capacity, then: select public.hosting_place(''' || new.domain || ''')';
    end if;
  end if;
  return new;
end
$$;

drop trigger if exists hosting_place on public.sites;
create trigger hosting_place
before insert on public.sites
for each row
execute function public.hosting_on_site_insert();

-- Once a site exists on a server it stays there: its server changes only while nothing of it is
-- there (no document root; pending, failed or removed) and no worker holds it. Giving a server
-- to a site that has none (moving an installation to hosting_servers) is always allowed.
create or replace function public.hosting_on_server_reassign()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  -- Unchanged, or its server was renamed (on update cascade): the site did not move.
  if new.hosting_server is not distinct from old.hosting_server
     or not exists (select 1 from public.hosting_servers h where h.name = old.hosting_server) then
    return new;
  end if;
  if old.hosting_lease_until > now() then
    raise exception 'hosting-automator: % is being worked on until % (lease); its server cannot change now',
      old.domain, old.hosting_lease_until using errcode = '55006';
  end if;
  if old.hosting_server is not null and (old.hosting_doc_root is not null
     or old.status_hosting not in ('pending', 'failed', 'removed')) then
    raise exception 'hosting-automator: % exists on server %; a site is never moved',
      old.domain, old.hosting_server
      using errcode = '55000',
            hint = format('remove it first (select public.hosting_deprovision(%L)), then change hosting_server', old.domain);
  end if;
  return new;
end
$$;

drop trigger if exists hosting_server_reassign on public.sites;
create trigger hosting_server_reassign
before update of hosting_server on public.sites
for each row
execute function public.hosting_on_server_reassign();

-- Operator entry point: place a site that has no server (it was created while none had room).
create or replace function public.hosting_place(domain text)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_site public.sites;
  v_server text;
begin
  perform pg_advisory_xact_lock(7243106512);
  select * into v_site from public.sites s where s.domain = lower(btrim(hosting_place.domain))
  for update;
  if not found then
    raise exception 'hosting_place: no site with domain %', hosting_place.domain
      using errcode = 'P0002';
  end if;
  if v_site.hosting_server is not null then
    raise exception 'hosting_place: % is already on server %', v_site.domain, v_site.hosting_server
      using errcode = '22023';
  end if;
  v_server := public.hosting_pick_server();
  if v_server is null then
    raise exception 'hosting_place: no server accepts new sites with free capacity'
      using errcode = '53400', hint = 'add a server or raise a capacity in public.hosting_servers';
  end if;
  update public.sites s set hosting_server = v_server, hosting_updated_at = now()
  where s.id = v_site.id;
  return v_server;
end
$$;

-- What the DNS side publishes for each site: the A and AAAA records of its server.
create or replace view public.hosting_dns_targets
with (security_invoker = true)
as
select s.id as site_id, s.domain, s.hosting_server,
       host(h.public_ipv4) as ipv4, host(h.public_ipv6) as ipv6, s.status_hosting
from public.sites s
left join public.hosting_servers h on h.name = s.hosting_server;
comment on view public.hosting_dns_targets is
  'Hosting Automator: the addresses to publish for each site (its server''s public IPv4/IPv6); null: no server, or the implicit one';

-- The server's pause, if it applies to the key the function uses for it now. p_ssh_keys is
-- {"*": default key digest, "<name>": override digest, …}; null (the sweeper) trusts the record.
create or replace function public.hosting_server_paused(h public.hosting_servers, p_ssh_keys jsonb)
returns timestamptz
language sql
stable
set search_path = ''
as $$
  select case when h.paused_until > now()
                   and (p_ssh_keys is null or h.health_key is not distinct from
                        coalesce(p_ssh_keys ->> h.name, p_ssh_keys ->> '*'))
              then h.paused_until end
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
    'step', s.hosting_step, 'step_started_at', s.hosting_step_started_at,
    'server', s.hosting_server)
    || coalesce((select jsonb_build_object(
                   'server_user', h.ssh_user,
                   'server_addresses', to_jsonb(array_remove(array[host(h.public_ipv4),
                                                                   host(h.public_ipv6)], null)))
                 from public.hosting_servers h where h.name = s.hosting_server), '{}'::jsonb)
$$;

-- A job carries its server's connection (null: the implicit server of SSH_HOST).
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
    'delete_analytics', s.hosting_remove_analytics,
    'server', (select jsonb_build_object(
                 'name', h.name, 'host', h.ssh_host, 'port', h.ssh_port, 'user', h.ssh_user,
                 'host_key_fingerprint', h.host_key_fingerprint,
                 'addresses', to_jsonb(array_remove(array[host(h.public_ipv4),
                                                          host(h.public_ipv6)], null)))
               from public.hosting_servers h where h.name = s.hosting_server))
$$;

drop function if exists public.hosting_claim(uuid, integer, integer, integer, integer, integer,
  text, text, text, text);

-- The claim, with several servers. As before (one claim at a time, leases, tokens, attempts, the
-- Matomo pause for analytics), and: a site is taken only when its server can take it — the
-- implicit server (no hosting_server) when the function has one (p_implicit_server) and it is not
-- paused; a listed server when it is not paused for the key used now (p_ssh_keys) and fewer than
-- its max_concurrent of its sites are provisioning or being removed. HOSTING_MAX_CONCURRENT
-- (p_max_concurrent) caps all servers together. Both caps are counted under the claim lock.
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
  p_matomo_credential text default null,
  p_ssh_keys jsonb default null,
  p_implicit_server boolean default true
)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_busy integer;
  v_room integer;
  v_lifted record;
  v_jobs jsonb;
  v_analytics jsonb;
  v_site jsonb;
  v_server public.hosting_servers;
  v_ssh_paused timestamptz;
  v_matomo_paused timestamptz;
  v_servers_paused jsonb;
begin
  if p_limit < 1 or p_max_concurrent < 1 or p_lease_seconds < 1 or p_max_attempts < 1
     or p_analytics_lease_seconds < 1 then
    raise exception 'hosting_claim: every limit must be a positive number'
      using errcode = '22023';
  end if;

  perform pg_advisory_xact_lock(7243106511);

  insert into public.hosting_runtime (id, max_concurrent, implicit_server)
  values (true, p_max_concurrent, p_implicit_server)
  on conflict (id) do update
  set max_concurrent = excluded.max_concurrent, implicit_server = excluded.implicit_server,
      updated_at = now()
  where (public.hosting_runtime.max_concurrent, public.hosting_runtime.implicit_server)
        is distinct from (excluded.max_concurrent, excluded.implicit_server);

  -- The implicit server and Matomo: a health row of other settings is from an earlier
  -- configuration, so its pause is over (as before).
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
  -- A listed server paused for a key the function no longer uses: the operator changed the key.
  if p_ssh_keys is not null then
    for v_lifted in
      update public.hosting_servers h
      set paused_until = null, failures = 0, health_key = null
      from public.hosting_servers old_h
      where old_h.name = h.name and h.paused_until > now()
        and h.health_key is distinct from coalesce(p_ssh_keys ->> h.name, p_ssh_keys ->> '*')
      returning h.name, old_h.paused_until
    loop
      perform public.hosting_lift_server_pause(v_lifted.name, v_lifted.paused_until);
    end loop;
  end if;
  v_ssh_paused := public.hosting_paused_until(p_ssh_target, p_ssh_credential);
  v_matomo_paused := public.hosting_paused_until(p_matomo_target, p_matomo_credential);
  select jsonb_object_agg(h.name, h.paused_until) into v_servers_paused
  from public.hosting_servers h where h.paused_until > now();

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
  v_room := least(p_limit, greatest(p_max_concurrent - v_busy, 0));

  with busy as (
    select s.hosting_server as name, count(*) as n
    from public.sites s
    where s.status_hosting in ('provisioning', 'removing') and s.hosting_lease_until > now()
      and s.hosting_server is not null
    group by s.hosting_server
  ), rooms as (
    select h.name, greatest(h.max_concurrent - coalesce(b.n, 0), 0) as room
    from public.hosting_servers h
    left join busy b on b.name = h.name
    where public.hosting_server_paused(h, p_ssh_keys) is null
  ), due as (
    select s.id, s.hosting_server,
           row_number() over (partition by s.hosting_server
                              order by public.hosting_due_since(s), s.id) as place
    from public.sites s
    where public.hosting_due_work(s) in ('provision', 'remove')
      and (p_site_id is null or s.id = p_site_id)
  ), fits as (
    -- The implicit server's sites fit within the global room alone.
    select d.id from due d
    where d.hosting_server is null and p_implicit_server and v_ssh_paused is null
    union all
    select d.id from due d join rooms r on r.name = d.hosting_server
    where d.place <= r.room
  ), picked as (
    select s.id, public.hosting_due_work(s) as work, s.hosting_lease_until is not null as reclaimed
    from public.sites s
    where s.id in (select f.id from fits f)
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
           nullif(concat_ws('; ',
             case when c.reclaimed then 'the previous lease expired'
                  when c.work = 'remove' then 'removal' end,
             'server ' || (c.site).hosting_server), '')
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
    select h.* into v_server from public.hosting_servers h where h.name = v_site ->> 'server';
    if v_site is null then
      v_site := null;
    elsif v_site ->> 'due' in ('provision', 'remove') and v_site ->> 'server' is null
          and not p_implicit_server then
      v_site := v_site || jsonb_build_object('skip_reason', 'NO_SERVER');
    elsif v_site ->> 'due' in ('provision', 'remove')
          and ((v_site ->> 'server' is null and v_ssh_paused is not null)
               or public.hosting_server_paused(v_server, p_ssh_keys) is not null) then
      v_site := v_site || jsonb_build_object('skip_reason', 'SERVER_PAUSED');
    elsif v_site ->> 'due' = 'analytics' and v_matomo_paused is not null then
      v_site := v_site || jsonb_build_object('skip_reason', 'ANALYTICS_PAUSED');
    elsif v_site ->> 'due' is not null then
      -- due, its server usable, and still not taken: the global cap or its server's was reached
      v_site := v_site || jsonb_build_object('skip_reason', 'AT_CAPACITY');
    end if;
  end if;

  return jsonb_build_object('claimed', v_jobs, 'site', v_site,
    'paused', jsonb_build_object('ssh', v_ssh_paused, 'matomo', v_matomo_paused,
                                 'servers', coalesce(v_servers_paused, '{}'::jsonb)));
end
$$;

-- Report how a target fared (same signature). New: 'server:<name>' is a listed server, whose
-- health lives in its row (p_credential: the digest of the key it was used with).
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
  v_server public.hosting_servers;
begin
  if p_target is null or p_target !~ '^(ssh|matomo|server):' then
    raise exception 'hosting_report_health: target must start with ssh:, matomo: or server:'
      using errcode = '22023';
  end if;

  if p_target like 'server:%' then
    update public.hosting_servers h
    set failures = case when p_ok then 0
                        when h.health_key is not distinct from p_credential then h.failures + 1
                        else 1 end,
        health_key = case when p_ok then null else p_credential end,
        last_code = case when p_ok then h.last_code else p_code end,
        last_error = case when p_ok then h.last_error else left(p_message, 2000) end,
        paused_until = case when p_ok then null else h.paused_until end
    where h.name = substr(p_target, 8)
    returning * into v_server;
    if not found then
      raise exception 'hosting_report_health: no server %', substr(p_target, 8)
        using errcode = 'P0002';
    end if;
    if not p_ok then
      update public.hosting_servers h
      set paused_until = now() + make_interval(secs => greatest(p_min_seconds,
            least(p_max_seconds::double precision,
                  p_base_seconds * 2 ^ least(v_server.failures - 1, 30))))
      where h.name = v_server.name
      returning * into v_server;
    end if;
    return jsonb_build_object('paused_until', v_server.paused_until, 'failures', v_server.failures);
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

-- A site that went active on a listed server ends that server's failure streak (a pause still
-- running stays until it ends), as hosting_finish does for the implicit server.
create or replace function public.hosting_on_site_active()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  update public.hosting_servers h
  set failures = 0
  where h.name = new.hosting_server and h.failures > 0
    and (h.paused_until is null or h.paused_until <= now());
  return null;
end
$$;

drop trigger if exists hosting_server_success on public.sites;
create trigger hosting_server_success
after update of status_hosting on public.sites
for each row
when (new.status_hosting = 'active' and old.status_hosting = 'provisioning'
      and new.hosting_server is not null)
execute function public.hosting_on_site_active();

-- The sweeper, redefined: provisioning or removal counts as work only for a site whose server can
-- take it now (not paused, below its cap), within the global cap.
create or replace function public.hosting_automator_sweep()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_cap integer;
  v_implicit boolean;
  v_busy integer;
  v_provision boolean;
  v_analytics boolean;
begin
  select r.max_concurrent, r.implicit_server into v_cap, v_implicit from public.hosting_runtime r;
  select count(*) into v_busy from public.sites s
  where s.status_hosting in ('provisioning', 'removing') and s.hosting_lease_until > now();
  select v_busy < coalesce(v_cap, 1) and exists (
      select 1 from public.sites s
      left join public.hosting_servers h on h.name = s.hosting_server
      where public.hosting_due_work(s) in ('provision', 'remove')
        and case
          when s.hosting_server is null then coalesce(v_implicit, true) and not exists (
            select 1 from public.hosting_health hh
            where hh.target like 'ssh:%' and hh.paused_until > now())
          else public.hosting_server_paused(h, null) is null
            and h.max_concurrent > (
              select count(*) from public.sites b
              where b.hosting_server = h.name and b.status_hosting in ('provisioning', 'removing')
                and b.hosting_lease_until > now())
        end)
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

-- Per server: what it holds and does, and whether it is paused.
create or replace view public.hosting_server_metrics
with (security_invoker = true)
as
select h.name as server,
       count(s.id) filter (where s.status_hosting <> 'removed') as sites,
       h.capacity,
       greatest(h.capacity - count(s.id) filter (where s.status_hosting <> 'removed'), 0)
         as free_capacity,
       h.accepts_new_sites,
       count(s.id) filter (where s.status_hosting = 'active') as sites_active,
       count(s.id) filter (where s.status_hosting in ('provisioning', 'removing')
                             and s.hosting_lease_until > now()) as sites_provisioning,
       h.max_concurrent,
       count(s.id) filter (where s.status_hosting = 'failed') as sites_failed,
       coalesce(h.paused_until > now(), false) as paused,
       case when h.paused_until > now() then h.paused_until end as paused_until,
       h.failures, h.last_code, h.last_error
from public.hosting_servers h
left join public.sites s on s.hosting_server = h.name
group by h.name;

-- hosting_metrics, redefined with one more column: the per-server figures as a JSON array.
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
  (select count(*) from matomo) as matomo_calls,
  (select coalesce(jsonb_agg(to_jsonb(m) order by m.server), '[]'::jsonb)
   from public.hosting_server_metrics m) as servers;

revoke all on public.hosting_dns_targets, public.hosting_server_metrics from anon, authenticated;
grant select on public.hosting_dns_targets, public.hosting_server_metrics to service_role;

revoke execute on function public.hosting_lift_server_pause(text, timestamptz),
  public.hosting_on_server_change(), public.hosting_pick_server(),
  public.hosting_on_site_insert(), public.hosting_on_server_reassign(),
  public.hosting_place(text), public.hosting_server_paused(public.hosting_servers, jsonb),
  public.hosting_claim(uuid, integer, integer, integer, integer, integer, text, text, text, text,
                       jsonb, boolean),
  public.hosting_on_site_active()
  from public, anon, authenticated;
grant execute on function public.hosting_lift_server_pause(text, timestamptz),
  public.hosting_pick_server(), public.hosting_place(text),
  public.hosting_server_paused(public.hosting_servers, jsonb),
  public.hosting_claim(uuid, integer, integer, integer, integer, integer, text, text, text, text,
                       jsonb, boolean)
  to service_role;
