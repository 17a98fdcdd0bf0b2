// Faults on the local stack, the second time round: concurrent deliveries, re-runs, a killed
// function, a function that is down, a burst, a partial CloudPanel failure, a broken server, Let's
// Encrypt refusing, commands that hang, Matomo failing. Each test counts what reached the servers
// (the clpctl call log, SSH connections, Matomo's sites and request log), not only the final state.

import assert from "node:assert/strict";
import { siteUserCandidates } from "../../functions/hosting-automator/core/site_user.ts";
import {
  callFunction,
  cleanUp,
  cloudpanelFault,
  clpctlCalls,
  e2e,
  edgeRuntime,
  events,
  functionEnv,
  functionWith,
  insertSite,
  inventory,
  killFunction,
  matomoFault,
  matomoRequests,
  matomoSitesFor,
  onServer,
  peakWhileDraining,
  removeSite,
  secretKey,
  serverHasDirectory,
  setting,
  site,
  sshConnections,
  uniqueDomain,
  waitFor,
  withoutDispatch,
} from "./stack.ts";

const settled = (row: { status_hosting: string }) =>
  row.status_hosting === "active" || row.status_hosting === "failed";

const count = (items: string[], wanted: string) => items.filter((i) => i === wanted).length;

e2e(
  "20 concurrent deliveries for one site: 1 claim, 1 site:add:static, 1 certificate, 1 Matomo site",
  async (sql) => {
    const domain = uniqueDomain("twenty");
    const id = await insertSite(sql, domain, "pending");
    try {
      const bearer = { authorization: `Bearer ${setting("SUPABASE_SERVICE_ROLE_KEY")}` };
      const deliveries: Promise<unknown>[] = [
        sql`update public.sites set status_dns = 'active' where id = ${id}`,
        ...Array.from({ length: 5 }, () => sql`select public.hosting_automator_sweep()`),
        ...Array.from({ length: 7 }, () => callFunction({ site_id: id })),
        ...Array.from({ length: 7 }, () => callFunction({ site_id: id, wait: true }, bearer)),
      ];
      await Promise.all(deliveries);
      const row = await waitFor(sql, id, settled);
      assert.equal(row.status_hosting, "active");
      const trail = await events(sql, id);
      assert.equal(trail.filter((e) => e.startsWith("claim:")).length, 1, trail.join());
      assert.deepEqual(await clpctlCalls(domain), [
        "site:add:static 0",
        "lets-encrypt:install:certificate 0",
      ]);
      assert.equal((await matomoSitesFor(domain)).length, 1);
    } finally {
      await cleanUp(sql, [{ id, domain }]);
    }
  },
);

e2e(
  "re-firing an active site reaches no server; six resets request one certificate in all",
  async (sql) => {
    const domain = uniqueDomain("six");
    const id = await insertSite(sql, domain);
    try {
      const first = await waitFor(sql, id, settled);
      assert.equal(first.status_hosting, "active");
      const connections = await sshConnections();
      const matomo = (await matomoRequests()).length;

      const refire = await callFunction({ site_id: id, wait: true });
      assert.deepEqual(
        (refire.body.skipped as Array<{ reason: string }>)[0].reason,
        "ALREADY_ACTIVE",
      );
      await sql`select public.hosting_automator_sweep()`;
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal(await sshConnections(), connections, "no SSH connection for an active site");
      assert.equal((await matomoRequests()).length, matomo, "no Matomo call either");

      for (let reset = 1; reset <= 6; reset++) {
        await sql`update public.sites set status_hosting = 'pending' where id = ${id}`;
        await waitFor(sql, id, (r) => r.status_hosting === "active" && r.hosting_attempts === 1);
      }
      const calls = await clpctlCalls(domain);
      assert.equal(count(calls, "site:add:static 0"), 1, calls.join());
      assert.equal(count(calls, "lets-encrypt:install:certificate 0"), 1, calls.join());
      assert.equal(calls.length, 2, "nothing else ran clpctl");
      const trail = await events(sql, id);
      assert.equal(count(trail, "certificate:skipped:CERTIFICATE_VALID"), 6);
      assert.equal(count(trail, "site:warning:SITE_ADOPTED"), 6);
      assert.deepEqual(await matomoSitesFor(domain), [first.matomo_site_id]);
      const row = await site(sql, id);
      assert.equal(row.status_hosting, "active");
      assert.equal(row.hosting_doc_root, first.hosting_doc_root);
    } finally {
      await cleanUp(sql, [{ id, domain }]);
    }
  },
);

e2e(
  "the function killed right after site:add:static: after the lease one sweep finishes the site",
  async (sql) => {
    const domain = uniqueDomain("killed");
    await cloudpanelFault(domain, "delay_ms", "4000 lets-encrypt:install:certificate once");
    const id = await insertSite(sql, domain);
    try {
      const until = Date.now() + 20_000;
      while (!(await clpctlCalls(domain)).includes("site:add:static 0")) {
        assert.ok(Date.now() < until, "site:add:static never ran");
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.ok((await killFunction()) >= 1, "a function process was running");
      assert.equal(
        (await site(sql, id)).status_hosting,
        "provisioning",
        "left leased by the crash",
      );

      // Time moves instead of waiting for the lease; then the sweeper hands the site out again.
      await sql`update public.sites set hosting_lease_until = now() - interval '1 second'
                where id = ${id}`;
      await sql`select public.hosting_automator_sweep()`;
      const row = await waitFor(sql, id, settled);
      assert.equal(row.status_hosting, "active", row.hosting_error ?? "");
      const user = siteUserCandidates(domain, 1)[0];
      assert.equal(row.hosting_doc_root, `/home/${user}/htdocs/${domain}`);
      assert.equal(count(await clpctlCalls(domain), "site:add:static 0"), 1, "created once");
      assert.deepEqual(await inventory(domain), [`${domain} ${user}`]);
      assert.equal((await matomoSitesFor(domain)).length, 1);
      assert.ok((await events(sql, id)).includes("claim:ok:RECLAIMED"));
    } finally {
      await cleanUp(sql, [{ id, domain }]);
    }
  },
);

e2e(
  "the function down when DNS turns active: the next sweep after it is back provisions the site",
  async (sql) => {
    const domain = uniqueDomain("down");
    let id = "";
    await edgeRuntime("down");
    try {
      id = await insertSite(sql, domain);
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const waiting = await site(sql, id);
      assert.equal(waiting.status_hosting, "pending");
      assert.equal(waiting.hosting_attempts, 0);
    } finally {
      await edgeRuntime("up");
    }
    try {
      assert.equal((await sql`select public.hosting_automator_sweep() as n`)[0].n, 1);
      const row = await waitFor(sql, id, settled);
      assert.equal(row.status_hosting, "active");
      assert.equal(row.hosting_attempts, 1);
    } finally {
      await cleanUp(sql, [{ id, domain }]);
    }
  },
);

e2e(
  "50 sites turned active in one statement: one request, all active, never more than the cap at once",
  async (sql) => {
    const cap = Number((await functionEnv()).HOSTING_MAX_CONCURRENT ?? 3);
    const domains = Array.from({ length: 50 }, (_, i) => uniqueDomain(`fifty${i}`));
    const rows = await sql<{ id: string }[]>`
      insert into public.sites ${sql(domains.map((domain) => ({ domain, status_dns: "pending" })))}
      returning id`;
    const ids = rows.map((r) => r.id);
    try {
      const [{ before }] = await sql<{ before: number }[]>`
        select coalesce(max(id), 0)::int as before from net._http_response`;
      await sql`update public.sites set status_dns = 'active' where id = any(${ids}::uuid[])`;
      const peak = await peakWhileDraining(sql, ids, 150_000);
      assert.ok(peak <= cap, `peak ${peak} above the cap ${cap}`);
      const [{ failed }] = await sql<{ failed: number }[]>`
        select count(*)::int as failed from public.sites
        where id = any(${ids}::uuid[]) and status_hosting <> 'active'`;
      assert.equal(failed, 0);
      // The statement's request (and any sweeps meanwhile): never one per row.
      const [{ sent }] = await sql<{ sent: number }[]>`
        select count(*)::int as sent from net._http_response where id > ${before}`;
      assert.ok(sent <= 5, `${sent} requests for one statement`);
      const [{ lost }] = await sql<{ lost: number }[]>`
        select count(*)::int as lost from public.hosting_events
        where site_id = any(${ids}::uuid[]) and code = 'SSH_CONNECTION_LOST'`;
      assert.equal(lost, 0, "no channel was refused by the server (MaxSessions)");
    } finally {
      await cleanUp(sql, domains.map((domain, i) => ({ id: ids[i], domain })));
    }
  },
);

e2e(
  "a partial site:add:static (user made, then a failure) is healed by the next attempt; the orphan stays",
  async (sql) => {
    const domain = uniqueDomain("partial");
    const [first, second] = siteUserCandidates(domain, 2);
    await cloudpanelFault(domain, "fail_after", "createUser once");
    const id = await insertSite(sql, domain);
    try {
      const waiting = await waitFor(
        sql,
        id,
        (r) => r.status_hosting === "pending" && r.hosting_attempts === 1,
      );
      assert.match(waiting.hosting_error!, /^CLPCTL_FAILED: /);
      assert.equal(
        (await onServer(`getent passwd '${first}'`)).code,
        0,
        "CloudPanel left the user",
      );

      await sql`update public.sites set hosting_next_attempt_at = now() where id = ${id}`;
      await sql`select public.hosting_automator_sweep()`;
      const row = await waitFor(sql, id, settled);
      assert.equal(row.status_hosting, "active", row.hosting_error ?? "");
      assert.equal(row.hosting_site_user, second);
      assert.deepEqual(await clpctlCalls(domain), [
        "site:add:static 1",
        "site:add:static 0",
        "lets-encrypt:install:certificate 0",
      ]);
      assert.ok(await serverHasDirectory(`/home/${first}`), "the orphan's home is untouched");
    } finally {
      await cleanUp(sql, [{ id, domain }]);
      await onServer(`userdel -r '${first}'`);
    }
  },
);

/** A client key the server does not know, made for this run. */
async function strangerKey(): Promise<string> {
  const dir = await Deno.makeTempDir();
  try {
    const made = await new Deno.Command("ssh-keygen", {
      args: ["-q", "-t", "ed25519", "-N", "", "-f", `${dir}/key`],
    }).output();
    assert.ok(made.success);
    return await Deno.readTextFile(`${dir}/key`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

e2e(
  "a broken server with 25 due sites: ≤ 1 connection per run, no site failed, all active after the fix",
  async (sql) => {
    const domains = Array.from({ length: 25 }, (_, i) => uniqueDomain(`broken${i}`));
    let ids: string[] = [];
    try {
      for (
        const [setting, value] of [
          ["SSH_HOST_KEY_FINGERPRINT", "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
          ["SSH_PRIVATE_KEY", await strangerKey()],
        ]
      ) {
        const broken = await functionWith({ [setting]: value });
        await withoutDispatch(sql, async () => {
          if (ids.length === 0) {
            const rows = await sql<{ id: string }[]>`
              insert into public.sites ${
              sql(domains.map((domain) => ({ domain, status_dns: "active" })))
            }
              returning id`;
            ids = rows.map((r) => r.id);
          }
          const before = await sshConnections();
          const first = await broken.call({ wait: true });
          assert.equal(first.status, 200);
          assert.ok(await sshConnections() - before <= 1, `${setting}: one connection attempt`);
          const again = await broken.call({ wait: true });
          assert.deepEqual(again.body.results, [], `${setting}: the paused server gets no claim`);
          assert.ok(await sshConnections() - before <= 1, `${setting}: and no new connection`);
        });
        const states = await sql<{ status_hosting: string; n: number; attempts: number }[]>`
          select status_hosting, count(*)::int as n, max(hosting_attempts) as attempts
          from public.sites where id = any(${ids}::uuid[]) group by status_hosting`;
        assert.deepEqual(states.map((s) => ({ ...s })), [
          { status_hosting: "pending", n: 25, attempts: 0 },
        ], `${setting}: every site pending, no attempt used up`);
      }
      // Fixed: the served function has the right settings; its calls drain every site.
      await sql`update public.sites set hosting_next_attempt_at = null where id = any(${ids}::uuid[])`;
      const until = Date.now() + 120_000;
      while (true) {
        await callFunction({ wait: true });
        const [{ open }] = await sql<{ open: number }[]>`
          select count(*)::int as open from public.sites
          where id = any(${ids}::uuid[]) and status_hosting <> 'active'`;
        if (open === 0) break;
        assert.ok(Date.now() < until, `${open} sites not active after the fix`);
      }
    } finally {
      await cleanUp(sql, domains.map((domain, i) => ({ id: ids[i], domain })).filter((s) => s.id));
    }
  },
);

e2e(
  "Let's Encrypt: DNS not ready backs off, then fails on the last attempt; a rate limit waits an hour",
  async (sql) => {
    const late = uniqueDomain("le-dns");
    const limited = uniqueDomain("le-rate");
    const fn = await functionWith({ HOSTING_MAX_ATTEMPTS: "2" });
    await cloudpanelFault(late, "cert", "dns");
    await cloudpanelFault(limited, "cert", "rate_limited");
    const ids: string[] = [];
    try {
      await withoutDispatch(sql, async () => {
        ids.push(await insertSite(sql, late), await insertSite(sql, limited));
        const first = await fn.call({ site_id: ids[0], wait: true });
        assert.equal(first.body.results[0].status, "pending");
        const waiting = await site(sql, ids[0]);
        assert.ok(waiting.hosting_next_attempt_at! > new Date(Date.now() + 50_000), "backs off");
        await sql`update public.sites set hosting_next_attempt_at = now() where id = ${ids[0]}`;
        const second = await fn.call({ site_id: ids[0], wait: true });
        assert.equal(second.body.results[0].status, "failed");
        assert.match((await site(sql, ids[0])).hosting_error!, /^DNS_NOT_READY: /);
        assert.equal(count(await clpctlCalls(late), "lets-encrypt:install:certificate 1"), 2);

        await fn.call({ site_id: ids[1], wait: true });
        const row = await site(sql, ids[1]);
        assert.equal(row.status_hosting, "pending");
        assert.match(row.hosting_error!, /^RATE_LIMITED: /);
        assert.ok(row.hosting_next_attempt_at! >= new Date(Date.now() + 3_590_000), "≥ 1 h");
      });
    } finally {
      await cleanUp(sql, [{ id: ids[0], domain: late }, { id: ids[1], domain: limited }]);
    }
  },
);

e2e(
  "a clpctl that never exits, a refused port and a silent server are each classified within their deadlines",
  async (sql) => {
    const hung = uniqueDomain("hang");
    await cloudpanelFault(hung, "hang", "60 site:add:static");
    const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 }); // accepts, never speaks
    const held: Deno.Conn[] = [];
    (async () => {
      for await (const conn of silent) held.push(conn);
    })();
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const closedPort = (closed.addr as Deno.NetAddr).port;
    closed.close();
    const cases: Array<{ domain: string; env: Record<string, string>; code: string; ms: number }> =
      [
        {
          domain: hung,
          env: { HOSTING_SITE_TIMEOUT_SECONDS: "2" },
          code: "COMMAND_TIMEOUT",
          ms: 6_000,
        },
        {
          domain: uniqueDomain("refused"),
          env: { SSH_PORT: String(closedPort) },
          code: "SSH_UNREACHABLE",
          ms: 3_000,
        },
        {
          domain: uniqueDomain("silent"),
          env: {
            SSH_PORT: String((silent.addr as Deno.NetAddr).port),
            SSH_CONNECT_TIMEOUT_SECONDS: "2",
          },
          code: "SSH_TIMEOUT",
          ms: 6_000,
        },
      ];
    const made: Array<{ id: string; domain: string }> = [];
    try {
      for (const c of cases) {
        const fn = await functionWith(c.env);
        await withoutDispatch(sql, async () => {
          const id = await insertSite(sql, c.domain);
          made.push({ id, domain: c.domain });
          const started = Date.now();
          const answer = await fn.call({ site_id: id, wait: true });
          const took = Date.now() - started;
          assert.equal(answer.body.results[0].error.code, c.code, JSON.stringify(answer.body));
          assert.ok(took < c.ms, `${c.code} took ${took} ms`);
          const row = await site(sql, id);
          assert.equal(row.status_hosting, "pending", `${c.code}: out of provisioning, to retry`);
        });
        await sql`delete from public.hosting_health`;
      }
    } finally {
      silent.close();
      for (const conn of held) conn.close();
      await cleanUp(sql, made);
    }
  },
);

e2e(
  "Matomo failing leaves the site active with a warning; after recovery exactly one Matomo site",
  async (sql) => {
    const fn = await functionWith({ MATOMO_TIMEOUT_SECONDS: "2" });
    const made: Array<{ id: string; domain: string }> = [];
    try {
      for (
        const [mode, code] of [
          ["error500", "MATOMO_HTTP"],
          ["unavailable", "MATOMO_HTTP"],
          ["close", "MATOMO_UNREACHABLE"],
          ["hang", "MATOMO_TIMEOUT"],
        ]
      ) {
        const domain = uniqueDomain(`matomo-${mode}`);
        await matomoFault(mode);
        try {
          await withoutDispatch(sql, async () => {
            const id = await insertSite(sql, domain);
            made.push({ id, domain });
            const answer = await fn.call({ site_id: id, wait: true });
            const [result] = answer.body.results;
            assert.equal(result.status, "active", `${mode}: the hosting does not fail`);
            assert.equal(result.matomo_site_id, null);
            assert.equal(result.warnings[0].code, code, `${mode}: ${JSON.stringify(result)}`);
            assert.ok((await events(sql, id)).includes(`analytics:warning:${code}`));
          });
        } finally {
          await matomoFault("none");
        }
      }
      // Recovered: the operator retries the analytics of each at once; one Matomo site each.
      await withoutDispatch(sql, async () => {
        for (const { id, domain } of made) {
          const [{ retried }] = await sql<{ retried: string }[]>`
            select public.hosting_retry(${domain}) ->> 'retried' as retried`;
          assert.equal(retried, "analytics");
          await fn.call({ site_id: id, wait: true });
          const row = await site(sql, id);
          assert.equal(typeof row.matomo_site_id, "number", domain);
          assert.deepEqual(await matomoSitesFor(domain), [row.matomo_site_id]);
        }
      });
    } finally {
      await cleanUp(sql, made);
    }
  },
);

e2e(
  "a wrong Matomo token with 20 sites: one failed login reaches Matomo, none in the next hour",
  async (sql) => {
    const domains = Array.from({ length: 20 }, (_, i) => uniqueDomain(`token${i}`));
    let ids: string[] = [];
    const wrong = { MATOMO_TOKEN_AUTH: "not-the-token-0123456789abcdef" };
    try {
      const before = (await matomoRequests()).length;
      await withoutDispatch(sql, async () => {
        const rows = await sql<{ id: string }[]>`
          insert into public.sites ${
          sql(domains.map((domain) => ({ domain, status_dns: "active" })))
        }
          returning id`;
        ids = rows.map((r) => r.id);
        const fn = await functionWith(wrong);
        const until = Date.now() + 120_000;
        while (true) {
          await fn.call({ wait: true });
          const [{ open }] = await sql<{ open: number }[]>`
            select count(*)::int as open from public.sites
            where id = any(${ids}::uuid[]) and status_hosting <> 'active'`;
          if (open === 0) break;
          assert.ok(Date.now() < until, `${open} sites not active`);
        }
        // Another instance with the same wrong token learns the pause from the database.
        const other = await functionWith(wrong);
        const late = uniqueDomain("token-late");
        domains.push(late);
        ids.push(await insertSite(sql, late));
        const answer = await other.call({ site_id: ids.at(-1), wait: true });
        assert.equal(answer.body.results[0].warnings[0].code, "MATOMO_PAUSED");
      });
      const seen = (await matomoRequests()).slice(before);
      assert.equal(seen.filter((r) => r.status === 401).length, 1, JSON.stringify(seen));
      assert.equal(seen.length, 1, "no other call reached Matomo");
      // The pause is Matomo's one-hour window from the failure, and every registration waits for it.
      const [{ hour, pushed }] = await sql<{ hour: boolean; pushed: number }[]>`
        select (select paused_until - updated_at >= interval '59 minutes'
                from public.hosting_health where target like 'matomo:%') as hour,
               count(*)::int as pushed
        from public.sites where id = any(${ids}::uuid[])
          and status_hosting = 'active' and matomo_site_id is null
          and hosting_next_attempt_at >= (select paused_until - interval '1 second'
                                          from public.hosting_health where target like 'matomo:%')`;
      assert.equal(hour, true, "Matomo is paused for an hour");
      assert.equal(pushed, 21, "every registration waits for the pause");
    } finally {
      await cleanUp(sql, domains.map((domain, i) => ({ id: ids[i], domain })).filter((s) => s.id));
    }
  },
);

e2e("bad bodies and callers are refused and touch no row", async (sql) => {
  const domain = uniqueDomain("refused");
  await withoutDispatch(sql, async () => {
    const id = await insertSite(sql, domain);
    try {
      const url = `${setting("SUPABASE_URL")}/functions/v1/hosting-automator`;
      const post = async (body: string, headers: Record<string, string>) => {
        const response = await fetch(url, { method: "POST", headers, body });
        await response.body?.cancel();
        return response.status;
      };
      const json = { "content-type": "application/json" };
      const key = { ...json, apikey: secretKey() };
      const dispatch = { ...json, apikey: setting("HA_DISPATCH_TOKEN") };
      assert.equal(await post(JSON.stringify({ site_id: id }), json), 401, "no key");
      assert.equal(
        await post(JSON.stringify({ site_id: id }), { ...json, apikey: "sb_secret_wrong" }),
        401,
      );
      assert.equal(
        await post(JSON.stringify({ site_id: id }), {
          ...json,
          apikey: setting("SUPABASE_ANON_KEY"),
        }),
        401,
      );
      assert.equal(
        await post(JSON.stringify({ site_id: id, dry_run: true }), dispatch),
        403,
        "dispatch token: no dry run",
      );
      assert.equal(
        await post(JSON.stringify({ site_id: id, wait: true }), dispatch),
        403,
        "nor wait",
      );
      assert.equal(await post("{not json", key), 400);
      assert.equal(await post(JSON.stringify({ site_id: 42 }), key), 400, "wrong type");
      assert.equal(
        await post(JSON.stringify({ site_id: id, extra: 1 }), key),
        400,
        "unknown field",
      );
      assert.equal(await post(`{"site_id": "${id}", "pad": "${"x".repeat(70_000)}"}`, key), 413);
      assert.equal(
        await post(`site_id=${id}`, {
          ...key,
          "content-type": "application/x-www-form-urlencoded",
        }),
        415,
      );
      const row = await site(sql, id);
      assert.equal(row.status_hosting, "pending");
      assert.equal(row.hosting_attempts, 0);
      assert.deepEqual(
        (await events(sql, id)).filter((e) => !e.startsWith("dispatch:")),
        [],
        "no claim, no step",
      );
    } finally {
      await removeSite(sql, id);
    }
  });
});
