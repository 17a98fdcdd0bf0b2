-- hosting_retry(domain): the operator's way back to pending for a failed or stuck site.
begin;
select plan(14);

set local client_min_messages = error;
delete from vault.secrets where name in ('hosting_automator_url', 'hosting_automator_key');

insert into public.sites (domain, status_dns, status_hosting, hosting_attempts, hosting_error) values
  ('broken.example.com', 'active', 'failed', 8, 'SITE_USER_CONFLICT: siteUser: This value already exists.'),
  ('live.example.com', 'active', 'active', 1, null);
insert into public.sites (domain, status_dns, status_hosting, hosting_attempts, hosting_lease_until,
                          hosting_claim_token) values
  ('stuck.example.com', 'active', 'provisioning', 2, now() - interval '1 minute', gen_random_uuid()),
  ('busy.example.com', 'active', 'provisioning', 1, now() + interval '8 minutes', gen_random_uuid());

select is(public.hosting_retry('broken.example.com') ->> 'previous_status', 'failed',
  'a failed site is reset');
select results_eq(
  $$ select status_hosting, hosting_attempts, hosting_next_attempt_at, hosting_error
     from public.sites where domain = 'broken.example.com' $$,
  $$ values ('pending', 0, null::timestamptz, 'SITE_USER_CONFLICT: siteUser: This value already exists.') $$,
  '… to pending, due now, with a fresh set of attempts; the last error stays until the next outcome');
select is(
  (select count(*) from public.hosting_events e join public.sites s on s.id = e.site_id
   where s.domain = 'broken.example.com' and e.step = 'reset'), 1::bigint,
  '… and the reset is one event');

select is(public.hosting_retry('  STUCK.example.com ') ->> 'previous_status', 'provisioning',
  'a stuck site (its lease expired) is reset (the domain is matched case- and space-insensitively)');
select results_eq(
  $$ select status_hosting, hosting_lease_until, hosting_claim_token, hosting_attempts
     from public.sites where domain = 'stuck.example.com' $$,
  $$ values ('pending', null::timestamptz, null::uuid, 0) $$,
  '… its lease and claim token are gone, so the old worker can no longer write its result');
select is(
  (select public.hosting_finish(s.id, e.token, 'active', p_doc_root => '/x') ->> 'applied'
   from public.sites s, (select gen_random_uuid() as token) e where s.domain = 'stuck.example.com'),
  'false', 'a late finish from the previous claim is not applied');

select throws_ok($$ select public.hosting_retry('live.example.com') $$, '22023',
  'hosting_retry: live.example.com is already active', 'an active site is refused');
select is((select status_hosting from public.sites where domain = 'live.example.com'), 'active',
  '… and left as it was');
select throws_ok($$ select public.hosting_retry('nowhere.example.com') $$, 'P0002',
  'hosting_retry: no site with domain nowhere.example.com', 'an unknown domain is a clear error');

select is(
  (select count(*) from public.hosting_events e join public.sites s on s.id = e.site_id
   where s.domain = 'stuck.example.com' and e.step = 'reset'), 1::bigint,
  'a reset through hosting_retry is recorded once');

select throws_ok($$ select public.hosting_retry('busy.example.com') $$, '55006', null,
  'a site whose lease is still valid is refused: a worker is on it');
select results_eq(
  $$ select status_hosting, hosting_attempts, hosting_lease_until > now()
     from public.sites where domain = 'busy.example.com' $$,
  $$ values ('provisioning', 1, true) $$,
  '… and left exactly as it was');
select throws_ok($$ update public.sites set status_hosting = 'pending' where domain = 'busy.example.com' $$,
  '55006', null, 'a plain reset to pending under a valid lease is refused as well');

select function_privs_are('public', 'hosting_retry', array['text'], 'service_role', array['EXECUTE'],
  'the service role may call hosting_retry');

select * from finish();
rollback;
