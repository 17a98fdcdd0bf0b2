-- Removal (hosting_deprovision, hosting_request_removal, the claim, hosting_finish_removal, the
-- sweeper, the way back to pending) and live progress (hosting_step on the row).
begin;
select plan(37);

set local client_min_messages = error;
do $$
begin
  delete from vault.secrets where name in ('hosting_automator_url', 'hosting_automator_key');
  perform vault.create_secret('http://127.0.0.1:9/functions/v1/hosting-automator', 'hosting_automator_url');
  perform vault.create_secret('test-dispatch-token-0123', 'hosting_automator_key');
end
$$;
delete from net.http_request_queue;
create temporary view queued as
select convert_from(q.body, 'UTF8')::jsonb as body from net.http_request_queue q;

insert into public.sites (id, domain, status_dns, status_hosting, hosting_attempts, hosting_site_user,
                          hosting_doc_root, matomo_site_id) values
  ('f0000000-0000-4000-8000-000000000001', 'keep.example.com', 'active', 'active', 1, 'keep_example_com',
   '/home/keep_example_com/htdocs/keep.example.com', 11),
  ('f0000000-0000-4000-8000-000000000002', 'drop.example.com', 'inactive', 'active', 1, 'drop_example_com',
   '/home/drop_example_com/htdocs/drop.example.com', 12);
insert into public.sites (id, domain, status_dns, status_hosting, hosting_attempts, hosting_lease_until,
                          hosting_claim_token) values
  ('f0000000-0000-4000-8000-000000000003', 'busy.example.com', 'active', 'provisioning', 1,
   now() + interval '8 minutes', gen_random_uuid());

-- asking for a removal
select throws_ok($$ select public.hosting_deprovision('nobody.example.com') $$, 'P0002',
  'hosting_deprovision: no site with domain nobody.example.com', 'an unknown domain is refused');
select throws_ok($$ select public.hosting_deprovision('busy.example.com') $$, '55006', null,
  'a site a worker is provisioning (valid lease) is not removed under it');
select results_eq(
  $$ select status_hosting, hosting_lease_until > now() from public.sites where domain = 'busy.example.com' $$,
  $$ values ('provisioning', true) $$, '… and stays as it was');
select is(public.hosting_request_removal('f0000000-0000-4000-8000-000000000003', false) ->> 'outcome',
  'in_progress', 'the function''s RPC answers in_progress for it instead of raising');

select is(public.hosting_deprovision(' KEEP.example.com ') ->> 'outcome', 'requested',
  'an active site is asked to be removed (domain matched case- and space-insensitively)');
select results_eq(
  $$ select status_hosting, hosting_attempts, hosting_remove_analytics, public.hosting_due_work(s)
     from public.sites s where domain = 'keep.example.com' $$,
  $$ values ('removing', 0, false, 'remove') $$,
  '… the row is removing, with fresh attempts, Matomo kept by default, and due for removal');
select results_eq($$ select body ->> 'site_id' from queued $$,
  $$ values ('f0000000-0000-4000-8000-000000000001') $$, '… and the function is woken for it');
select is((select code from public.hosting_events where site_id = 'f0000000-0000-4000-8000-000000000001'
           and step = 'remove'), 'REMOVAL_REQUESTED', '… with a remove event');
select is(public.hosting_deprovision('drop.example.com', true) #>> '{site,delete_analytics}', 'true',
  'delete_analytics is kept on the row for the run');
select is(public.hosting_due_work(s), 'remove', 'a removal does not wait for DNS')
from public.sites s where domain = 'drop.example.com';

-- the sweeper dispatches due removals
delete from net.http_request_queue;
insert into public.hosting_runtime (id, max_concurrent) values (true, 3)
on conflict (id) do update set max_concurrent = 3;
select is(public.hosting_automator_sweep(), 1, 'the sweeper sends a request for due removals');

-- claiming: the same claim, cap and token; the busy site holds one slot of two
select is(jsonb_array_length(public.hosting_claim(null, 5, 2, 600, 8, 120) -> 'claimed'), 1,
  'removals share the provisioning cap: one slot left of two');
select results_eq(
  $$ select status_hosting, hosting_attempts, hosting_claim_token is not null, hosting_step
     from public.sites where domain = 'keep.example.com' $$,
  $$ values ('removing', 1, true, 'site') $$,
  'the oldest removal is claimed: leased with a token, attempt 1, progress at its first step');
select is(
  (select public.hosting_job_json(s, 'remove') ->> 'kind' from public.sites s where domain = 'keep.example.com'),
  'remove', 'the job is a removal');
select is(public.hosting_request_removal('f0000000-0000-4000-8000-000000000001', true) ->> 'outcome',
  'removing', 'asking again while its removal runs changes nothing');
select is((select hosting_remove_analytics from public.sites where domain = 'keep.example.com'), false,
  '… not even the Matomo choice');
select throws_ok(
  $$ update public.sites set status_hosting = 'pending' where domain = 'keep.example.com' $$, '55006', null,
  'a running removal cannot be reset to pending');

-- progress
select lives_ok($$ select public.hosting_record_event(s.id, 1, 'site', 'ok', 'SITE_DELETED', null, 5,
  s.hosting_claim_token, 600) from public.sites s where domain = 'keep.example.com' $$,
  'a step event is recorded with the claim token');
select is((select hosting_step from public.sites where domain = 'keep.example.com'), 'analytics',
  '… and the row moves on to the next step of a removal in the same call');
select ok((select hosting_step_started_at is not null from public.sites where domain = 'keep.example.com'),
  '… with the time it began');
select lives_ok($$ select public.hosting_record_event(s.id, 1, 'site', 'ok', 'X', null, 5,
  gen_random_uuid(), 600) from public.sites s where domain = 'drop.example.com' $$,
  'an event under another token is recorded');
select is((select hosting_step from public.sites where domain = 'drop.example.com'), null,
  '… but does not move a row it does not hold');

-- finishing
select is(
  (select public.hosting_finish_removal(s.id, gen_random_uuid(), 'removed') ->> 'applied'
   from public.sites s where domain = 'keep.example.com'),
  'false', 'a finish without the claim''s token is not applied');
select is(
  (select public.hosting_finish_removal(s.id, s.hosting_claim_token, 'removed', false) ->> 'applied'
   from public.sites s where domain = 'keep.example.com'),
  'true', 'the claim''s finish is applied');
select results_eq(
  $$ select status_hosting, hosting_doc_root, hosting_site_user, matomo_site_id, hosting_claim_token,
            hosting_step, hosting_step_started_at
     from public.sites where domain = 'keep.example.com' $$,
  $$ values ('removed', null::text, null::text, 11, null::uuid, null::text, null::timestamptz) $$,
  'removed: document root and site user cleared, the kept Matomo id stays, no step shown');

-- a removed site changes nothing
select is(public.hosting_deprovision('keep.example.com', true) ->> 'outcome', 'removed',
  'removing a removed site answers removed');
select is((select count(*) from public.hosting_events e join public.sites s on s.id = e.site_id
           where s.domain = 'keep.example.com' and e.step = 'remove'), 1::bigint,
  '… writes no event and asks for nothing');
select is(public.hosting_due_work(s), null, '… and it is not due') from public.sites s
where domain = 'keep.example.com';

-- retries and failure
update public.sites set status_hosting = 'failed', hosting_lease_until = null, hosting_claim_token = null
where domain = 'busy.example.com';
select is(jsonb_array_length(public.hosting_claim('f0000000-0000-4000-8000-000000000002', 1, 3, 600, 8, 120)
  -> 'claimed'), 1, 'the other removal is claimed');
select is(
  (select public.hosting_finish_removal(s.id, s.hosting_claim_token, 'removing',
     p_error_code => 'SSH_UNREACHABLE', p_error_message => 'down',
     p_next_attempt_at => now() + interval '1 minute', p_refund_attempt => true) ->> 'applied'
   from public.sites s where domain = 'drop.example.com'), 'true',
  'a server-level failure hands the removal back');
select results_eq(
  $$ select status_hosting, hosting_attempts, hosting_error, hosting_remove_analytics,
            public.hosting_due_work(s) is null
     from public.sites s where domain = 'drop.example.com' $$,
  $$ values ('removing', 0, 'SSH_UNREACHABLE: down', true, true) $$,
  '… removing, attempt refunded, the reason kept, not due before its next attempt');
select is(public.hosting_retry('drop.example.com') ->> 'retried', 'remove',
  'hosting_retry retries a waiting removal as a removal, never as provisioning');
select is((select status_hosting from public.sites where domain = 'drop.example.com'), 'removing',
  '… still removing');

-- back to pending
select throws_ok($$ select public.hosting_retry('keep.example.com') $$, '22023', null,
  'hosting_retry does not re-provision a removed site');
update public.sites set status_hosting = 'pending' where domain = 'keep.example.com';
select results_eq(
  $$ select status_hosting, hosting_attempts, public.hosting_due_work(s)
     from public.sites s where domain = 'keep.example.com' $$,
  $$ values ('pending', 0, 'provision') $$,
  'removed -> pending: provisioned again from scratch');

-- metrics: a removal's deleteSite that worked is a Matomo call, not an error
insert into public.hosting_events (site_id, attempt, step, outcome, code)
values ('f0000000-0000-4000-8000-000000000001', 1, 'analytics', 'ok', 'MATOMO_DELETED');
select results_eq($$ select matomo_error_rate, matomo_calls from public.hosting_metrics $$,
  $$ values (0.0000::numeric, 1::bigint) $$, 'a deleted Matomo site counts as a successful call');

-- Realtime (the stand-in bootstrap creates the publication empty, as a hosted project has it)
select is(
  (select count(*) from pg_catalog.pg_publication_tables
   where pubname = 'supabase_realtime' and schemaname = 'public'
     and tablename in ('sites', 'hosting_events')), 2::bigint,
  'public.sites and public.hosting_events are in the supabase_realtime publication');

select * from finish();
rollback;
