-- Several servers: hosting_servers, placement when a row is created, the DNS side's addresses,
-- per-server caps and pauses in the claim, the sweeper, per-server metrics, and the way an
-- installation without servers keeps working.
begin;
select plan(53);

set local client_min_messages = error;
do $$
begin
  delete from vault.secrets where name in ('hosting_automator_url', 'hosting_automator_key');
  perform vault.create_secret('http://127.0.0.1:9/functions/v1/hosting-automator', 'hosting_automator_url');
  perform vault.create_secret('test-dispatch-token-0123', 'hosting_automator_key');
end
$$;
delete from net.http_request_queue;

-- without servers nothing changes: a site has no server and the claim takes it for SSH_HOST
insert into public.sites (id, domain, status_dns) values
  ('e0000000-0000-4000-8000-000000000001', 'legacy.example.com', 'active');
select is((select hosting_server from public.sites where domain = 'legacy.example.com'), null,
  'with no row in hosting_servers a new site gets no server (the implicit one)');
select is(jsonb_array_length(public.hosting_claim(p_limit => 5) -> 'claimed'), 1,
  'the claim takes it as before');
select is(public.hosting_claim(p_limit => 5) #>> '{paused,servers}', '{}', '… and reports no paused server');

-- the table refuses what is not a server
select throws_ok($$ insert into public.hosting_servers (name, ssh_host, host_key_fingerprint, capacity)
  values ('Fra_1', '10.0.0.1', 'SHA256:' || repeat('A', 43), 10) $$, '23514', null,
  'a server name is lower case, digits and single hyphens (it names an environment variable)');
select throws_ok($$ insert into public.hosting_servers (name, ssh_host, host_key_fingerprint, capacity)
  values ('fra-1', '10.0.0.1;reboot', 'SHA256:' || repeat('A', 43), 10) $$, '23514', null,
  'a host is a name or an address, nothing a shell would read');
select throws_ok($$ insert into public.hosting_servers (name, ssh_host, host_key_fingerprint, capacity)
  values ('fra-1', '10.0.0.1', 'MD5:aa:bb', 10) $$, '23514', null,
  'the host key is pinned as SHA256:… (ssh-keygen -lf)');
select throws_ok($$ insert into public.hosting_servers (name, ssh_host, host_key_fingerprint, capacity,
  public_ipv4) values ('fra-1', '10.0.0.1', 'SHA256:' || repeat('A', 43), 10, '2001:db8::1') $$,
  '23514', null, 'public_ipv4 holds an IPv4 address');
select throws_ok($$ insert into public.hosting_servers (name, ssh_host, host_key_fingerprint, capacity)
  values ('fra-1', '10.0.0.1', 'SHA256:' || repeat('A', 43), -1) $$, '23514', null,
  'a capacity is not negative');

insert into public.hosting_servers (name, ssh_host, ssh_port, host_key_fingerprint, capacity,
                                    max_concurrent, public_ipv4, public_ipv6) values
  ('alpha', '10.0.0.1', 22, 'SHA256:' || repeat('A', 43), 3, 1, '203.0.113.1', '2001:db8::1'),
  ('beta', '10.0.0.2', 2222, 'SHA256:' || repeat('B', 43), 5, 2, '203.0.113.2', null),
  ('gamma', '10.0.0.3', 22, 'SHA256:' || repeat('C', 43), 50, 2, '203.0.113.3', null);
update public.hosting_servers set accepts_new_sites = false where name = 'gamma';

-- placement: most free capacity among servers accepting new sites, ties by name
insert into public.sites (id, domain, status_dns) values
  ('e0000000-0000-4000-8000-000000000011', 'one.example.com', 'active');
select is((select hosting_server from public.sites where domain = 'one.example.com'), 'beta',
  'a new site goes to the server with the most free capacity (beta 5 > alpha 3; gamma takes none)');
insert into public.sites (id, domain, status_dns) values
  ('e0000000-0000-4000-8000-000000000012', 'two.example.com', 'active'),
  ('e0000000-0000-4000-8000-000000000013', 'three.example.com', 'active'),
  ('e0000000-0000-4000-8000-000000000014', 'four.example.com', 'active');
select results_eq($$ select domain, hosting_server from public.sites
                     where id::text like 'e0000000-0000-4000-8000-00000000001%' order by id $$,
  $$ values ('one.example.com', 'beta'), ('two.example.com', 'beta'), ('three.example.com', 'alpha'),
            ('four.example.com', 'beta') $$,
  'one multi-row insert places row by row (beta 4 free, then 3 = alpha 3: tie by name)');
insert into public.sites (id, domain, status_dns, hosting_server) values
  ('e0000000-0000-4000-8000-000000000015', 'pinned.example.com', 'active', 'gamma');
select is((select hosting_server from public.sites where domain = 'pinned.example.com'), 'gamma',
  'a row that names its server stays there, even one not accepting new sites');
select throws_ok($$ insert into public.sites (domain, hosting_server) values ('nowhere.example.com', 'delta') $$,
  '23503', null, 'a server that does not exist is refused');
update public.sites set status_hosting = 'removed' where domain = 'legacy.example.com';
insert into public.sites (domain) select format('fill%s.example.com', g) from generate_series(1, 4) g;
select results_eq($$ select free_capacity from public.hosting_server_metrics
                     where server <> 'gamma' order by server $$,
  $$ values (0::bigint), (0::bigint) $$, 'four more sites fill every free place');
insert into public.sites (id, domain, status_dns) values
  ('e0000000-0000-4000-8000-000000000016', 'late.example.com', 'active');
select is((select hosting_server from public.sites where domain = 'late.example.com'), null,
  'when no server has room the row is kept, unplaced (a WARNING says so)');
select throws_ok($$ select public.hosting_place('late.example.com') $$, '53400', null,
  'hosting_place says there is still no room');
update public.hosting_servers set capacity = 10 where name = 'alpha';
select is(public.hosting_place('late.example.com'), 'alpha', 'with room added, hosting_place places it');
select throws_ok($$ select public.hosting_place('late.example.com') $$, '22023', null,
  'a placed site is not placed again');

-- what the DNS side publishes
select results_eq($$ select hosting_server, ipv4, ipv6 from public.hosting_dns_targets
                     where domain in ('one.example.com', 'three.example.com', 'legacy.example.com')
                     order by domain $$,
  $$ values (null, null, null), ('beta', '203.0.113.2', null), ('alpha', '203.0.113.1', '2001:db8::1') $$,
  'hosting_dns_targets gives each site its server''s A and AAAA addresses (none for the implicit server)');

-- a site stays on its server
update public.sites set hosting_server = 'alpha' where domain = 'fill2.example.com';
select is((select hosting_server from public.sites where domain = 'fill2.example.com'), 'alpha',
  'a site that never went live (no document root, pending) may be moved by an operator');
update public.sites set status_hosting = 'active', hosting_doc_root = '/home/x/htdocs/x'
where domain = 'fill4.example.com';
select throws_ok($$ update public.sites set hosting_server = 'gamma' where domain = 'fill4.example.com' $$,
  '55000', null, 'a site that exists on its server is never moved');
update public.hosting_servers set name = 'beta-1' where name = 'beta';
select is((select count(*)::int from public.sites where hosting_server = 'beta-1'), 4,
  'renaming a server renames it on its sites, live ones too (they did not move)');
update public.hosting_servers set name = 'beta' where name = 'beta-1';

-- the claim: per-server caps within the global one
delete from public.sites where domain like 'fill%' or domain in ('late.example.com', 'pinned.example.com');
select is(jsonb_array_length(public.hosting_claim(p_limit => 10, p_max_concurrent => 10) -> 'claimed'), 3,
  'a claim for ten takes alpha''s one and beta''s two (max_concurrent 1 and 2), not more');
select results_eq($$ select hosting_server, count(*)::int from public.sites
                     where status_hosting = 'provisioning' group by 1 order by 1 $$,
  $$ values ('alpha', 1), ('beta', 2) $$, '… one on alpha, two on beta');
select is(public.hosting_claim('e0000000-0000-4000-8000-000000000014', 1, 10) #>> '{site,skip_reason}',
  'AT_CAPACITY', 'a site of a server at its cap is skipped AT_CAPACITY');
select is(public.hosting_claim(p_limit => 10, p_max_concurrent => 10) -> 'claimed', '[]'::jsonb,
  'nothing more while both servers are at their caps');
update public.sites set status_hosting = 'active', hosting_doc_root = '/home/a/htdocs/a',
  matomo_site_id = 1, hosting_lease_until = null, hosting_claim_token = null
where status_hosting = 'provisioning' and hosting_server = 'beta';
select is(public.hosting_claim(p_limit => 10, p_max_concurrent => 1) -> 'claimed', '[]'::jsonb,
  'the global cap counts every server''s sites together');
select is(jsonb_array_length(public.hosting_claim(p_limit => 10, p_max_concurrent => 10) -> 'claimed'), 1,
  'a slot freed on beta is taken by beta''s next site');
select results_eq(
  $$ select public.hosting_job_json(s, 'provision') #>> '{server,name}',
            public.hosting_job_json(s, 'provision') #>> '{server,port}',
            public.hosting_job_json(s, 'provision') #>> '{server,host_key_fingerprint}',
            public.hosting_job_json(s, 'provision') #> '{server,addresses}'
     from public.sites s where domain = 'three.example.com' $$,
  $$ values ('alpha', '22', 'SHA256:' || repeat('A', 43), '["203.0.113.1", "2001:db8::1"]'::jsonb) $$,
  'a job carries its server: host, port, user, pinned key and addresses');

-- a failing server pauses itself only
update public.sites set status_hosting = 'pending', hosting_lease_until = null,
  hosting_claim_token = null, hosting_doc_root = null, matomo_site_id = null
where status_dns = 'active';
insert into public.sites (id, domain, status_dns, hosting_server) values
  ('e0000000-0000-4000-8000-000000000021', 'b1.example.com', 'active', 'beta');
select is((public.hosting_report_health('server:alpha', 'sha256:key-1', false, 'SSH_HOST_KEY_MISMATCH',
  'wrong host key', 60, 900) ->> 'failures')::int, 1, 'a failure of alpha is recorded on its row');
select results_eq($$ select paused_until > now() + interval '55 seconds', failures, last_code, health_key
                     from public.hosting_servers where name = 'alpha' $$,
  $$ values (true, 1, 'SSH_HOST_KEY_MISMATCH', 'sha256:key-1') $$,
  '… it is paused for the base backoff, with the code and the key digest');
select ok((public.hosting_report_health('server:alpha', 'sha256:key-1', false, 'SSH_HOST_KEY_MISMATCH',
  'again', 60, 900) ->> 'paused_until')::timestamptz > now() + interval '115 seconds',
  'a second failure with the same key doubles the backoff');
select set_eq($$ select (j ->> 'server')::jsonb ->> 'name'
                 from jsonb_array_elements(public.hosting_claim(p_limit => 10, p_max_concurrent => 10,
                        p_ssh_keys => '{"*": "sha256:key-1"}', p_implicit_server => false) -> 'claimed') j $$,
  $$ values ('beta'), ('beta') $$, 'the claim skips paused alpha and takes beta''s sites (its cap: two)');
select is(public.hosting_claim('e0000000-0000-4000-8000-000000000013', 1, 10,
  p_ssh_keys => '{"*": "sha256:key-1"}') #>> '{site,skip_reason}', 'SERVER_PAUSED',
  'a site on the paused server is skipped SERVER_PAUSED');
select ok(public.hosting_claim(p_ssh_keys => '{"*": "sha256:key-1"}') #>> '{paused,servers,alpha}' is not null,
  'the answer names the paused server');
select is(jsonb_array_length(public.hosting_claim('e0000000-0000-4000-8000-000000000013', 1, 10,
  p_ssh_keys => '{"*": "sha256:key-1", "alpha": "sha256:key-2"}') -> 'claimed'), 1,
  'a new key for alpha (its override) lifts the pause at once');
select results_eq($$ select paused_until, failures from public.hosting_servers where name = 'alpha' $$,
  $$ values (null::timestamptz, 0) $$, '… and clears it on the row');
select public.hosting_report_health('server:alpha', 'sha256:key-2', false, 'SSH_UNREACHABLE', 'down', 60, 900);
update public.sites set status_hosting = 'pending', hosting_lease_until = null, hosting_claim_token = null,
  -- as the function writes it back: a JavaScript Date, in milliseconds
  hosting_next_attempt_at = (select date_trunc('milliseconds', paused_until) from public.hosting_servers
                             where name = 'alpha')
where id = 'e0000000-0000-4000-8000-000000000013';
-- another failure in the same run paused alpha to an earlier end for this one
insert into public.sites (id, domain, status_dns, hosting_server, hosting_next_attempt_at) values
  ('e0000000-0000-4000-8000-000000000031', 'earlier.example.com', 'active', 'alpha',
   (select paused_until - interval '30 seconds' from public.hosting_servers where name = 'alpha'));
select is(public.hosting_due_work(s), null, '(a site waits for alpha''s pause)')
from public.sites s where id = 'e0000000-0000-4000-8000-000000000013';
update public.hosting_servers set host_key_fingerprint = 'SHA256:' || repeat('D', 43) where name = 'alpha';
select results_eq($$ select paused_until, failures, health_key from public.hosting_servers where name = 'alpha' $$,
  $$ values (null::timestamptz, 0, null::text) $$, 'a corrected row (a new fingerprint) ends the pause too');
select results_eq($$ select public.hosting_due_work(s) from public.sites s
                     where id in ('e0000000-0000-4000-8000-000000000013',
                                  'e0000000-0000-4000-8000-000000000031') $$,
  $$ values ('provision'), ('provision') $$,
  '… and every site that waited within that pause is due now');
delete from public.sites where id = 'e0000000-0000-4000-8000-000000000031';
select throws_ok($$ select public.hosting_report_health('server:nobody', 'k', false, 'X', 'y') $$, 'P0002',
  null, 'a report about an unknown server is refused');

-- success ends a failure streak
select public.hosting_report_health('server:beta', 'sha256:key-1', false, 'SSH_UNREACHABLE', 'x', 1, 1);
update public.hosting_servers set paused_until = now() - interval '1 second' where name = 'beta';
update public.sites set status_hosting = 'active', hosting_doc_root = '/home/b/htdocs/b',
  hosting_lease_until = null, hosting_claim_token = null
where id = (select id from public.sites where hosting_server = 'beta' and status_hosting = 'provisioning' limit 1);
select is((select failures from public.hosting_servers where name = 'beta'), 0,
  'a site going active on beta ends beta''s failure streak');

-- the sweeper wakes the function only for work a server can take
update public.sites set status_hosting = 'active', hosting_doc_root = '/x', hosting_lease_until = null,
  hosting_claim_token = null where status_hosting = 'provisioning';
update public.sites set matomo_site_id = 1 where status_hosting = 'active';
update public.sites set status_hosting = 'pending' where domain = 'legacy.example.com';
update public.sites set status_dns = 'inactive' where hosting_server is null;
update public.sites set hosting_next_attempt_at = 'infinity' where status_hosting = 'pending';
update public.sites set status_hosting = 'pending', hosting_next_attempt_at = null
where domain = 'three.example.com';
delete from net.http_request_queue;
select public.hosting_report_health('server:alpha', 'k', false, 'SSH_UNREACHABLE', 'down', 60, 900);
select is(public.hosting_automator_sweep(), 0, 'the sweeper sends nothing when the only due site''s server is paused');
update public.hosting_servers set paused_until = null where name = 'alpha';
select is(public.hosting_automator_sweep(), 1, '… and one request once it is not');
select ok(public.hosting_claim(p_site_id => 'e0000000-0000-4000-8000-000000000013', p_implicit_server => false)
  -> 'claimed' <> '[]'::jsonb, '(three.example.com claimed)');
select is(public.hosting_automator_sweep(), 0, 'nor when its server is at its cap (alpha: one)');
update public.sites set status_dns = 'active', hosting_next_attempt_at = null where domain = 'legacy.example.com';
select is(public.hosting_claim('e0000000-0000-4000-8000-000000000001', p_implicit_server => false)
  #>> '{site,skip_reason}', 'NO_SERVER',
  'a site without a server, when the function has no SSH_HOST, is skipped NO_SERVER');
select is(public.hosting_automator_sweep(), 0, '… and the sweeper, told so by that claim, does not wake it for it');

-- the function's own role can do all of it (its grants)
set local role service_role;
select lives_ok($$ select public.hosting_claim(p_ssh_keys => '{"*": "sha256:k"}', p_implicit_server => false) $$,
  'service_role claims with key digests');
select lives_ok($$ select public.hosting_report_health('server:beta', 'k', false, 'SSH_UNREACHABLE', 'x') $$,
  'service_role reports a listed server''s health');
select lives_ok($$ select * from public.hosting_dns_targets, public.hosting_server_metrics $$,
  'service_role reads the DNS targets and the per-server metrics');
reset role;
select throws_ok($$ set local role authenticated; select * from public.hosting_servers $$, '42501', null,
  'authenticated users cannot read hosting_servers');
reset role;
update public.hosting_servers set paused_until = null where name = 'beta';

-- metrics per server
select results_eq($$ select server, sites_provisioning, max_concurrent, paused
                     from public.hosting_server_metrics order by server $$,
  $$ values ('alpha', 1::bigint, 1, false), ('beta', 0::bigint, 2, false), ('gamma', 0::bigint, 2, false) $$,
  'hosting_server_metrics: provisioning now, the cap, whether paused, per server');
select is((select jsonb_array_length(servers) from public.hosting_metrics), 3,
  'hosting_metrics.servers has one entry per server');

select * from finish();
rollback;
