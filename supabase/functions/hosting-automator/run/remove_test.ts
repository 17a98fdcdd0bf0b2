import assert from "node:assert/strict";
import { HostingError } from "../core/errors.ts";
import { context, exit, FakeAnalytics, FakeShell, FakeStore, job, ok } from "../testing/fakes.ts";
import { releaseInterruptedRemoval, removeSite } from "./remove.ts";

const T0 = Date.parse("2026-11-26T12:00:00Z");
const deleted = (domain = "example.com") => ok(`Site ${domain} has been deleted.\n`);
const gone = (domain = "example.com") => exit(1, `Site "${domain}" does not exist.\n`);

function removal(fields: Parameters<typeof job>[0] = {}) {
  return job({
    kind: "remove",
    site_user: "example_com",
    doc_root: "/home/example_com/htdocs/example.com",
    matomo_site_id: 7,
    ...fields,
  });
}

Deno.test("a removal runs site:delete --force, keeps the Matomo site by default and ends removed", async () => {
  const shell = new FakeShell({ "site:delete": deleted() });
  const store = new FakeStore();
  const analytics = new FakeAnalytics(new Map([["example.com", [7]]]));
  const result = await removeSite(removal(), context({ shell, store, analytics }), T0);
  assert.deepEqual(shell.lines, ["clpctl site:delete --domainName='example.com' --force"]);
  assert.deepEqual(analytics.calls, []);
  assert.deepEqual(store.trail, ["site:ok:SITE_DELETED", "analytics:skipped:MATOMO_KEPT"]);
  assert.equal(store.removalFinishes.length, 1);
  assert.equal(store.removalFinishes[0].status, "removed");
  assert.equal(store.removalFinishes[0].matomoDeleted, false);
  assert.equal(result.status, "removed");
  assert.equal(result.doc_root, null);
  assert.equal(result.matomo_site_id, 7);
});

Deno.test("with delete_analytics only the row's own idsite is deleted", async () => {
  const shell = new FakeShell({ "site:delete": deleted() });
  const store = new FakeStore();
  const analytics = new FakeAnalytics(new Map([["example.com", [3, 7]]]));
  const result = await removeSite(
    removal({ delete_analytics: true }),
    context({ shell, store, analytics }),
    T0,
  );
  assert.deepEqual(analytics.calls, ["delete 7"]);
  assert.deepEqual(analytics.sites.get("example.com"), [3]);
  assert.deepEqual(store.trail, ["site:ok:SITE_DELETED", "analytics:ok:MATOMO_DELETED"]);
  assert.equal(store.removalFinishes[0].matomoDeleted, true);
  assert.equal(result.matomo_site_id, null);
});

Deno.test("a site CloudPanel no longer has, and an idsite Matomo no longer has, count as gone", async () => {
  const shell = new FakeShell({ "site:delete": gone() });
  const store = new FakeStore();
  const analytics = new FakeAnalytics(new Map());
  const result = await removeSite(
    removal({ delete_analytics: true }),
    context({ shell, store, analytics }),
    T0,
  );
  assert.deepEqual(store.trail, [
    "site:skipped:SITE_ALREADY_GONE",
    "analytics:skipped:MATOMO_ALREADY_GONE",
  ]);
  assert.equal(result.status, "removed");
  assert.equal(store.removalFinishes[0].matomoDeleted, true);
});

Deno.test("a row without a Matomo id makes no Matomo call, even with delete_analytics", async () => {
  const shell = new FakeShell({ "site:delete": deleted() });
  const store = new FakeStore();
  const analytics = new FakeAnalytics();
  await removeSite(
    removal({ delete_analytics: true, matomo_site_id: null }),
    context({ shell, store, analytics }),
    T0,
  );
  assert.deepEqual(analytics.calls, []);
  assert.deepEqual(store.trail, ["site:ok:SITE_DELETED", "analytics:skipped:NO_MATOMO_SITE"]);
});

Deno.test("a server-level failure pauses the server and waits in removing with the attempt back", async () => {
  const shell = new FakeShell({
    "site:delete": new HostingError("SSH_UNREACHABLE", "connect ECONNREFUSED"),
  });
  const store = new FakeStore();
  const result = await removeSite(removal(), context({ shell, store }), T0);
  assert.equal(store.health.length, 1);
  assert.equal(store.health[0].code, "SSH_UNREACHABLE");
  const finish = store.removalFinishes[0];
  assert.equal(finish.status, "removing");
  assert.equal(finish.refundAttempt, true);
  assert.deepEqual(finish.nextAttemptAt, store.pausedUntil);
  assert.equal(result.status, "removing");
  assert.deepEqual(store.trail, [
    "site:error:SSH_UNREACHABLE",
    "analytics:skipped:SSH_UNREACHABLE",
  ]);
});

Deno.test("a failed site:delete retries with backoff, and fails on the last attempt", async () => {
  const failing = () => new FakeShell({ "site:delete": exit(1, "Something broke.\n") });
  const first = new FakeStore();
  const retried = await removeSite(
    removal({ attempt: 1 }),
    context({ shell: failing(), store: first }),
    T0,
  );
  assert.equal(retried.status, "removing");
  assert.equal(first.removalFinishes[0].errorCode, "CLPCTL_FAILED");
  assert.deepEqual(first.removalFinishes[0].nextAttemptAt, new Date(T0 + 60_000));
  assert.equal(first.removalFinishes[0].refundAttempt, false);

  const last = new FakeStore();
  const failed = await removeSite(
    removal({ attempt: 5 }),
    context({ shell: failing(), store: last }),
    T0,
  );
  assert.equal(failed.status, "failed");
  assert.equal(last.removalFinishes[0].status, "failed");
  assert.match(failed.error?.message ?? "", /site:delete failed/);
});

Deno.test("a Matomo failure keeps the row removing; a refused token pauses Matomo for everyone", async () => {
  const shell = new FakeShell({ "site:delete": deleted() });
  const store = new FakeStore();
  const analytics = new FakeAnalytics(
    new Map([["example.com", [7]]]),
    new HostingError("MATOMO_AUTH", "SitesManager.deleteSite: HTTP 401: Unable to authenticate"),
  );
  const result = await removeSite(
    removal({ delete_analytics: true }),
    context({ shell, store, analytics }),
    T0,
  );
  assert.equal(result.status, "removing");
  assert.equal(store.removalFinishes[0].errorCode, "MATOMO_AUTH");
  assert.ok((store.removalFinishes[0].nextAttemptAt?.getTime() ?? 0) >= T0 + 3_600_000);
  assert.equal(store.health[0].target, "matomo:https://analytics.example.com");
});

Deno.test("while Matomo is paused a removal that must delete analytics does not call it", async () => {
  const shell = new FakeShell({ "site:delete": deleted() });
  const store = new FakeStore();
  const analytics = new FakeAnalytics(new Map([["example.com", [7]]]));
  analytics.paused = new Date(T0 + 600_000);
  const result = await removeSite(
    removal({ delete_analytics: true }),
    context({ shell, store, analytics }),
    T0,
  );
  assert.deepEqual(analytics.calls, []);
  assert.equal(result.status, "removing");
  assert.deepEqual(store.health, [], "no call made, so no failure to report");
});

Deno.test("an invalid domain never reaches the server", async () => {
  const shell = new FakeShell({});
  const store = new FakeStore();
  const result = await removeSite(
    removal({ domain: "bad domain;rm" }),
    context({ shell, store }),
    T0,
  );
  assert.deepEqual(shell.lines, []);
  assert.equal(result.status, "failed");
  assert.equal(result.error?.code, "INVALID_DOMAIN");
});

Deno.test("a removal whose claim was taken over is reported superseded", async () => {
  const store = new FakeStore();
  store.stale = true;
  const shell = new FakeShell({ "site:delete": deleted() });
  const result = await removeSite(removal(), context({ shell, store }), T0);
  assert.equal(result.status, "superseded");
});

Deno.test("an interrupted removal goes back to removing at once with its attempt refunded", async () => {
  const store = new FakeStore();
  await releaseInterruptedRemoval(removal(), context({ store }), T0, "wall clock");
  assert.equal(store.removalFinishes[0].status, "removing");
  assert.equal(store.removalFinishes[0].errorCode, "INTERRUPTED");
  assert.equal(store.removalFinishes[0].refundAttempt, true);
});
