-- Hosting Automator: waking the Edge Function. A trigger on public.sites and a pg_cron sweeper POST
-- {"site_id": …} to the function through pg_net, with the URL and key read from Vault. pg_net is
-- fire-and-forget (no retry, lost on crash), so the row stays the source of truth and the sweeper
-- re-sends whatever is still due. Nothing here may fail the caller's transaction.

do $$
begin
  create extension if not exists pg_net with schema extensions;
exception when others then
  raise warning 'hosting-automator: pg_net is not available (%); sites will not be dispatched until it is', sqlerrm;
end
$$;

-- Queue one POST for a site. Returns true when the request is queued (pg_net sends it after commit),
-- false with a WARNING and a 'dispatch' event when it cannot be: never raises.
create or replace function public.hosting_dispatch(p_site_id uuid, p_source text default 'trigger')
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_url text;
  v_key text;
  v_problem text;
begin
  begin
    select ds.decrypted_secret into v_url
    from vault.decrypted_secrets ds where ds.name = 'hosting_automator_url';
    select ds.decrypted_secret into v_key
    from vault.decrypted_secrets ds where ds.name = 'hosting_automator_key';

    if coalesce(v_url, '') = '' or coalesce(v_key, '') = '' then
      v_problem := 'NOT_CONFIGURED: Vault secret '
        || case when coalesce(v_url, '') = '' then 'hosting_automator_url' else 'hosting_automator_key' end
        || ' is missing';
    else
      perform net.http_post(
        url := v_url,
        body := jsonb_build_object('site_id', p_site_id),
        headers := jsonb_build_object('Content-Type', 'application/json', 'apikey', v_key),
        timeout_milliseconds := 10000
      );
      return true;
    end if;
  exception when others then
    v_problem := format('DISPATCH_FAILED: %s (SQLSTATE %s)', sqlerrm, sqlstate);
  end;

  raise warning 'hosting-automator: site % not dispatched (%): %; it stays pending for the sweeper',
    p_site_id, p_source, v_problem;
  begin
    insert into public.hosting_events (site_id, attempt, step, outcome, code, message)
    select s.id, s.hosting_attempts, 'dispatch', 'warning', split_part(v_problem, ':', 1),
           format('%s (from %s)', v_problem, p_source)
    from public.sites s where s.id = p_site_id;
  exception when others then
    raise warning 'hosting-automator: could not record the dispatch problem: %', sqlerrm;
  end;
  return false;
end
$$;

-- After insert, or an update of status_dns / status_hosting: a row that has just become
-- active + pending + due gets a request. Unrelated updates and rows that were already due do not.
create or replace function public.hosting_on_site_change()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE'
     and old.status_dns = 'active' and old.status_hosting = 'pending'
     and (old.hosting_next_attempt_at is null or old.hosting_next_attempt_at <= now())
     and coalesce(current_setting('hosting_automator.reset', true), '') <> 'on' then
    return null;
  end if;
  perform public.hosting_dispatch(new.id, lower(tg_op));
  return null;
exception when others then
  raise warning 'hosting-automator: trigger error for site %: %', new.id, sqlerrm;
  return null;
end
$$;

drop trigger if exists hosting_automator_dispatch on public.sites;
create trigger hosting_automator_dispatch
after insert or update of status_dns, status_hosting on public.sites
for each row
when (new.status_dns = 'active' and new.status_hosting = 'pending'
      and (new.hosting_next_attempt_at is null or new.hosting_next_attempt_at <= now()))
execute function public.hosting_on_site_change();

-- What pg_cron runs every minute: one request per site with due work (pending and due, provisioning
-- with an expired lease, active without a Matomo id and due), oldest first, at most p_limit.
-- Returns how many were dispatched; stops at the first failure (it would fail for all the same way).
create or replace function public.hosting_automator_sweep(p_limit integer default 50)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_site_id uuid;
  v_sent integer := 0;
begin
  for v_site_id in
    select s.id from public.sites s
    where public.hosting_due_work(s) is not null
    order by public.hosting_due_since(s), s.id
    limit greatest(p_limit, 0)
  loop
    exit when not public.hosting_dispatch(v_site_id, 'sweep');
    v_sent := v_sent + 1;
  end loop;
  return v_sent;
end
$$;

revoke execute on function public.hosting_dispatch(uuid, text), public.hosting_on_site_change(),
  public.hosting_automator_sweep(integer) from public, anon, authenticated;
grant execute on function public.hosting_automator_sweep(integer) to service_role;

do $$
begin
  begin
    create extension if not exists pg_cron with schema pg_catalog;
  exception when others then
    raise warning 'hosting-automator: pg_cron is not available here (%); run select public.hosting_automator_sweep() every minute some other way', sqlerrm;
    return;
  end;
  perform cron.schedule('hosting-automator-sweep', '* * * * *',
                        'select public.hosting_automator_sweep()');
end
$$;
