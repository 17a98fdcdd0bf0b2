-- What happens the second time: server and Matomo pauses shared by every instance, attempts given
-- back when a failure is not the site's, claims handed back unstarted, bounded analytics retries,
-- no reset beside a valid lease, and one request per statement from the trigger.
begin;
select plan(29);

set local client_min_messages = error;
do $$
begin
  delete from vault.secrets where name in ('hosting_automator_url', 'hosting_automator_key');
  perform vault.create_secret('http://127.0.0.1:9/functions/v1/hosting-automator', 'hosting_automator_url');
  perform vault.create_secret('test-dispatch-token-0123', 'hosting_automator_key');
end
$$;

create temporary view queued as
select convert_from(q.body, 'UTF8')::jsonb as body from net.http_request_queue q;

-- one request per statement
delete from net.http_request_queue;
insert into public.sites (domain, status_dns)
select format('bulk-%s.example.com', i), 'pending' from generate_series(1, 1000) i;
select is((select count(*) from queued), 0::bigint, 'inserting 1,000 sites without DNS queues nothing');
update public.sites set status_dns = 'active' where domain like 'bulk-%';
select results_eq($$ select body from queued $$, $$ values ('{}'::jsonb) $$,
  'turning 1,000 rows active in one statement queues exactly one request, {}');
delete from net.http_request_queue;
update public.sites set status_dns = 'active' where domain = 'bulk-7.example.com';
select is((select count(*) from queued), 0::bigint, 'a row that was already due queues nothing more');
insert into public.sites (domain, status_dns) values ('single.example.com', 'active');
select results_eq($$ select body ->> 'site_id' from queued $$,
  $$ select id::text from public.sites where domain = 'single.example.com' $$,
  'a statement that makes one site due sends that site''s id');
delete from public.sites where domain like 'bulk-%' or domain = 'single.example.com';
delete from net.http_request_queue;

-- the server is paused for the settings that failed, not for corrected ones
insert into public.sites (id, domain, status_dns) values
  ('e0000000-0000-4000-8000-000000000001', 'p1.example.com', 'active'),
  ('e0000000-0000-4000-8000-000000000002', 'p2.example.com', 'active');
select is((public.hosting_report_health('ssh:root@cp:22', 'digest-a', false, 'HOST_KEY_MISMATCH', 'x', 60, 900)
  ->> 'failures')::int, 1, 'a server failure is counted');
select ok((select paused_until between now() + interval '59 seconds' and now() + interval '61 seconds'
  from public.hosting_health where target = 'ssh:root@cp:22'), '… and pauses the server for the base delay');
select is(jsonb_array_length(public.hosting_claim(null, 5, 3, 600, 8, 120, 'ssh:root@cp:22', 'digest-a') -> 'claimed'),
  0, 'while paused, nothing is claimed for provisioning');
select is(public.hosting_claim('e0000000-0000-4000-8000-000000000001', 1, 3, 600, 8, 120, 'ssh:root@cp:22', 'digest-a')
  #>> '{site,skip_reason}', 'SERVER_PAUSED', 'a named site says the server is paused');
select ok(public.hosting_claim(null, 1, 3, 600, 8, 120, 'ssh:root@cp:22', 'digest-a') #>> '{paused,ssh}' is not null,
  'the claim answer names the pause');
select is((public.hosting_report_health('ssh:root@cp:22', 'digest-a', false, 'HOST_KEY_MISMATCH', 'x', 60, 900)
  ->> 'failures')::int, 2, 'a second failure with the same settings counts on');
select ok((select paused_until between now() + interval '119 seconds' and now() + interval '121 seconds'
  from public.hosting_health where target = 'ssh:root@cp:22'), '… and doubles the pause');
select is(jsonb_array_length(public.hosting_claim(null, 1, 3, 600, 8, 120, 'ssh:root@cp:22', 'digest-b') -> 'claimed'),
  1, 'corrected settings (another digest) claim at once');

-- a failure that is not the site's gives its attempt back
select is((select (public.hosting_finish(s.id, s.hosting_claim_token, 'pending', p_error_code => 'HOST_KEY_MISMATCH',
          p_error_message => 'wrong key', p_next_attempt_at => now() + interval '1 minute',
          p_refund_attempt => true) ->> 'applied')::boolean
   from public.sites s where s.status_hosting = 'provisioning'), true, 'a server failure is written back');
select results_eq(
  $$ select status_hosting, hosting_attempts, hosting_error from public.sites where status_hosting = 'pending'
     and hosting_next_attempt_at > now() $$,
  $$ values ('pending', 0, 'HOST_KEY_MISMATCH: wrong key') $$,
  '… pending with backoff and the reason, the attempt not used up');

-- claims never started are handed back as they were
select is(jsonb_array_length(public.hosting_claim(null, 5, 3, 600, 8, 120, 'ssh:root@cp:22', 'digest-c') -> 'claimed'),
  1, 'the other site is claimed');
select is(public.hosting_release(array(select hosting_claim_token from public.sites where status_hosting = 'provisioning'),
  'the run stopped: server paused'), 1, 'hosting_release gives the claim back');
select results_eq(
  $$ select status_hosting, hosting_attempts, hosting_lease_until, public.hosting_due_work(s)
     from public.sites s where domain = 'p2.example.com' $$,
  $$ values ('pending', 0, null::timestamptz, 'provision') $$,
  '… pending, due, attempt not counted, no lease');

-- Matomo: a pause pushes the analytics retries of every active site to the pause's end
insert into public.sites (domain, status_dns, status_hosting, hosting_doc_root) values
  ('a1.example.com', 'active', 'active', '/home/a1/htdocs/a1.example.com'),
  ('a2.example.com', 'active', 'active', '/home/a2/htdocs/a2.example.com'),
  ('handmade.example.com', 'active', 'active', null);
select is((select count(*) from public.sites s where public.hosting_due_work(s) = 'analytics'), 2::bigint,
  'active sites without a Matomo id are due for analytics, but not a row made active by hand');
select ok((public.hosting_report_health('matomo:https://m', 'token-1', false, 'MATOMO_AUTH', 'x', 60, 3600, 3600)
  ->> 'paused_until')::timestamptz >= now() + interval '1 hour', 'an auth failure pauses Matomo for at least an hour');
select is((select count(*) from public.sites s where public.hosting_due_work(s) = 'analytics'), 0::bigint,
  '… and no site is due for analytics meanwhile');
update public.sites set hosting_next_attempt_at = null where domain = 'a1.example.com';
select is(jsonb_path_query_array(public.hosting_claim(null, 5, 3, 600, 8, 120, null, null, 'matomo:https://m', 'token-1'),
  '$.claimed[*] ? (@.kind == "analytics")'), '[]'::jsonb, 'no analytics claim while Matomo is paused for this token');
select is(public.hosting_claim(null, 5, 3, 600, 8, 120, null, null, 'matomo:https://m', 'token-2') #>> '{claimed,0,kind}',
  'analytics', 'a corrected token is tried at once');
select is((select hosting_lease_until is not null from public.sites where domain = 'a2.example.com'), true,
  '… and the sites whose retries the old pause had pushed back are due (and claimed) again');

-- analytics failures are counted, and "infinity" ends them
select is((select (public.hosting_finish(s.id, s.hosting_claim_token, 'active', p_analytics_failed => true,
          p_next_attempt_at => 'infinity', p_event_code => 'ANALYTICS_GAVE_UP') ->> 'applied')::boolean
   from public.sites s where s.domain = 'a1.example.com'), true, 'an analytics failure is written back');
select results_eq(
  $$ select hosting_analytics_failures, public.hosting_due_work(s), public.hosting_skip_reason(s)
     from public.sites s where domain = 'a1.example.com' $$,
  $$ values (1, null::text, 'ANALYTICS_GAVE_UP') $$,
  '… counted; given up, it is never due again by itself');
select is(public.hosting_retry('a1.example.com') ->> 'retried', 'analytics',
  'hosting_retry on an active site without Matomo id retries the analytics only');
select results_eq(
  $$ select status_hosting, hosting_analytics_failures, public.hosting_due_work(s)
     from public.sites s where domain = 'a1.example.com' $$,
  $$ values ('active', 0, 'analytics') $$,
  '… at once, still active, with a fresh count');

-- no reset beside a valid lease, including an analytics lease
select is(public.hosting_claim(null, 5, 3, 600, 8, 120, null, null, 'matomo:https://m', 'token-2') #>> '{claimed,0,domain}',
  'a1.example.com', 'the analytics registration is claimed');
select throws_ok($$ update public.sites set status_hosting = 'pending' where domain = 'a1.example.com' $$,
  '55006', null, 'resetting an active site while its analytics lease runs is refused');

select * from finish();
rollback;
