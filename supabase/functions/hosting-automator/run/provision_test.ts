import assert from "node:assert/strict";
import { HostingError } from "../core/errors.ts";
import { createRedactor } from "../core/redact.ts";
import {
  context,
  exit,
  FakeAnalytics,
  FakeClock,
  FakeShell,
  FakeStore,
  freshServer,
  job,
  memoryLog,
  ok,
} from "../testing/fakes.ts";
import { completeAnalytics, provisionSite, releaseInterrupted } from "./provision.ts";

const T0 = Date.parse("2026-11-26T12:00:00Z");

Deno.test("a new site is created, certified, registered in Matomo and finished active", async () => {
  const shell = freshServer();
  const store = new FakeStore();
  const analytics = new FakeAnalytics();
  const result = await provisionSite(job(), context({ shell, store, analytics }), T0);

  assert.deepEqual(shell.lines, [
    "clpctl site:add:static --domainName='example.com' --siteUser='example_com' --siteUserPassword='Pa55word-for-tests.1234'",
    "test -d '/home/example_com/htdocs/example.com'",
    "clpctl lets-encrypt:install:certificate --domainName='example.com'",
  ]);
  assert.deepEqual(analytics.calls, ["find example.com", "add example.com"]);
  assert.deepEqual(store.trail, [
    "site:ok:SITE_CREATED",
    "certificate:ok:CERTIFICATE_INSTALLED",
    "analytics:ok:MATOMO_CREATED",
  ]);
  assert.equal(store.finishes.length, 1);
  assert.equal(store.finishes[0].status, "active");
  assert.equal(store.finishes[0].siteUser, "example_com");
  assert.equal(store.finishes[0].docRoot, "/home/example_com/htdocs/example.com");
  assert.equal(store.finishes[0].matomoSiteId, 42);
  assert.equal(store.finishes[0].nextAttemptAt, undefined);
  assert.equal(store.finishes[0].eventCode, "ACTIVE");
  assert.equal(result.status, "active");
  assert.equal(result.doc_root, "/home/example_com/htdocs/example.com");
  assert.equal(result.matomo_site_id, 42);
  assert.deepEqual(result.warnings, []);
  assert.equal(result.error, null);
});

Deno.test("a non-root SSH user runs every command through sudo -n", async () => {
  const shell = freshServer();
  await provisionSite(job(), context({ shell, sshUser: "deploy" }), T0);
  assert.equal(shell.lines.length, 3);
  for (const line of shell.lines) assert.match(line, /^sudo -n /);
});

Deno.test("an invalid domain fails with INVALID_DOMAIN before any remote command", async () => {
  const shell = freshServer();
  const store = new FakeStore();
  const analytics = new FakeAnalytics();
  const result = await provisionSite(
    job({ domain: "evil.com;rm -rf /" }),
    context({ shell, store, analytics }),
    T0,
  );
  assert.deepEqual(shell.lines, []);
  assert.deepEqual(analytics.calls, []);
  assert.equal(result.status, "failed");
  assert.equal(result.error?.code, "INVALID_DOMAIN");
  assert.equal(store.finishes[0].status, "failed");
  assert.equal(store.finishes[0].errorCode, "INVALID_DOMAIN");
  assert.deepEqual(store.trail, [
    "site:error:INVALID_DOMAIN",
    "certificate:skipped:INVALID_DOMAIN",
    "analytics:skipped:INVALID_DOMAIN",
  ]);
});

Deno.test("an existing site of this domain is adopted with its real user and document root", async () => {
  const shell = new FakeShell({
    "site:add:static": exit(
      1,
      "domainName: This value already exists.\nsiteUser: This value already exists.\n",
    ),
    inventory: ok(
      '[{"domain_name":"example.com","user":"legacy-owner","root_directory":"example.com"}]\n',
    ),
    "doc-root-check": ok(),
    "lets-encrypt:install:certificate": ok("Certificate installation was successful.\n"),
  });
  const store = new FakeStore();
  const result = await provisionSite(job(), context({ shell, store }), T0);

  assert.equal(result.status, "active");
  assert.equal(result.doc_root, "/home/legacy-owner/htdocs/example.com");
  assert.equal(store.finishes[0].siteUser, "legacy-owner");
  assert.deepEqual(shell.verbs, [
    "site:add:static",
    "inventory",
    "doc-root-check",
    "lets-encrypt:install:certificate",
  ]);
  assert.equal(shell.lines[2], "test -d '/home/legacy-owner/htdocs/example.com'");
  assert.deepEqual(result.warnings.map((w) => w.code), ["SITE_ADOPTED"]);
  assert.equal(store.trail[0], "site:warning:SITE_ADOPTED");
});

Deno.test("a domain held by its www twin is a conflict, not an adoption", async () => {
  const shell = new FakeShell({
    "site:add:static": exit(1, "domainName: This value already exists.\n"),
    inventory: ok(
      '[{"domain_name":"www.example.com","user":"someone","root_directory":"www.example.com"}]',
    ),
  });
  const store = new FakeStore();
  const result = await provisionSite(job(), context({ shell, store }), T0);
  assert.equal(result.status, "failed");
  assert.equal(result.error?.code, "SITE_CONFLICT");
  assert.match(result.error!.message, /www\.example\.com/);
  assert.ok(!shell.verbs.includes("lets-encrypt:install:certificate"));
});

Deno.test("a site user that already exists without the site fails and is not adopted", async () => {
  const shell = new FakeShell({
    "site:add:static": exit(1, "siteUser: This value already exists.\n"),
  });
  const store = new FakeStore();
  const result = await provisionSite(job({ attempt: 1 }), context({ shell, store }), T0);
  assert.equal(result.status, "failed");
  assert.equal(result.error?.code, "SITE_USER_CONFLICT");
  assert.deepEqual(shell.verbs, ["site:add:static"]);
  assert.equal(store.finishes[0].status, "failed");
});

Deno.test("a document root missing on the server fails the site", async () => {
  const shell = freshServer();
  shell.script["doc-root-check"] = exit(1, "");
  const result = await provisionSite(job(), context({ shell }), T0);
  assert.equal(result.status, "failed");
  assert.equal(result.error?.code, "DOC_ROOT_MISSING");
});

Deno.test("DNS not ready for the certificate goes back to pending after the first backoff, keeping the site's place", async () => {
  const shell = freshServer();
  shell.script["lets-encrypt:install:certificate"] = exit(
    1,
    "example.com: Domain could not be validated, error message: error type: urn:ietf:params:acme:error:dns, error detail: DNS problem: NXDOMAIN looking up A for example.com\n",
  );
  const store = new FakeStore();
  const clock = new FakeClock(T0);
  const result = await provisionSite(
    job({ attempt: 2 }),
    context({ shell, store, now: clock.now }),
    T0,
  );
  assert.equal(result.status, "pending");
  assert.equal(result.error?.code, "DNS_NOT_READY");
  // attempt 2: 60 s × 2
  assert.equal(
    store.finishes[0].nextAttemptAt?.toISOString(),
    new Date(T0 + 120_000).toISOString(),
  );
  assert.equal(result.next_attempt_at, new Date(T0 + 120_000).toISOString());
  assert.equal(store.finishes[0].siteUser, "example_com");
  assert.equal(store.finishes[0].docRoot, "/home/example_com/htdocs/example.com");
  assert.deepEqual(store.trail, [
    "site:ok:SITE_CREATED",
    "certificate:error:DNS_NOT_READY",
    "analytics:skipped:DNS_NOT_READY",
  ]);
});

Deno.test("a Let's Encrypt rate limit waits at least an hour", async () => {
  const shell = freshServer();
  shell.script["lets-encrypt:install:certificate"] = exit(
    1,
    "An error occurred while requesting an order, error message: Client error: `POST https://acme-v02.api.letsencrypt.org/acme/new-order` resulted in a `429 Too Many Requests` response: urn:ietf:params:acme:error:rateLimited\n",
  );
  const store = new FakeStore();
  const result = await provisionSite(job({ attempt: 1 }), context({ shell, store }), T0);
  assert.equal(result.error?.code, "RATE_LIMITED");
  assert.equal(result.status, "pending");
  assert.equal(store.finishes[0].nextAttemptAt?.getTime(), T0 + 3_600_000);
});

Deno.test("a transient failure on the last allowed attempt ends in failed", async () => {
  const shell = new FakeShell({
    "site:add:static": new HostingError("SSH_UNREACHABLE", "connect ECONNREFUSED 127.0.0.1:22"),
  });
  const store = new FakeStore();
  const result = await provisionSite(job({ attempt: 5 }), context({ shell, store }), T0);
  assert.equal(result.status, "failed");
  assert.equal(store.finishes[0].status, "failed");
  assert.equal(store.finishes[0].nextAttemptAt, undefined);
});

Deno.test("an unreachable server before the last attempt is retried", async () => {
  const shell = new FakeShell({
    "site:add:static": new HostingError("SSH_UNREACHABLE", "connect ECONNREFUSED 127.0.0.1:22"),
  });
  const store = new FakeStore();
  const result = await provisionSite(job({ attempt: 1 }), context({ shell, store }), T0);
  assert.equal(result.status, "pending");
  assert.equal(store.finishes[0].errorCode, "SSH_UNREACHABLE");
  assert.equal(store.finishes[0].nextAttemptAt?.getTime(), T0 + 60_000);
});

Deno.test("a host key mismatch fails at once, whatever the attempt", async () => {
  const shell = new FakeShell({
    "site:add:static": new HostingError("HOST_KEY_MISMATCH", "presented host key SHA256:x"),
  });
  const result = await provisionSite(job({ attempt: 1 }), context({ shell }), T0);
  assert.equal(result.status, "failed");
  assert.equal(result.error?.code, "HOST_KEY_MISMATCH");
});

Deno.test("Matomo being down leaves the site active without an id and schedules analytics", async () => {
  const analytics = new FakeAnalytics(
    new Map(),
    new HostingError(
      "MATOMO_UNREACHABLE",
      "SitesManager.getSitesIdFromSiteUrl: connection refused",
    ),
  );
  const store = new FakeStore();
  const result = await provisionSite(job(), context({ analytics, store }), T0);
  assert.equal(result.status, "active");
  assert.equal(result.matomo_site_id, null);
  assert.deepEqual(result.warnings.map((w) => w.code), ["MATOMO_UNREACHABLE"]);
  assert.equal(store.finishes[0].status, "active");
  assert.equal(store.finishes[0].matomoSiteId, undefined);
  assert.equal(store.finishes[0].nextAttemptAt?.getTime(), T0 + 600_000);
  assert.equal(store.trail[2], "analytics:error:MATOMO_UNREACHABLE");
});

Deno.test("a Matomo site already registered for the URL is reused, never created again", async () => {
  const analytics = new FakeAnalytics(new Map([["example.com", [7]]]));
  const store = new FakeStore();
  const result = await provisionSite(job(), context({ analytics, store }), T0);
  assert.deepEqual(analytics.calls, ["find example.com"]);
  assert.equal(result.matomo_site_id, 7);
  assert.equal(store.trail[2], "analytics:ok:MATOMO_FOUND");
});

Deno.test("several Matomo sites for one URL: the lowest id is kept, with a warning", async () => {
  const analytics = new FakeAnalytics(new Map([["example.com", [3, 9]]]));
  const result = await provisionSite(job(), context({ analytics }), T0);
  assert.equal(result.matomo_site_id, 3);
  assert.deepEqual(result.warnings.map((w) => w.code), ["MATOMO_DUPLICATES"]);
});

Deno.test("a site that already has its Matomo id makes no Matomo call", async () => {
  const analytics = new FakeAnalytics();
  const store = new FakeStore();
  const result = await provisionSite(
    job({ matomo_site_id: 12 }),
    context({ analytics, store }),
    T0,
  );
  assert.deepEqual(analytics.calls, []);
  assert.equal(result.matomo_site_id, 12);
  assert.equal(store.trail[2], "analytics:skipped:ALREADY_REGISTERED");
});

Deno.test("the generated password never reaches an event, a log line or the result", async () => {
  const password = "Zq9-unique-password-7731";
  const shell = new FakeShell({
    // A server that echoes its arguments back in an error.
    "site:add:static": (c) => exit(1, `unexpected failure running ${c.line}\n`),
  });
  const store = new FakeStore();
  const { log, lines } = memoryLog();
  const result = await provisionSite(
    job({ attempt: 1 }),
    context({ shell, store, log, redact: createRedactor(), newPassword: () => password }),
    T0,
  );
  assert.equal(result.error?.code, "CLPCTL_FAILED");
  const everything = JSON.stringify([store.events, store.finishes, lines, result]);
  assert.ok(!everything.includes(password), "the password leaked");
  assert.ok(everything.includes("--siteUserPassword='***'"), "the masked command is kept");
});

Deno.test("a claim taken over meanwhile is reported as superseded", async () => {
  const store = new FakeStore();
  store.stale = true;
  const result = await provisionSite(job(), context({ store }), T0);
  assert.equal(result.status, "superseded");
});

Deno.test("the analytics-only job registers an active site and leaves the rest alone", async () => {
  const shell = new FakeShell();
  const store = new FakeStore();
  const analytics = new FakeAnalytics();
  const result = await completeAnalytics(
    job({ kind: "analytics", doc_root: "/home/example_com/htdocs/example.com" }),
    context({ shell, store, analytics }),
    T0,
  );
  assert.deepEqual(shell.lines, []);
  assert.equal(result.status, "active");
  assert.equal(result.matomo_site_id, 42);
  assert.equal(store.finishes[0].status, "active");
  assert.equal(store.finishes[0].matomoSiteId, 42);
  assert.equal(store.finishes[0].eventCode, "ANALYTICS_REGISTERED");
});

Deno.test("a failed analytics-only job keeps the site active and tries again later", async () => {
  const analytics = new FakeAnalytics(
    new Map(),
    new HostingError("MATOMO_AUTH", "SitesManager.getSitesIdFromSiteUrl: HTTP 401"),
  );
  const store = new FakeStore();
  const result = await completeAnalytics(
    job({ kind: "analytics" }),
    context({ analytics, store }),
    T0,
  );
  assert.equal(result.status, "active");
  assert.equal(store.finishes[0].eventCode, "ANALYTICS_PENDING");
  // a token problem waits an hour, not the usual 10 minutes
  assert.equal(store.finishes[0].nextAttemptAt?.getTime(), T0 + 3_600_000);
});

Deno.test("an interrupted provisioning run is handed back as pending", async () => {
  const store = new FakeStore();
  await releaseInterrupted(job({ attempt: 1 }), context({ store }), T0, "wall_clock");
  assert.equal(store.finishes[0].status, "pending");
  assert.equal(store.finishes[0].errorCode, "INTERRUPTED");
  assert.match(store.finishes[0].errorMessage!, /wall_clock/);
});
