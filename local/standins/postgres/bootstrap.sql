-- Stand-in for what a Supabase project's database has before any migration. Replaces: the
-- supabase/postgres image's init scripts. Follows docs/supabase.md and supabase/postgres
-- migrations/db/init-scripts (00000000000000-initial-schema.sql): the API roles anon and
-- authenticated (nologin noinherit), service_role (nologin noinherit bypassrls), authenticator
-- (login noinherit, member of the three; local/stack sets its password), their statement
-- timeouts, schema extensions with uuid-ossp and pgcrypto, usage on public/extensions for the API
-- roles, postgres' search_path "$user", public, extensions, and the Vault (here the supabase_vault
-- stand-in in extension/).
-- Differs: no supabase_admin, auth schema (the migrations use none of it), storage, realtime (only
-- its empty supabase_realtime publication),
-- graphql or pgsodium. And, like
-- projects after Supabase's 2026 change (docs/supabase.md#roles-schemas-and-grants), NO default privileges on new objects in
-- public: migrations must grant explicitly. pg_net and pg_cron are not created here (a hosted
-- project enables them; the migrations do so).
-- Idempotent, and runnable in any database of the cluster (roles are cluster-wide, the rest is
-- per database).

do $do$
begin
  if not exists (select from pg_catalog.pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select from pg_catalog.pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select from pg_catalog.pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select from pg_catalog.pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
  end if;

  if not pg_catalog.pg_has_role('authenticator', 'anon', 'member') then
    grant anon to authenticator;
  end if;
  if not pg_catalog.pg_has_role('authenticator', 'authenticated', 'member') then
    grant authenticated to authenticator;
  end if;
  if not pg_catalog.pg_has_role('authenticator', 'service_role', 'member') then
    grant service_role to authenticator;
  end if;
end
$do$;

alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';
alter role authenticator set statement_timeout = '8s';
alter role postgres set search_path = "$user", public, extensions;

create schema if not exists extensions;
create extension if not exists "uuid-ossp" with schema extensions;
create extension if not exists pgcrypto with schema extensions;

grant usage on schema public to postgres, anon, authenticated, service_role;
grant usage on schema extensions to postgres, anon, authenticated, service_role;

create extension if not exists supabase_vault;

-- Realtime's publication, empty, as a new hosted project has it (migrations add their tables).
do $do$
begin
  if not exists (select from pg_catalog.pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
end
$do$;
