// Removal on the local stack: over HTTP and in SQL, counting what reached CloudPanel (its clpctl
// call log and inventory) and Matomo (its sites), and the row's progress columns on the way.

import assert from "node:assert/strict";
import {
  callFunction,
  clearCloudpanelFaults,
  cloudpanelFault,
  clpctlCalls,
  e2e,
  events,
  inventory,
  matomoSitesFor,
  onServer,
  removeSite,
  setting,
  site,
  type Sql,
  uniqueDomain,
  waitFor,
} from "./stack.ts";

const settled = (row: { status_hosting: string }) =>
  ["active", "failed", "removed"].includes(row.status_hosting);

async function activeSite(sql: Sql, label: string) {
  const domain = uniqueDomain(label);
  const [row] = await sql<{ id: string }[]>`
    insert into public.sites (domain, status_dns) values (${domain}, 'active') returning id`;
  const active = await waitFor(sql, row.id, settled);
  assert.equal(active.status_hosting, "active", `${domain} became active first`);
  assert.ok(active.matomo_site_id !== null, "with its Matomo id");
  return { id: row.id, domain, matomoSiteId: active.matomo_site_id as number };
}

async function cleanUp(sql: Sql, id: string, domain: string) {
  await clearCloudpanelFaults(domain);
  await onServer(`clpctl site:delete --domainName='${domain}' --force`);
  await removeSite(sql, id);
}

e2e(
  "a removal over HTTP deletes the CloudPanel site and keeps its Matomo site by default",
  async (sql) => {
    const { id, domain, matomoSiteId } = await activeSite(sql, "keep");
    try {
      const answer = await callFunction({ site_id: id, action: "deprovision", wait: true });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      const [result] = answer.body.results as Array<{ status: string; matomo_site_id: number }>;
      assert.equal(result.status, "removed");
      const row = await site(sql, id);
      assert.equal(row.status_hosting, "removed");
      assert.equal(row.hosting_doc_root, null);
      assert.equal(row.hosting_site_user, null);
      assert.equal(row.matomo_site_id, matomoSiteId, "the Matomo id stays with the kept site");
      assert.deepEqual(await inventory(domain), [], "CloudPanel has no such site any more");
      assert.deepEqual((await clpctlCalls(domain)).slice(-1), ["site:delete 0"]);
      assert.deepEqual(await matomoSitesFor(domain), [matomoSiteId], "analytics history kept");
      const trail = await events(sql, id);
      assert.deepEqual(trail.slice(-5), [
        "remove:ok:REMOVAL_REQUESTED",
        "claim:ok:CLAIMED",
        "site:ok:SITE_DELETED",
        "analytics:skipped:MATOMO_KEPT",
        "finish:ok:REMOVED",
      ]);
    } finally {
      await cleanUp(sql, id, domain);
    }
  },
);

e2e("delete_analytics deletes only the site's own idsite", async (sql) => {
  const other = await activeSite(sql, "neighbour");
  const { id, domain, matomoSiteId } = await activeSite(sql, "drop");
  try {
    const answer = await callFunction({
      site_id: id,
      action: "deprovision",
      delete_analytics: true,
      wait: true,
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const row = await site(sql, id);
    assert.equal(row.status_hosting, "removed");
    assert.equal(row.matomo_site_id, null);
    assert.deepEqual(await matomoSitesFor(domain), []);
    assert.deepEqual(await matomoSitesFor(other.domain), [other.matomoSiteId], "the other stays");
    assert.ok((await events(sql, id)).includes("analytics:ok:MATOMO_DELETED"));
    assert.notEqual(matomoSiteId, other.matomoSiteId);
  } finally {
    await cleanUp(sql, id, domain);
    await cleanUp(sql, other.id, other.domain);
  }
});

e2e("removing a removed site makes no remote call and changes nothing", async (sql) => {
  const { id, domain } = await activeSite(sql, "twice");
  try {
    await sql`select public.hosting_deprovision(${domain})`;
    const removed = await waitFor(sql, id, settled);
    assert.equal(removed.status_hosting, "removed", "the SQL entry point dispatched the removal");
    const calls = await clpctlCalls(domain);
    const trail = await events(sql, id);

    const [{ answer }] = await sql<{ answer: { outcome: string } }[]>`
      select public.hosting_deprovision(${domain}, true) as answer`;
    assert.equal(answer.outcome, "removed");
    const again = await callFunction({ site_id: id, action: "deprovision", wait: true });
    assert.equal((again.body.skipped as Array<{ reason: string }>)[0].reason, "REMOVED");
    await sql`select public.hosting_automator_sweep()`;
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(await clpctlCalls(domain), calls, "0 clpctl calls");
    assert.deepEqual(await events(sql, id), trail, "no event");
    assert.deepEqual(await site(sql, id), removed);
  } finally {
    await cleanUp(sql, id, domain);
  }
});

e2e("after removal, pending provisions the site again from scratch", async (sql) => {
  const { id, domain, matomoSiteId } = await activeSite(sql, "again");
  try {
    await callFunction({ site_id: id, action: "deprovision", wait: true });
    assert.equal((await site(sql, id)).status_hosting, "removed");
    await sql`update public.sites set status_hosting = 'pending' where id = ${id}`;
    const row = await waitFor(sql, id, (r) => r.status_hosting === "active");
    assert.ok(row.hosting_doc_root, "a document root again");
    assert.equal(row.matomo_site_id, matomoSiteId, "the kept Matomo site is used again");
    assert.equal((await inventory(domain)).length, 1, "CloudPanel has the site again");
    const calls = await clpctlCalls(domain);
    assert.deepEqual(calls.slice(-3), [
      "site:delete 0",
      "site:add:static 0",
      "lets-encrypt:install:certificate 0",
    ]);
    assert.deepEqual(await matomoSitesFor(domain), [matomoSiteId], "no second Matomo site");
  } finally {
    await cleanUp(sql, id, domain);
  }
});

e2e("a site being provisioned is not removed under its worker", async (sql) => {
  const domain = uniqueDomain("busy");
  await cloudpanelFault(domain, "delay_ms", "3000 lets-encrypt:install:certificate once");
  const [{ id }] = await sql<{ id: string }[]>`
    insert into public.sites (domain, status_dns) values (${domain}, 'active') returning id`;
  try {
    const leased = await waitFor(
      sql,
      id,
      (r) => r.status_hosting === "provisioning" && r.hosting_lease_until !== null,
      20_000,
    );
    assert.equal(leased.status_hosting, "provisioning");
    const refused = await callFunction({ site_id: id, action: "deprovision" });
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    assert.equal((refused.body.error as { code: string }).code, "IN_PROGRESS");
    await assert.rejects(
      sql`select public.hosting_deprovision(${domain})`,
      (error: { code?: string }) => error.code === "55006",
    );
    // The dispatch token may start due work but never ask for a removal.
    const token = await callFunction(
      { site_id: id, action: "deprovision" },
      { apikey: setting("HA_DISPATCH_TOKEN") },
    );
    assert.equal(token.status, 403);
    const row = await waitFor(sql, id, settled);
    assert.equal(row.status_hosting, "active", "the worker finished undisturbed");
    assert.ok(!(await clpctlCalls(domain)).some((c) => c.startsWith("site:delete")));
  } finally {
    await cleanUp(sql, id, domain);
  }
});

e2e(
  "the row shows the running step and when it began, and no step once the run ends",
  async (sql) => {
    const domain = uniqueDomain("progress");
    await cloudpanelFault(domain, "delay_ms", "2500 lets-encrypt:install:certificate once");
    const [{ id }] = await sql<{ id: string }[]>`
    insert into public.sites (domain, status_dns) values (${domain}, 'active') returning id`;
    try {
      const until = Date.now() + 20_000;
      let seen: { hosting_step: string | null; hosting_step_started_at: Date | null } | undefined;
      while (Date.now() < until) {
        [seen] = await sql<{ hosting_step: string | null; hosting_step_started_at: Date | null }[]>`
        select hosting_step, hosting_step_started_at from public.sites where id = ${id}`;
        if (seen.hosting_step === "certificate") break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.equal(seen?.hosting_step, "certificate", "the certificate step shows while it runs");
      assert.ok(seen?.hosting_step_started_at instanceof Date);
      await waitFor(sql, id, settled);
      const [done] = await sql<
        { hosting_step: string | null; hosting_step_started_at: Date | null }[]
      >`
      select hosting_step, hosting_step_started_at from public.sites where id = ${id}`;
      assert.deepEqual(done, { hosting_step: null, hosting_step_started_at: null });
    } finally {
      await cleanUp(sql, id, domain);
    }
  },
);

e2e(
  "a dry run of a removal shows site:delete and, when asked, the Matomo call; nothing changes",
  async (sql) => {
    const { id, domain, matomoSiteId } = await activeSite(sql, "dry");
    try {
      const before = await site(sql, id);
      const calls = await clpctlCalls(domain);
      const answer = await callFunction({
        site_id: id,
        action: "deprovision",
        delete_analytics: true,
        dry_run: true,
      });
      assert.equal(answer.status, 200);
      const [plan] = answer.body.plans as Array<{
        work: string;
        commands: string[];
        matomo_calls: Array<{ url: string; body: string }>;
      }>;
      assert.equal(plan.work, "remove");
      assert.match(
        plan.commands[0],
        new RegExp(`^clpctl site:delete --domainName='${domain}' --force`),
      );
      assert.match(plan.matomo_calls[0].url, /method=SitesManager\.deleteSite/);
      assert.equal(plan.matomo_calls[0].body, `token_auth=***&idSite=${matomoSiteId}`);
      assert.deepEqual(await site(sql, id), before);
      assert.deepEqual(await clpctlCalls(domain), calls);
    } finally {
      await cleanUp(sql, id, domain);
    }
  },
);
