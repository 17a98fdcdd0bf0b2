-- Concurrent claimers, for real: two more sessions (dblink) claim the same work at the same time.
-- Exactly one wins a site, and the concurrency cap holds across sessions. The rows these sessions
-- see must be committed, so this file commits them through dblink and deletes them at the end.
begin;
select plan(8);

create extension if not exists dblink with schema extensions;

create function pg_temp.conn() returns text language sql as $$
  select format('host=127.0.0.1 port=%s dbname=%s user=postgres password=postgres application_name=pgtap-claims',
                current_setting('port'), current_database())
$$;

select dblink_connect('setup', pg_temp.conn());
select dblink_connect('a', pg_temp.conn());
select dblink_connect('b', pg_temp.conn());

-- Committed rows that no trigger dispatches: expired leases (not pending), so only our claims act.
select dblink_exec('setup', $$
  insert into public.sites (id, domain, status_dns, status_hosting, hosting_attempts,
                            hosting_lease_until, hosting_claim_token)
  values ('d0000000-0000-4000-8000-000000000001', 'race-1.pgtap.test', 'active', 'provisioning', 1,
          now() - interval '1 minute', gen_random_uuid()),
         ('d0000000-0000-4000-8000-000000000002', 'race-2.pgtap.test', 'active', 'provisioning', 1,
          now() - interval '1 minute', gen_random_uuid()),
         ('d0000000-0000-4000-8000-000000000003', 'race-3.pgtap.test', 'active', 'provisioning', 1,
          now() - interval '1 minute', gen_random_uuid())
$$);

-- Session a claims race-1 and holds its transaction open; b asks for the same site meanwhile.
select dblink_exec('a', 'begin');
select is(
  (select jsonb_array_length(answer::jsonb -> 'claimed') from dblink('a', $$
     select public.hosting_claim('d0000000-0000-4000-8000-000000000001', 1, 10, 600, 8)::text $$)
   as t(answer text)),
  1, 'the first session claims the site');
select is(dblink_send_query('b', $$
  select public.hosting_claim('d0000000-0000-4000-8000-000000000001', 1, 10, 600, 8)::text $$), 1,
  'the second session asks for the same site at the same time');
select pg_sleep(0.3);
select is(dblink_is_busy('b'), 1, 'the second claim waits while the first is undecided');
select dblink_exec('a', 'commit');
select is(
  (select jsonb_array_length(answer::jsonb -> 'claimed') from dblink_get_result('b') as t(answer text)),
  0, 'once the first commits, the second gets nothing: one worker per site');
select * from dblink_get_result('b') as t(answer text);

-- The cap across sessions: one site provisioning (race-1), cap 2, two more due, two claimers.
select dblink_exec('a', 'begin');
select is(
  (select jsonb_array_length(answer::jsonb -> 'claimed') from dblink('a', $$
     select public.hosting_claim(null, 5, 2, 600, 8)::text $$) as t(answer text)),
  1, 'with a cap of 2, a claimer gets the one free slot');
select dblink_send_query('b', $$ select public.hosting_claim(null, 5, 2, 600, 8)::text $$);
select pg_sleep(0.3);
select dblink_exec('a', 'commit');
select is(
  (select jsonb_array_length(answer::jsonb -> 'claimed') from dblink_get_result('b') as t(answer text)),
  0, 'a concurrent claimer finds the cap reached');
select * from dblink_get_result('b') as t(answer text);
select is(
  (select n from dblink('setup', $$ select count(*)::int from public.sites
                                    where domain like '%.pgtap.test' and status_hosting = 'provisioning'
                                      and hosting_lease_until > now() $$) as t(n int)),
  2, 'never more leased provisioning sites than the cap');
select is(
  (select n from dblink('setup', $$ select count(*)::int from public.hosting_events e
                                    join public.sites s on s.id = e.site_id
                                    where s.domain like '%.pgtap.test' and e.step = 'claim' $$) as t(n int)),
  2, 'one claim event per claim that happened');

select dblink_exec('setup', $$ delete from public.sites where domain like '%.pgtap.test' $$);
select dblink_disconnect('a');
select dblink_disconnect('b');
select dblink_disconnect('setup');

select * from finish();
rollback;
