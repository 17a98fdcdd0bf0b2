-- hosting_metrics computes the product brief's figures from known sites and events.
begin;
select plan(10);

set local client_min_messages = error;
delete from vault.secrets where name in ('hosting_automator_url', 'hosting_automator_key');
delete from public.hosting_events;
delete from public.sites;

insert into public.sites (id, domain, status_dns, status_hosting, hosting_doc_root, matomo_site_id) values
  ('c0000000-0000-4000-8000-000000000001', 'm1.example.com', 'active', 'active', '/h/1', 1),
  ('c0000000-0000-4000-8000-000000000002', 'm2.example.com', 'active', 'active', '/h/2', null),
  ('c0000000-0000-4000-8000-000000000003', 'm3.example.com', 'active', 'active', '/h/3', 3),
  ('c0000000-0000-4000-8000-000000000004', 'm4.example.com', 'active', 'active', '/h/4', 4),
  ('c0000000-0000-4000-8000-000000000005', 'm5.example.com', 'active', 'failed', null, null),
  ('c0000000-0000-4000-8000-000000000006', 'm6.example.com', 'active', 'pending', null, null);

insert into public.hosting_events (site_id, attempt, step, outcome, code, duration_ms) values
  -- four activations: 1 s, 2 s, 3 s, 10 s
  ('c0000000-0000-4000-8000-000000000001', 1, 'finish', 'ok', 'ACTIVE', 1000),
  ('c0000000-0000-4000-8000-000000000002', 1, 'finish', 'ok', 'ACTIVE', 2000),
  ('c0000000-0000-4000-8000-000000000003', 1, 'finish', 'ok', 'ACTIVE', 3000),
  ('c0000000-0000-4000-8000-000000000004', 2, 'finish', 'ok', 'ACTIVE', 10000),
  -- not activations: an analytics-only finish and a retry
  ('c0000000-0000-4000-8000-000000000002', 1, 'finish', 'ok', 'ANALYTICS_PENDING', 99000),
  ('c0000000-0000-4000-8000-000000000004', 1, 'finish', 'error', 'DNS_NOT_READY', 500),
  -- site 4 needed an operator
  ('c0000000-0000-4000-8000-000000000004', 1, 'reset', 'ok', 'RESET', null),
  -- CloudPanel commands: 7 did their job (one adopted), 1 failed, 1 skipped (not counted)
  ('c0000000-0000-4000-8000-000000000001', 1, 'site', 'ok', 'SITE_CREATED', 900),
  ('c0000000-0000-4000-8000-000000000002', 1, 'site', 'ok', 'SITE_CREATED', 900),
  ('c0000000-0000-4000-8000-000000000003', 1, 'site', 'warning', 'SITE_ADOPTED', 900),
  ('c0000000-0000-4000-8000-000000000004', 2, 'site', 'ok', 'SITE_CREATED', 900),
  ('c0000000-0000-4000-8000-000000000001', 1, 'certificate', 'ok', 'CERTIFICATE_INSTALLED', 900),
  ('c0000000-0000-4000-8000-000000000002', 1, 'certificate', 'ok', 'CERTIFICATE_INSTALLED', 900),
  ('c0000000-0000-4000-8000-000000000003', 1, 'certificate', 'ok', 'CERTIFICATE_INSTALLED', 900),
  ('c0000000-0000-4000-8000-000000000004', 1, 'certificate', 'error', 'DNS_NOT_READY', 900),
  ('c0000000-0000-4000-8000-000000000004', 1, 'analytics', 'skipped', 'DNS_NOT_READY', 0),
  -- Matomo: 3 fine (one with a duplicate warning), 2 failed (the site's warning, or an error), and
  -- one registration not even tried (paused: no call was made) and a final give-up note
  ('c0000000-0000-4000-8000-000000000001', 1, 'analytics', 'ok', 'MATOMO_CREATED', 40),
  ('c0000000-0000-4000-8000-000000000003', 1, 'analytics', 'warning', 'MATOMO_DUPLICATES', 40),
  ('c0000000-0000-4000-8000-000000000004', 2, 'analytics', 'ok', 'MATOMO_FOUND', 40),
  ('c0000000-0000-4000-8000-000000000002', 1, 'analytics', 'error', 'MATOMO_UNREACHABLE', 40),
  ('c0000000-0000-4000-8000-000000000005', 1, 'analytics', 'warning', 'MATOMO_HTTP', 40),
  ('c0000000-0000-4000-8000-000000000005', 2, 'analytics', 'warning', 'MATOMO_PAUSED', 0),
  ('c0000000-0000-4000-8000-000000000005', 2, 'analytics', 'warning', 'ANALYTICS_GAVE_UP', 0);

select results_eq(
  $$ select sites_total, sites_pending, sites_provisioning, sites_active, sites_failed,
            sites_active_without_analytics from public.hosting_metrics $$,
  $$ values (6::bigint, 1::bigint, 0::bigint, 4::bigint, 1::bigint, 1::bigint) $$,
  'site counts by state');
select is((select auto_share from public.hosting_metrics), 0.75,
  'three of the four active sites needed no manual step');
select is((select activations from public.hosting_metrics), 4::bigint,
  'only provisioning activations count, not analytics-only finishes');
select is((select claim_to_active_mean_s from public.hosting_metrics), 4.000, 'mean claim-to-active time');
select is((select claim_to_active_p95_s from public.hosting_metrics), 8.950,
  'p95 claim-to-active time (continuous percentile)');
select is((select cli_commands from public.hosting_metrics), 8::bigint, 'skipped steps are not commands');
select is((select cli_success_rate from public.hosting_metrics), 0.8750, 'CLI command success rate');
select is((select matomo_calls from public.hosting_metrics), 5::bigint,
  'Matomo registrations that called Matomo (a pause or a give-up note made no call)');
select is((select matomo_error_rate from public.hosting_metrics), 0.4000,
  'Matomo API error rate: a failure counts whether the site recorded it as a warning or an error');

delete from public.hosting_events;
select is((select cli_success_rate from public.hosting_metrics), null::numeric,
  'a rate with nothing to divide is null, not zero');

select * from finish();
rollback;
