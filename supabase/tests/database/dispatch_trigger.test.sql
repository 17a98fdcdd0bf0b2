-- The dispatch trigger: exactly the right transitions queue one pg_net request, with the right URL,
-- headers, body and timeout; a missing Vault secret or a broken pg_net never fails the caller.
-- Requests queued inside this transaction are rolled back with it: nothing is ever sent.
begin;
select plan(27);

do $$
begin
  delete from vault.secrets where name in ('hosting_automator_url', 'hosting_automator_key');
  perform vault.create_secret('http://127.0.0.1:9/functions/v1/hosting-automator', 'hosting_automator_url');
  perform vault.create_secret('test-dispatch-key-0123', 'hosting_automator_key');
end
$$;

create temporary view dispatched as
select q.id, q.method::text as method, q.url, q.headers, q.timeout_milliseconds,
       convert_from(q.body, 'UTF8')::jsonb as body
from net.http_request_queue q;

create function pg_temp.requests_for(p_domain text) returns bigint language sql as $$
  select count(*) from dispatched d
  join public.sites s on d.body = jsonb_build_object('site_id', s.id)
  where s.domain = p_domain
$$;

-- insert
insert into public.sites (domain, status_dns) values ('new-active.example.com', 'active');
select is(pg_temp.requests_for('new-active.example.com'), 1::bigint,
  'inserting an active + pending site queues one request');

select results_eq(
  $$ select method, url, headers, timeout_milliseconds, body from dispatched d
     where d.body->>'site_id' = (select id::text from public.sites where domain = 'new-active.example.com') $$,
  $$ values ('POST', 'http://127.0.0.1:9/functions/v1/hosting-automator',
             '{"Content-Type": "application/json", "apikey": "test-dispatch-key-0123"}'::jsonb,
             10000,
             jsonb_build_object('site_id', (select id from public.sites where domain = 'new-active.example.com'))) $$,
  'the request is a POST of {"site_id"} to the Vault URL with the Vault key and an explicit timeout');

insert into public.sites (domain, status_dns) values ('dns-waiting.example.com', 'pending');
select is(pg_temp.requests_for('dns-waiting.example.com'), 0::bigint,
  'a site whose DNS is not active is not dispatched');

insert into public.sites (domain, status_dns, hosting_next_attempt_at)
values ('not-due.example.com', 'active', now() + interval '1 hour');
select is(pg_temp.requests_for('not-due.example.com'), 0::bigint,
  'an active + pending site that is not due yet is not dispatched');

insert into public.sites (domain, status_dns, status_hosting) values ('was-active.example.com', 'active', 'active');
select is(pg_temp.requests_for('was-active.example.com'), 0::bigint,
  'an already active site is not dispatched');

-- update of status_dns
update public.sites set status_dns = 'active' where domain = 'dns-waiting.example.com';
select is(pg_temp.requests_for('dns-waiting.example.com'), 1::bigint,
  'DNS becoming active on a pending site queues one request');

update public.sites set status_dns = 'active' where domain = 'dns-waiting.example.com';
select is(pg_temp.requests_for('dns-waiting.example.com'), 1::bigint,
  'setting DNS active again on a site already due queues nothing more');

update public.sites set hosting_doc_root = hosting_doc_root where domain = 'new-active.example.com';
select is(pg_temp.requests_for('new-active.example.com'), 1::bigint,
  'an update of unrelated columns queues nothing');

update public.sites set status_dns = 'pending' where domain = 'new-active.example.com';
update public.sites set status_dns = 'active' where domain = 'new-active.example.com';
select is(pg_temp.requests_for('new-active.example.com'), 2::bigint,
  'DNS going inactive and active again queues a new request');

update public.sites set hosting_next_attempt_at = now() - interval '1 second'
where domain = 'not-due.example.com';
select is(pg_temp.requests_for('not-due.example.com'), 1::bigint,
  'an update that makes a pending site due (its next attempt moved to the past) queues one request');

-- resets
update public.sites set status_hosting = 'failed', hosting_attempts = 8, hosting_error = 'X: y'
where domain = 'was-active.example.com';
select is(pg_temp.requests_for('was-active.example.com'), 0::bigint, 'failing queues nothing');
update public.sites set status_hosting = 'pending' where domain = 'was-active.example.com';
select is(pg_temp.requests_for('was-active.example.com'), 1::bigint,
  'an operator resetting a failed site to pending queues one request');
select results_eq(
  $$ select hosting_attempts, hosting_next_attempt_at, hosting_lease_until, hosting_claim_token
     from public.sites where domain = 'was-active.example.com' $$,
  $$ values (0, null::timestamptz, null::timestamptz, null::uuid) $$,
  'the reset starts a fresh cycle: no attempts, no backoff, no lease');
select results_eq(
  $$ select step, outcome, code, attempt from public.hosting_events e
     join public.sites s on s.id = e.site_id where s.domain = 'was-active.example.com' $$,
  $$ values ('reset', 'ok', 'RESET', 8) $$,
  'the reset is recorded as a manual step');

insert into public.sites (domain, status_dns, status_hosting, hosting_doc_root, matomo_site_id)
values ('live.example.com', 'active', 'active', '/home/live_example_com/htdocs/live.example.com', 5);
update public.sites set status_hosting = 'pending' where domain = 'live.example.com';
select is(pg_temp.requests_for('live.example.com'), 1::bigint,
  'setting an active site back to pending provisions it again');

-- the product's own retry: provisioning -> pending with a backoff
insert into public.sites (domain, status_dns, status_hosting, hosting_attempts, hosting_lease_until,
                          hosting_claim_token)
values ('retrying.example.com', 'active', 'provisioning', 1, now() + interval '10 minutes',
        gen_random_uuid());
select is(
  (public.hosting_finish(id, hosting_claim_token, 'pending', p_error_code => 'DNS_NOT_READY',
                         p_error_message => 'no A record', p_next_attempt_at => now() + interval '1 minute')
   ->> 'applied')::boolean, true, 'a retryable failure is written back')
from public.sites where domain = 'retrying.example.com';
select is(pg_temp.requests_for('retrying.example.com'), 0::bigint,
  'a site put back to pending with a backoff is not dispatched at once');
select is((select hosting_attempts from public.sites where domain = 'retrying.example.com'), 1,
  'the product''s own retry keeps its attempt count (it is not an operator reset)');

-- hosting_retry on a pending site in backoff dispatches it now
select is((public.hosting_retry('retrying.example.com') ->> 'previous_status'), 'pending',
  'hosting_retry accepts a site waiting in backoff');
select is(pg_temp.requests_for('retrying.example.com'), 1::bigint,
  'hosting_retry makes the site due and dispatches it');

-- missing configuration: a warning and an event, never an error for the caller
delete from vault.secrets where name = 'hosting_automator_key';
select lives_ok(
  $$ insert into public.sites (domain, status_dns) values ('unconfigured.example.com', 'active') $$,
  'with a Vault secret missing, the insert still succeeds');
select is(pg_temp.requests_for('unconfigured.example.com'), 0::bigint, '… and no request is queued');
select results_eq(
  $$ select step, outcome, code from public.hosting_events e
     join public.sites s on s.id = e.site_id where s.domain = 'unconfigured.example.com' $$,
  $$ values ('dispatch', 'warning', 'NOT_CONFIGURED') $$,
  '… and the problem is recorded as a dispatch warning for the sweeper to pick up later');
select is((select status_hosting from public.sites where domain = 'unconfigured.example.com'), 'pending',
  '… and the site stays pending');

-- pg_net itself failing: still never an error for the caller
do $$ begin perform vault.create_secret('test-dispatch-key-0123', 'hosting_automator_key'); end $$;
alter function net.http_post(text, jsonb, jsonb, jsonb, integer) rename to http_post_hidden;
select lives_ok(
  $$ insert into public.sites (domain, status_dns) values ('pgnet-broken.example.com', 'active') $$,
  'with net.http_post failing, the insert still succeeds');
select results_eq(
  $$ select step, outcome, code from public.hosting_events e
     join public.sites s on s.id = e.site_id where s.domain = 'pgnet-broken.example.com' $$,
  $$ values ('dispatch', 'warning', 'DISPATCH_FAILED') $$,
  '… and the failure is recorded');
alter function net.http_post_hidden(text, jsonb, jsonb, jsonb, integer) rename to http_post;

select set_eq(
  $$ select tgname::text from pg_catalog.pg_trigger
     where tgrelid = 'public.sites'::regclass and tgname like 'hosting_automator_dispatch%' $$,
  array['hosting_automator_dispatch_insert', 'hosting_automator_dispatch_update'],
  'the dispatch triggers are installed once each, and the per-row trigger is gone');

select * from finish();
rollback;
