-- The claim, the lease, the concurrency cap and finishing a claim, moving time by editing rows.
begin;
select plan(31);

-- No dispatching in this file: the trigger's requests are not what is tested here.
delete from vault.secrets where name in ('hosting_automator_url', 'hosting_automator_key');
set local client_min_messages = error;

insert into public.sites (id, domain, status_dns) values
  ('a0000000-0000-4000-8000-000000000001', 'one.example.com', 'active'),
  ('a0000000-0000-4000-8000-000000000002', 'two.example.com', 'active'),
  ('a0000000-0000-4000-8000-000000000003', 'three.example.com', 'active'),
  ('a0000000-0000-4000-8000-000000000004', 'no-dns.example.com', null);
insert into public.sites (id, domain, status_dns, hosting_next_attempt_at) values
  ('a0000000-0000-4000-8000-000000000005', 'later.example.com', 'active', now() + interval '5 minutes');

create temporary table claim1 as select public.hosting_claim(
  'a0000000-0000-4000-8000-000000000001', 1, 2, 600, 3) as answer;

select is(jsonb_array_length((select answer->'claimed' from claim1)), 1, 'a due site is claimed');
select results_eq(
  $$ select status_hosting, hosting_attempts, hosting_lease_until > now() + interval '590 seconds',
            hosting_claim_token = ((select answer->'claimed'->0->>'claim_token' from claim1))::uuid
     from public.sites where domain = 'one.example.com' $$,
  $$ values ('provisioning', 1, true, true) $$,
  'the claim moves it to provisioning with attempt 1, a lease and the returned token');
select results_eq(
  $$ select step, outcome, code, attempt from public.hosting_events
     where site_id = 'a0000000-0000-4000-8000-000000000001' and step = 'claim' $$,
  $$ values ('claim', 'ok', 'CLAIMED', 1) $$,
  'the claim is an event');
select is((select answer->'site' from claim1), 'null'::jsonb, 'a claimed site is not reported back as unclaimed');

select is(
  jsonb_array_length(public.hosting_claim('a0000000-0000-4000-8000-000000000001', 1, 2, 600, 3) -> 'claimed'),
  0, 'a leased site is not claimed a second time');
select is(
  public.hosting_claim('a0000000-0000-4000-8000-000000000001', 1, 2, 600, 3) #>> '{site,status_hosting}',
  'provisioning', '… and the answer shows the row as it is');

select is(
  jsonb_array_length(public.hosting_claim('a0000000-0000-4000-8000-000000000004', 1, 5, 600, 3) -> 'claimed'),
  0, 'a site whose DNS is not active is not claimed');
select is(
  jsonb_array_length(public.hosting_claim('a0000000-0000-4000-8000-000000000005', 1, 5, 600, 3) -> 'claimed'),
  0, 'a site waiting for its next attempt is not claimed');

-- The cap: one is provisioning, the cap is 2, three are due.
select is(
  jsonb_array_length(public.hosting_claim(null, 10, 2, 600, 3) -> 'claimed'),
  1, 'with a cap of 2 and one site provisioning, only one more is claimed');
select is((select count(*)::int from public.sites where status_hosting = 'provisioning'), 2,
  'never more provisioning sites than the cap');
select is(
  jsonb_array_length(public.hosting_claim(null, 10, 2, 600, 3) -> 'claimed'),
  0, 'a full cap claims nothing');
select is(
  jsonb_array_length(public.hosting_claim(null, 10, 3, 600, 3) -> 'claimed'),
  1, 'a larger cap lets the remaining due site in');
select is(
  (select string_agg(domain, ',' order by domain) from public.sites where status_hosting = 'pending'),
  'later.example.com,no-dns.example.com', 'only the sites that are not due stay pending');

-- Finishing
select is(
  (public.hosting_finish('a0000000-0000-4000-8000-000000000001', gen_random_uuid(), 'active',
                         p_doc_root => '/home/x/htdocs/one.example.com') ->> 'applied')::boolean,
  false, 'a finish with another claim''s token is not applied');
select is((select status_hosting from public.sites where domain = 'one.example.com'), 'provisioning',
  '… and changes nothing');

select is(
  (public.hosting_finish(id, hosting_claim_token, 'active', p_site_user => 'one_example_com',
     p_doc_root => '/home/one_example_com/htdocs/one.example.com', p_matomo_site_id => 7,
     p_duration_ms => 4200) ->> 'applied')::boolean,
  true, 'the owner of the claim finishes the site')
from public.sites where domain = 'one.example.com';
select results_eq(
  $$ select status_hosting, hosting_site_user, hosting_doc_root, matomo_site_id, hosting_error,
            hosting_lease_until, hosting_claim_token
     from public.sites where domain = 'one.example.com' $$,
  $$ values ('active', 'one_example_com', '/home/one_example_com/htdocs/one.example.com', 7,
             null::text, null::timestamptz, null::uuid) $$,
  'an active site has its user, document root and Matomo id, and no lease or error');
select results_eq(
  $$ select step, outcome, code, duration_ms from public.hosting_events
     where site_id = 'a0000000-0000-4000-8000-000000000001' and step = 'finish' $$,
  $$ values ('finish', 'ok', 'ACTIVE', 4200) $$,
  'activation is a finish event with the claim-to-active time');

select throws_ok(
  $$ select public.hosting_finish(id, hosting_claim_token, 'pending', p_error_code => 'DNS_NOT_READY')
     from public.sites where domain = 'two.example.com' $$,
  '22023', 'hosting_finish: a retry needs p_next_attempt_at', 'a retry without a time is refused');
select throws_ok(
  $$ select public.hosting_finish(id, hosting_claim_token, 'failed')
     from public.sites where domain = 'two.example.com' $$,
  '22023', 'hosting_finish: a failed outcome needs an error code', 'a failure without a code is refused');
select throws_ok(
  $$ select public.hosting_finish(id, hosting_claim_token, 'done')
     from public.sites where domain = 'two.example.com' $$,
  '22023', null, 'an unknown status is refused');
select throws_ok(
  $$ select public.hosting_finish(id, hosting_claim_token, 'active')
     from public.sites where domain = 'two.example.com' $$,
  '22023', 'hosting_finish: an active site needs its document root',
  'an active outcome without a document root is refused');

select is(
  public.hosting_finish(id, hosting_claim_token, 'failed', p_error_code => 'SITE_USER_CONFLICT',
                        p_error_message => 'siteUser: This value already exists.') #>> '{site,status_hosting}',
  'failed', 'a permanent failure is written back')
from public.sites where domain = 'two.example.com';
select results_eq(
  $$ select status_hosting, hosting_error, hosting_next_attempt_at from public.sites where domain = 'two.example.com' $$,
  $$ values ('failed', 'SITE_USER_CONFLICT: siteUser: This value already exists.', null::timestamptz) $$,
  'a failed site keeps the reason');

-- An expired lease: the worker vanished.
update public.sites set hosting_lease_until = now() - interval '1 second' where domain = 'three.example.com';
select is(
  public.hosting_claim('a0000000-0000-4000-8000-000000000003', 1, 3, 600, 3) #>> '{claimed,0,attempt}',
  '2', 'a site whose lease expired is claimed again, as the next attempt');
select is(
  (select code from public.hosting_events where site_id = 'a0000000-0000-4000-8000-000000000003'
   order by id desc limit 1),
  'RECLAIMED', '… and the event says so');

update public.sites set hosting_lease_until = now() - interval '1 second', hosting_attempts = 3
where domain = 'three.example.com';
select is(
  jsonb_array_length(public.hosting_claim(null, 10, 3, 600, 3) -> 'claimed'), 0,
  'a site whose last allowed attempt vanished is not claimed again');
select results_eq(
  $$ select status_hosting, hosting_error from public.sites where domain = 'three.example.com' $$,
  $$ values ('failed', 'LEASE_EXPIRED: no result within the lease after 3 attempts') $$,
  '… it is failed, with the reason');

-- Analytics: an active site without a Matomo id.
insert into public.sites (id, domain, status_dns, status_hosting, hosting_doc_root)
values ('a0000000-0000-4000-8000-000000000006', 'no-matomo.example.com', 'active', 'active', '/home/n/htdocs/no-matomo.example.com');
select is(
  public.hosting_claim('a0000000-0000-4000-8000-000000000006', 1, 1, 600, 3) #>> '{claimed,0,kind}',
  'analytics', 'an active site without a Matomo id is claimed for analytics, even with every slot taken');
select is(
  public.hosting_finish(id, hosting_claim_token, 'active', p_next_attempt_at => now() + interval '10 minutes',
                        p_event_code => 'ANALYTICS_PENDING') ->> 'applied',
  'true', 'a failed registration keeps the site active')
from public.sites where domain = 'no-matomo.example.com';
select is(
  jsonb_array_length(public.hosting_claim('a0000000-0000-4000-8000-000000000006', 1, 1, 600, 3) -> 'claimed'),
  0, '… and it is not claimed again before its next attempt');

select * from finish();
rollback;
