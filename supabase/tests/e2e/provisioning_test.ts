// End to end on the local stack: Postgres (trigger, pg_net stand-in, Vault stand-in, pg_cron), the
// function served by the edge-runtime stand-in behind the gateway, a real OpenSSH server with the
// clpctl stand-in, and the Matomo stand-in. Run through local/test.

import assert from "node:assert/strict";
import { createClient } from "@supabase/supabase-js";
import { createApp } from "../../functions/hosting-automator/app.ts";
import {
  deriveSiteUser,
  siteUserCandidates,
} from "../../functions/hosting-automator/core/site_user.ts";
import {
  callFunction,
  cleanUp,
  clearCloudpanelFaults,
  cloudpanelFault,
  clpctlCalls,
  e2e,
  events,
  functionEnv,
  insertSite,
  inventory,
  matomoFault,
  matomoSitesFor,
  onServer,
  peakWhileDraining,
  removeSite,
  secretKey,
  serverHasDirectory,
  setting,
  site,
  sshLogins,
  uniqueDomain,
  waitFor,
  withoutDispatch,
} from "./stack.ts";

const settled = (row: { status_hosting: string }) =>
  row.status_hosting === "active" || row.status_hosting === "failed";

e2e("DNS becoming active provisions the site through the trigger alone", async (sql) => {
  const domain = uniqueDomain("trigger");
  const id = await insertSite(sql, domain, "pending");
  try {
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal((await site(sql, id)).status_hosting, "pending", "nothing happens before DNS");

    await sql`update public.sites set status_dns = 'active' where id = ${id}`;
    const row = await waitFor(sql, id, settled);

    const user = deriveSiteUser(domain);
    assert.equal(row.status_hosting, "active");
    assert.equal(row.hosting_site_user, user);
    assert.equal(row.hosting_doc_root, `/home/${user}/htdocs/${domain}`);
    assert.ok(await serverHasDirectory(row.hosting_doc_root!), "the document root exists");
    assert.deepEqual(await inventory(domain), [`${domain} ${user}`]);
    assert.deepEqual(await matomoSitesFor(domain), [row.matomo_site_id]);
    assert.equal(row.hosting_error, null);
    assert.deepEqual(await clpctlCalls(domain), [
      "site:add:static 0",
      "lets-encrypt:install:certificate 0",
    ]);
    // pg_net delivered the trigger's POST and recorded the function's 202 answer.
    const answers = await sql<{ status_code: number; content: string }[]>`
      select status_code, content from net._http_response where content like ${`%${id}%`}`;
    assert.deepEqual(answers.map((a) => a.status_code), [202]);
    assert.equal(JSON.parse(answers[0].content).accepted[0].site_id, id);
    assert.deepEqual(await events(sql, id), [
      "claim:ok:CLAIMED",
      "site:ok:SITE_CREATED",
      "certificate:ok:CERTIFICATE_INSTALLED",
      "analytics:ok:MATOMO_CREATED",
      "finish:ok:ACTIVE",
    ]);
  } finally {
    await cleanUp(sql, [{ id, domain }]);
  }
});

e2e(
  "setting status_hosting back to pending runs again without a second site or Matomo site",
  async (sql) => {
    const domain = uniqueDomain("rerun");
    const id = await insertSite(sql, domain);
    try {
      const first = await waitFor(sql, id, settled);
      assert.equal(first.status_hosting, "active");

      await sql`update public.sites set status_hosting = 'pending' where id = ${id}`;
      const second = await waitFor(
        sql,
        id,
        (row) => settled(row) && row.hosting_attempts === 1 && row.status_hosting === "active",
      );
      assert.equal(second.hosting_doc_root, first.hosting_doc_root);
      assert.equal(second.matomo_site_id, first.matomo_site_id);
      assert.equal((await inventory(domain)).length, 1, "one CloudPanel site");
      assert.deepEqual(await matomoSitesFor(domain), [first.matomo_site_id], "one Matomo site");
      const trail = await events(sql, id);
      assert.ok(trail.includes("reset:ok:RESET"));
      assert.ok(trail.includes("site:warning:SITE_ADOPTED"));
      assert.ok(trail.includes("analytics:skipped:ALREADY_REGISTERED"));
    } finally {
      await cleanUp(sql, [{ id, domain }]);
    }
  },
);

e2e(
  "a site CloudPanel already has is adopted with its real user and document root",
  async (sql) => {
    const domain = uniqueDomain("adopt");
    const made = await onServer(
      `clpctl site:add:static --domainName='${domain}' --siteUser='handmade-owner' --siteUserPassword='Handmade-Pass-123'`,
    );
    assert.equal(made.code, 0, made.stdout);
    const id = await insertSite(sql, domain);
    try {
      const row = await waitFor(sql, id, settled);
      assert.equal(row.status_hosting, "active");
      assert.equal(row.hosting_site_user, "handmade-owner");
      assert.equal(row.hosting_doc_root, `/home/handmade-owner/htdocs/${domain}`);
      assert.ok((await events(sql, id)).includes("site:warning:SITE_ADOPTED"));
      assert.deepEqual(await inventory(domain), [`${domain} handmade-owner`]);
    } finally {
      await cleanUp(sql, [{ id, domain }]);
    }
  },
);

e2e(
  "a site user left without a site (an orphan) is left alone and the next name is used",
  async (sql) => {
    const domain = uniqueDomain("orphan");
    const [orphan, next] = siteUserCandidates(domain, 2);
    assert.equal((await onServer(`useradd -m '${orphan}' && touch /home/${orphan}/mine`)).code, 0);
    const id = await insertSite(sql, domain);
    try {
      const row = await waitFor(sql, id, settled);
      assert.equal(row.status_hosting, "active", row.hosting_error ?? "");
      assert.equal(row.hosting_site_user, next);
      assert.equal(row.hosting_doc_root, `/home/${next}/htdocs/${domain}`);
      assert.deepEqual(await inventory(domain), [`${domain} ${next}`]);
      assert.ok(await serverHasDirectory(`/home/${orphan}`), "the orphan's home is untouched");
      assert.equal((await onServer(`test -f /home/${orphan}/mine`)).code, 0, "and its files");
      assert.deepEqual(await clpctlCalls(domain), [
        "site:add:static 0",
        "lets-encrypt:install:certificate 0",
      ], "one site:add:static, under the next name: CloudPanel never refused it");
      assert.ok((await events(sql, id)).includes("site:warning:SITE_USER_ORPHAN"));
    } finally {
      await cleanUp(sql, [{ id, domain }]);
      await onServer(`userdel -r '${orphan}'`);
    }
  },
);

e2e(
  "Matomo down: the site goes active without an id, and a later sweep fills it in",
  async (sql) => {
    const domain = uniqueDomain("matomo-down");
    await matomoFault("unavailable");
    let id = "";
    try {
      id = await insertSite(sql, domain);
      const row = await waitFor(sql, id, settled);
      assert.equal(row.status_hosting, "active");
      assert.equal(row.matomo_site_id, null);
      assert.ok(row.hosting_next_attempt_at! > new Date(), "the registration is scheduled again");
      // A Matomo failure is a warning of the site, not an error (docs/contract.md#states).
      assert.ok((await events(sql, id)).includes("analytics:warning:MATOMO_HTTP"));
      assert.ok(
        row.hosting_next_attempt_at! <= new Date(Date.now() + 65_000),
        "the first retry comes about a minute later",
      );
    } finally {
      await matomoFault("none");
    }
    try {
      // Move time rather than wait: the registration is due now.
      await sql`update public.sites set hosting_next_attempt_at = now() - interval '1 second' where id = ${id}`;
      const [{ dispatched }] = await sql<{ dispatched: number }[]>`
      select public.hosting_automator_sweep() as dispatched`;
      assert.ok(dispatched >= 1);
      const row = await waitFor(sql, id, (r) => r.matomo_site_id !== null);
      assert.equal(row.status_hosting, "active");
      assert.deepEqual(await matomoSitesFor(domain), [row.matomo_site_id]);
      assert.equal(row.hosting_next_attempt_at, null);
    } finally {
      await cleanUp(sql, [{ id, domain }]);
    }
  },
);

e2e(
  "DNS not ready for the certificate: back to pending with a later attempt, then active",
  async (sql) => {
    const domain = uniqueDomain("dns-late");
    await cloudpanelFault(domain, "cert", "dns");
    const id = await insertSite(sql, domain);
    try {
      const waiting = await waitFor(
        sql,
        id,
        (r) => r.status_hosting === "pending" && r.hosting_attempts === 1,
      );
      assert.match(waiting.hosting_error!, /^DNS_NOT_READY: /);
      assert.ok(waiting.hosting_next_attempt_at! > new Date(Date.now() + 30_000), "backs off");
      assert.equal(waiting.hosting_doc_root, `/home/${deriveSiteUser(domain)}/htdocs/${domain}`);

      await clearCloudpanelFaults(domain);
      await sql`update public.sites set hosting_next_attempt_at = now() - interval '1 second' where id = ${id}`;
      await sql`select public.hosting_automator_sweep()`;
      const row = await waitFor(sql, id, settled);
      assert.equal(row.status_hosting, "active");
      assert.equal(row.hosting_attempts, 2);
      assert.equal(row.hosting_error, null);
      assert.equal((await inventory(domain)).length, 1);
    } finally {
      await cleanUp(sql, [{ id, domain }]);
    }
  },
);

e2e("an invalid domain fails with INVALID_DOMAIN before any SSH connection", async (sql) => {
  const domain = `bad domain;touch /tmp/pwned-${crypto.randomUUID().slice(0, 6)}.example.com`;
  const loginsBefore = await sshLogins();
  const id = await insertSite(sql, domain);
  try {
    const row = await waitFor(sql, id, settled);
    assert.equal(row.status_hosting, "failed");
    assert.match(row.hosting_error!, /^INVALID_DOMAIN: /);
    assert.equal(await sshLogins(), loginsBefore, "no SSH login happened");
    assert.deepEqual(await clpctlCalls(domain), []);
  } finally {
    await removeSite(sql, id);
  }
});

e2e(
  "a wrong host key runs no command, keeps the attempt and the site pending; the fix resumes it",
  async (sql) => {
    const domain = uniqueDomain("hostkey");
    const env = {
      ...(await functionEnv()),
      SSH_HOST_KEY_FINGERPRINT: "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    };
    const app = createApp(env, () => {}, () => {});
    const loginsBefore = await sshLogins();
    let id = "";
    try {
      const response = await withoutDispatch(sql, async () => {
        id = await insertSite(sql, domain);
        return await app.fetch(
          new Request("http://localhost/hosting-automator", {
            method: "POST",
            headers: { apikey: secretKey(), "content-type": "application/json" },
            body: JSON.stringify({ site_id: id, wait: true }),
          }),
        );
      });
      assert.equal(response.status, 200);
      const { results } = await response.json();
      assert.equal(results[0].status, "pending");
      assert.equal(results[0].error.code, "HOST_KEY_MISMATCH");
      const row = await site(sql, id);
      assert.equal(row.status_hosting, "pending", "a server problem never fails the site");
      assert.equal(row.hosting_attempts, 0, "and does not use up its attempts");
      assert.match(row.hosting_error!, /^HOST_KEY_MISMATCH: /);
      assert.deepEqual(await clpctlCalls(domain), []);
      assert.equal(await sshLogins(), loginsBefore, "the connection stopped before authentication");
      const [health] = await sql<{ failures: number; last_code: string }[]>`
        select failures, last_code from public.hosting_health where target like 'ssh:%'`;
      assert.deepEqual({ ...health }, { failures: 1, last_code: "HOST_KEY_MISMATCH" });

      // The operator fixes the setting: the served function (the right fingerprint) is not paused.
      await sql`update public.sites set hosting_next_attempt_at = now() where id = ${id}`;
      const fixed = await callFunction({ site_id: id, wait: true });
      assert.equal((fixed.body.results as Array<{ status: string }>)[0].status, "active");
      assert.equal((await site(sql, id)).hosting_attempts, 1);
    } finally {
      await sql`delete from public.hosting_health`;
      if (id) await cleanUp(sql, [{ id, domain }]);
    }
  },
);

e2e("a non-root SSH user provisions through sudo -n", async (sql) => {
  const domain = uniqueDomain("sudo");
  const app = createApp({ ...(await functionEnv()), SSH_USER: "deploy" }, () => {}, () => {});
  let id = "";
  try {
    const response = await withoutDispatch(sql, async () => {
      id = await insertSite(sql, domain);
      return await app.fetch(
        new Request("http://localhost/hosting-automator", {
          method: "POST",
          headers: {
            authorization: `Bearer ${setting("SUPABASE_SERVICE_ROLE_KEY")}`,
            "content-type": "application/json",
          },
          body: JSON.stringify({ site_id: id, wait: true }),
        }),
      );
    });
    const answer = await response.json();
    assert.equal(response.status, 200, JSON.stringify(answer));
    const { results } = answer;
    assert.equal(results[0].status, "active", JSON.stringify(results[0]));
    const log = await Deno.readTextFile(`${setting("HA_CLOUDPANEL_DIR")}/control/calls.log`);
    const mine = log.split("\n").filter((line) => line.split("\t")[2] === domain);
    assert.equal(mine.length, 2);
    // clpctl ran through `sudo -n` on behalf of deploy (SUDO_USER), with root's command set.
    assert.deepEqual(
      mine.map((line) => line.split("\t")).map((f) => `${f[1]} ${f[3]} ${f[4]}`),
      ["site:add:static 0 deploy", "lets-encrypt:install:certificate 0 deploy"],
    );
  } finally {
    if (id) await cleanUp(sql, [{ id, domain }]);
  }
});

e2e("by hand: curl-style call with wait answers with the full result", async (sql) => {
  const domain = uniqueDomain("manual");
  let id = "";
  try {
    // Neither the trigger nor a sweep reaches the function meanwhile: only this call provisions.
    const { status, body } = await withoutDispatch(sql, async () => {
      id = await insertSite(sql, domain);
      assert.equal((await site(sql, id)).status_hosting, "pending");
      return await callFunction({ site_id: id, wait: true });
    });
    assert.equal(status, 200);
    const [result] = body.results as Array<Record<string, unknown>>;
    assert.equal(result.site_id, id);
    assert.equal(result.status, "active");
    assert.equal(result.doc_root, `/home/${deriveSiteUser(domain)}/htdocs/${domain}`);
    assert.equal(typeof result.matomo_site_id, "number");
    assert.deepEqual(result.warnings, []);
    assert.equal(result.error, null);
    assert.equal((await site(sql, id)).status_hosting, "active");
  } finally {
    if (id) await cleanUp(sql, [{ id, domain }]);
  }
});

e2e("by hand: a dry run shows the plan and changes nothing anywhere", async (sql) => {
  const domain = uniqueDomain("dry");
  let id = "";
  try {
    await withoutDispatch(sql, async () => {
      id = await insertSite(sql, domain);
      const { status, body } = await callFunction({ site_id: id, dry_run: true });
      assert.equal(status, 200);
      const [plan] = body.plans as Array<{ commands: string[]; matomo_calls: unknown[] }>;
      assert.match(plan.commands[0], /sqlite3 -readonly .* getent passwd /);
      assert.match(plan.commands[1], /--siteUserPassword=\*\*\* {3}# only if/);
      assert.equal(plan.matomo_calls.length, 2);
      const row = await site(sql, id);
      assert.equal(row.status_hosting, "pending");
      assert.equal(row.hosting_attempts, 0);
      assert.deepEqual(await clpctlCalls(domain), []);
      assert.deepEqual(await matomoSitesFor(domain), []);
      // Only the trigger's (and maybe a sweep's) dispatch warnings: no claim, no step.
      const trail = await events(sql, id);
      assert.ok(
        trail.length >= 1 && trail.every((e) => e === "dispatch:warning:NOT_CONFIGURED"),
        trail.join(),
      );
    });
  } finally {
    if (id) await removeSite(sql, id);
  }
});

e2e("supabase.functions.invoke works with the secret key; the anon key is refused", async () => {
  const unknown = crypto.randomUUID();
  const admin = createClient(setting("SUPABASE_URL"), secretKey(), {
    auth: { persistSession: false },
  });
  const { data, error } = await admin.functions.invoke("hosting-automator", {
    body: { site_id: unknown, wait: true },
  });
  assert.equal(error, null);
  assert.deepEqual(data.skipped, [{
    site_id: unknown,
    domain: null,
    status: null,
    reason: "NOT_FOUND",
  }]);

  const { status } = await callFunction({}, { apikey: setting("SUPABASE_ANON_KEY") });
  assert.equal(status, 401);
});

e2e("a burst of sites drains with never more provisioning at once than the limit", async (sql) => {
  const limit = Number((await functionEnv()).HOSTING_MAX_CONCURRENT ?? 3);
  const domains = Array.from({ length: 6 }, (_, i) => uniqueDomain(`burst${i}`));
  const rows = await sql<{ id: string }[]>`
    insert into public.sites ${sql(domains.map((domain) => ({ domain, status_dns: "active" })))}
    returning id`;
  const ids = rows.map((r) => r.id);
  try {
    const peak = await peakWhileDraining(sql, ids, 90_000);
    assert.ok(peak <= limit, `peak ${peak} above the limit ${limit}`);
    for (const id of ids) assert.equal((await site(sql, id)).status_hosting, "active");
  } finally {
    for (const [i, id] of ids.entries()) await cleanUp(sql, [{ id, domain: domains[i] }]);
  }
});

e2e("pg_cron runs the sweeper every minute", async (sql) => {
  const jobs = await sql<{ schedule: string; command: string; active: boolean }[]>`
    select schedule, command, active from cron.job where jobname = 'hosting-automator-sweep'`;
  assert.deepEqual([...jobs], [{
    schedule: "* * * * *",
    command: "select public.hosting_automator_sweep()",
    active: true,
  }]);
});
