-- Hosting Automator: the product brief's figures, computed from public.sites and public.hosting_events.
--   auto_share              share of active sites that got there with no manual step (no 'reset' event)
--   claim_to_active_*_s     seconds from the claim to 'active', for the attempt that made a site active
--   cli_success_rate        CloudPanel commands (site and certificate steps) that did their job
--   matomo_error_rate       Matomo registrations that failed (the site still went active); a
--                           warning (e.g. duplicate sites for one URL) is not an API error
-- A rate is null while there is nothing to divide.
create or replace view public.hosting_metrics
with (security_invoker = true)
as
with activations as (
  select e.duration_ms
  from public.hosting_events e
  where e.step = 'finish' and e.outcome = 'ok' and e.code = 'ACTIVE'
),
cli as (
  select e.outcome
  from public.hosting_events e
  where e.step in ('site', 'certificate') and e.outcome in ('ok', 'warning', 'error')
),
matomo as (
  select e.outcome
  from public.hosting_events e
  where e.step = 'analytics' and e.outcome in ('ok', 'warning', 'error')
)
select
  (select count(*) from public.sites) as sites_total,
  (select count(*) from public.sites where status_hosting = 'pending') as sites_pending,
  (select count(*) from public.sites where status_hosting = 'provisioning') as sites_provisioning,
  (select count(*) from public.sites where status_hosting = 'active') as sites_active,
  (select count(*) from public.sites where status_hosting = 'failed') as sites_failed,
  (select count(*) from public.sites where status_hosting = 'active' and matomo_site_id is null)
    as sites_active_without_analytics,
  (select round(avg(case when exists (select 1 from public.hosting_events r
                                       where r.site_id = s.id and r.step = 'reset')
                         then 0.0 else 1.0 end), 4)
   from public.sites s where s.status_hosting = 'active') as auto_share,
  (select round(avg(a.duration_ms) / 1000.0, 3) from activations a) as claim_to_active_mean_s,
  (select round((percentile_cont(0.95) within group (order by a.duration_ms) / 1000.0)::numeric, 3)
   from activations a) as claim_to_active_p95_s,
  (select count(*) from activations) as activations,
  (select round(avg(case when c.outcome = 'error' then 0.0 else 1.0 end), 4) from cli c)
    as cli_success_rate,
  (select count(*) from cli) as cli_commands,
  (select round(avg(case when m.outcome = 'error' then 1.0 else 0.0 end), 4) from matomo m)
    as matomo_error_rate,
  (select count(*) from matomo) as matomo_calls;

comment on view public.hosting_metrics is 'Hosting Automator figures (see the migration header)';

revoke all on table public.hosting_metrics from anon, authenticated;
grant select on table public.hosting_metrics to service_role;
