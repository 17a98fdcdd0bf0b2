-- The sweeper pg_cron runs every minute: it dispatches exactly the rows with due work, oldest first,
-- at most its limit, and stops at the first dispatch problem.
begin;
select plan(7);

set local client_min_messages = error;
do $$
begin
  delete from vault.secrets where name in ('hosting_automator_url', 'hosting_automator_key');
  perform vault.create_secret('http://127.0.0.1:9/functions/v1/hosting-automator', 'hosting_automator_url');
  perform vault.create_secret('test-sweep-key-0123', 'hosting_automator_key');
end
$$;

insert into public.sites (id, domain, status_dns, status_hosting, hosting_next_attempt_at,
                          hosting_lease_until, hosting_claim_token, matomo_site_id, hosting_doc_root) values
  ('b0000000-0000-4000-8000-000000000001', 'due-new.example.com', 'active', 'pending', null, null, null, null, null),
  ('b0000000-0000-4000-8000-000000000002', 'due-retry.example.com', 'active', 'pending', now() - interval '2 minutes', null, null, null, null),
  ('b0000000-0000-4000-8000-000000000003', 'backing-off.example.com', 'active', 'pending', now() + interval '2 minutes', null, null, null, null),
  ('b0000000-0000-4000-8000-000000000004', 'dns-pending.example.com', 'pending', 'pending', null, null, null, null, null),
  ('b0000000-0000-4000-8000-000000000005', 'lease-expired.example.com', 'active', 'provisioning', null, now() - interval '1 second', gen_random_uuid(), null, null),
  ('b0000000-0000-4000-8000-000000000006', 'leased.example.com', 'active', 'provisioning', null, now() + interval '5 minutes', gen_random_uuid(), null, null),
  ('b0000000-0000-4000-8000-000000000007', 'needs-matomo.example.com', 'active', 'active', now() - interval '1 minute', null, null, null, '/home/a/htdocs/needs-matomo.example.com'),
  ('b0000000-0000-4000-8000-000000000008', 'matomo-later.example.com', 'active', 'active', now() + interval '9 minutes', null, null, null, '/home/b/htdocs/matomo-later.example.com'),
  ('b0000000-0000-4000-8000-000000000009', 'complete.example.com', 'active', 'active', null, null, null, 3, '/home/c/htdocs/complete.example.com'),
  ('b0000000-0000-4000-8000-000000000010', 'gave-up.example.com', 'active', 'failed', null, null, null, null, null);
-- Only what the sweeper queues from here on counts.
delete from net.http_request_queue;

create temporary view swept as
select (convert_from(q.body, 'UTF8')::jsonb ->> 'site_id')::uuid as site_id, q.url, q.headers
from net.http_request_queue q;

select is(public.hosting_automator_sweep(), 4, 'the sweep dispatches every site with due work');
select set_eq(
  $$ select s.domain from swept w join public.sites s on s.id = w.site_id $$,
  array['due-new.example.com', 'due-retry.example.com', 'lease-expired.example.com',
        'needs-matomo.example.com'],
  'exactly the due pending sites, the expired lease and the active site due for analytics');
select is((select count(distinct url) from swept), 1::bigint, 'all to the Vault URL');
select is((select min(headers->>'apikey') from swept), 'test-sweep-key-0123', 'with the Vault key');

delete from net.http_request_queue;
select is(public.hosting_automator_sweep(2), 2, 'the limit bounds one sweep');
select set_eq(
  $$ select s.domain from swept w join public.sites s on s.id = w.site_id $$,
  array['due-new.example.com', 'due-retry.example.com'],
  'oldest first: never tried, then the longest waiting');

delete from net.http_request_queue;
delete from vault.secrets where name = 'hosting_automator_url';
select is(public.hosting_automator_sweep(), 0, 'without configuration nothing is dispatched, and the sweep does not fail');

select * from finish();
rollback;
