-- Only the service role reaches the product's tables, view and functions; RLS is on, no policies.
begin;
select plan(16);

set local client_min_messages = error;
delete from vault.secrets where name in ('hosting_automator_url', 'hosting_automator_key');
insert into public.sites (domain, status_dns) values ('rls.example.com', 'pending');

select ok((select relrowsecurity from pg_catalog.pg_class where oid = 'public.sites'::regclass),
  'RLS is on for sites');
select ok((select relrowsecurity from pg_catalog.pg_class where oid = 'public.hosting_events'::regclass),
  'RLS is on for hosting_events');
select is((select count(*) from pg_catalog.pg_policies where tablename in ('sites', 'hosting_events')),
  0::bigint, 'with no policies');

select table_privs_are('public', 'sites', 'service_role', array['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  'the service role has explicit grants on sites');
select table_privs_are('public', 'hosting_events', 'service_role', array['SELECT', 'INSERT'],
  'and may read and append events');
select table_privs_are('public', 'sites', 'anon', array[]::text[], 'anon has nothing on sites');
select table_privs_are('public', 'sites', 'authenticated', array[]::text[], 'authenticated has nothing on sites');
select table_privs_are('public', 'hosting_metrics', 'anon', array[]::text[], 'anon cannot read the metrics');

set local role anon;
select throws_ok($$ select * from public.sites $$, '42501', null, 'anon cannot read sites');
select throws_ok($$ select public.hosting_claim() $$, '42501', null, 'anon cannot claim');
select throws_ok($$ select public.hosting_retry('rls.example.com') $$, '42501', null, 'anon cannot reset');
reset role;

set local role authenticated;
select throws_ok($$ update public.sites set status_hosting = 'failed' $$, '42501', null,
  'authenticated cannot update sites');
select throws_ok($$ select * from public.hosting_events $$, '42501', null, 'authenticated cannot read events');
reset role;

set local role service_role;
select is((select count(*) from public.sites where domain = 'rls.example.com'), 1::bigint,
  'the service role reads sites');
select is(jsonb_typeof(public.hosting_claim()), 'object', 'the service role claims');
select is((select count(*) from public.hosting_metrics), 1::bigint, 'the service role reads the metrics');
reset role;

select * from finish();
rollback;
