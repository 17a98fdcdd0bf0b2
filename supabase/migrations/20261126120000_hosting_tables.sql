-- Hosting Automator: public.sites (created, or completed when the Website Factory already has it),
-- the per-step event log public.hosting_events, row level security and explicit grants.

create table if not exists public.sites (
  id uuid primary key default gen_random_uuid(),
  domain text not null,
  status_dns text,
  status_hosting text not null default 'pending'
);

-- An existing table may have only some of the columns: add what is missing, never touch data the
-- Website Factory owns beyond filling the two columns that must not be null.
alter table public.sites
  add column if not exists status_dns text,
  add column if not exists status_hosting text,
  add column if not exists hosting_doc_root text,
  add column if not exists matomo_site_id integer,
  add column if not exists hosting_site_user text,
  add column if not exists hosting_error text,
  add column if not exists hosting_attempts integer,
  add column if not exists hosting_lease_until timestamptz,
  add column if not exists hosting_next_attempt_at timestamptz,
  add column if not exists hosting_updated_at timestamptz,
  -- Which claim owns the row while it is leased: a worker whose lease was taken over (or reset by an
  -- operator) can no longer write its late result over the new one.
  add column if not exists hosting_claim_token uuid;

update public.sites set status_hosting = 'pending' where status_hosting is null;
update public.sites set hosting_attempts = 0 where hosting_attempts is null;

alter table public.sites
  alter column domain set not null,
  alter column status_hosting set default 'pending',
  alter column status_hosting set not null,
  alter column hosting_attempts set default 0,
  alter column hosting_attempts set not null;

do $$
begin
  -- The id default, only where the existing table has none.
  if not exists (
    select 1 from pg_catalog.pg_attrdef d
    join pg_catalog.pg_attribute a on a.attrelid = d.adrelid and a.attnum = d.adnum
    where d.adrelid = 'public.sites'::regclass and a.attname = 'id'
  ) then
    alter table public.sites alter column id set default gen_random_uuid();
  end if;

  -- One row per domain: keep an existing unique constraint or index on (domain), else add one.
  if not exists (
    select 1 from pg_catalog.pg_index i
    where i.indrelid = 'public.sites'::regclass and i.indisunique and i.indnatts = 1
      and i.indkey[0] = (select attnum from pg_catalog.pg_attribute
                         where attrelid = 'public.sites'::regclass and attname = 'domain')
  ) then
    alter table public.sites add constraint sites_domain_key unique (domain);
  end if;
end
$$;

alter table public.sites drop constraint if exists sites_status_hosting_check;
alter table public.sites add constraint sites_status_hosting_check
  check (status_hosting in ('pending', 'provisioning', 'active', 'failed')) not valid;
alter table public.sites drop constraint if exists sites_hosting_attempts_check;
alter table public.sites add constraint sites_hosting_attempts_check
  check (hosting_attempts >= 0) not valid;
alter table public.sites drop constraint if exists sites_provisioning_is_leased_check;
alter table public.sites add constraint sites_provisioning_is_leased_check
  check (status_hosting <> 'provisioning'
         or (hosting_lease_until is not null and hosting_claim_token is not null)) not valid;

-- New rows are checked from now on; rows that predate this product are checked here, and a row that
-- does not fit is reported rather than blocking the migration (it is simply never picked up).
do $$
declare
  v_name text;
begin
  foreach v_name in array array['sites_status_hosting_check', 'sites_hosting_attempts_check',
                                'sites_provisioning_is_leased_check'] loop
    begin
      execute format('alter table public.sites validate constraint %I', v_name);
    exception when check_violation then
      raise warning 'hosting-automator: existing rows of public.sites violate %; fix them, then run: alter table public.sites validate constraint %', v_name, v_name;
    end;
  end loop;
end
$$;

comment on column public.sites.status_hosting is
  'pending -> provisioning -> active | failed; set back to pending to provision again (Hosting Automator)';
comment on column public.sites.hosting_attempts is 'claims since the site was last reset to pending by an operator';
comment on column public.sites.hosting_lease_until is
  'while provisioning (or while an active site''s analytics registration runs): when the claim expires';
comment on column public.sites.hosting_next_attempt_at is
  'not before this: the next provisioning attempt (pending) or analytics registration (active without matomo_site_id)';
comment on column public.sites.hosting_claim_token is 'identifies the claim that holds the lease; null when not leased';

create table if not exists public.hosting_events (
  id bigint generated always as identity primary key,
  site_id uuid not null references public.sites (id) on delete cascade,
  attempt integer not null default 0,
  step text not null
    check (step in ('dispatch', 'claim', 'site', 'certificate', 'analytics', 'finish', 'reset')),
  outcome text not null check (outcome in ('ok', 'warning', 'error', 'skipped')),
  code text,
  message text,
  duration_ms integer check (duration_ms >= 0),
  created_at timestamptz not null default now()
);

comment on table public.hosting_events is
  'Hosting Automator: one row per step of every attempt (secrets removed from messages)';

create index if not exists hosting_events_site_idx on public.hosting_events (site_id, created_at);
create index if not exists hosting_events_step_idx on public.hosting_events (step, created_at);

-- Only the service role reaches these tables: RLS on, no policies, explicit grants (new Supabase
-- projects no longer grant new public tables to the API roles by default; older ones still do).
alter table public.sites enable row level security;
alter table public.hosting_events enable row level security;

revoke all on table public.sites, public.hosting_events from anon, authenticated;
grant select, insert, update, delete on table public.sites to service_role;
grant select, insert on table public.hosting_events to service_role;
