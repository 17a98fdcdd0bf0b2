-- The sweeper pg_cron runs every minute: at most one request ({}: the function claims up to the
-- free capacity and drains), and only when that request can be used.
begin;
select plan(10);

set local client_min_messages = error;
do $$
begin
  delete from vault.secrets where name in ('hosting_automator_url', 'hosting_automator_key');
  perform vault.create_secret('http://127.0.0.1:9/functions/v1/hosting-automator', 'hosting_automator_url');
  perform vault.create_secret('test-sweep-token-0123', 'hosting_automator_key');
end
$$;
insert into public.hosting_runtime (id, max_concurrent) values (true, 2)
on conflict (id) do update set max_concurrent = 2;

insert into public.sites (id, domain, status_dns, status_hosting, hosting_next_attempt_at,
                          hosting_lease_until, hosting_claim_token, matomo_site_id, hosting_doc_root) values
  ('b0000000-0000-4000-8000-000000000001', 'due-new.example.com', 'active', 'pending', null, null, null, null, null),
  ('b0000000-0000-4000-8000-000000000002', 'due-retry.example.com', 'active', 'pending', now() - interval '2 minutes', null, null, null, null),
  ('b0000000-0000-4000-8000-000000000003', 'backing-off.example.com', 'active', 'pending', now() + interval '2 minutes', null, null, null, null),
  ('b0000000-0000-4000-8000-000000000004', 'dns-pending.example.com', 'pending', 'pending', null, null, null, null, null);
delete from net.http_request_queue;

create temporary view swept as
select convert_from(q.body, 'UTF8')::jsonb as body, q.url, q.headers from net.http_request_queue q;

select is(public.hosting_automator_sweep(), 1, 'due work and a free slot: one request');
select results_eq($$ select body, url, headers->>'apikey' from swept $$,
  $$ values ('{}'::jsonb, 'http://127.0.0.1:9/functions/v1/hosting-automator', 'test-sweep-token-0123') $$,
  'the request is {} to the Vault URL with the Vault dispatch token');

-- every slot taken by valid leases: nothing to gain from a request
delete from net.http_request_queue;
insert into public.sites (domain, status_dns, status_hosting, hosting_lease_until, hosting_claim_token) values
  ('busy-1.example.com', 'active', 'provisioning', now() + interval '5 minutes', gen_random_uuid()),
  ('busy-2.example.com', 'active', 'provisioning', now() + interval '5 minutes', gen_random_uuid());
select is(public.hosting_automator_sweep(), 0, 'no free slot: no request, however many sites wait');
select is((select count(*) from swept), 0::bigint, '… and nothing is queued');

-- a slot frees up because a lease expired: that site is due again, and there is room
update public.sites set hosting_lease_until = now() - interval '1 second' where domain = 'busy-1.example.com';
select is(public.hosting_automator_sweep(), 1, 'an expired lease frees a slot and is itself due');

-- the CloudPanel server is paused: provisioning requests would be no-ops
delete from net.http_request_queue;
insert into public.hosting_health (target, credential, paused_until, failures, last_code)
values ('ssh:root@cp.example.com:22', 'digest-1', now() + interval '5 minutes', 1, 'HOST_KEY_MISMATCH');
select is(public.hosting_automator_sweep(), 0, 'a paused server: no provisioning request');

-- analytics due is independent of the server
insert into public.sites (domain, status_dns, status_hosting, hosting_doc_root, hosting_next_attempt_at) values
  ('needs-matomo.example.com', 'active', 'active', '/home/n/htdocs/needs-matomo.example.com', now() - interval '1 minute');
select is(public.hosting_automator_sweep(), 1, 'analytics due while the server is paused: one request');

delete from net.http_request_queue;
insert into public.hosting_health (target, credential, paused_until, failures, last_code)
values ('matomo:https://analytics.example.com', 'digest-2', now() + interval '1 hour', 1, 'MATOMO_AUTH');
select is(public.hosting_automator_sweep(), 0, 'both paused: no request at all');

insert into public.sites (domain, status_dns, status_hosting) values ('by-hand.example.com', 'active', 'active');
delete from public.hosting_health;
delete from public.sites where domain = 'needs-matomo.example.com';
update public.sites set status_hosting = 'failed', hosting_lease_until = null, hosting_claim_token = null
where domain like 'due-%' or domain like 'busy-%';
delete from net.http_request_queue;
select is(public.hosting_automator_sweep(), 0,
  'an active row without a document root (made by hand) is never due: no request');

update public.sites set status_hosting = 'pending' where domain = 'due-new.example.com';
delete from net.http_request_queue;
delete from vault.secrets where name = 'hosting_automator_url';
select is(public.hosting_automator_sweep(), 0, 'without configuration nothing is dispatched, and the sweep does not fail');

select * from finish();
rollback;
