import assert from "node:assert/strict";
import { serverState } from "../core/cloudpanel.ts";
import { HostingError } from "../core/errors.ts";
import { createRedactor } from "../core/redact.ts";
import { siteUserCandidates } from "../core/site_user.ts";
import {
  context,
  exit,
  FakeAnalytics,
  FakeClock,
  FakeResolver,
  FakeShell,
  FakeStore,
  freshServer,
  job,
  memoryLog,
  ok,
  stateAnswer,
} from "../testing/fakes.ts";
import { completeAnalytics, provisionSite, releaseInterrupted } from "./provision.ts";

const T0 = Date.parse("2026-11-26T12:00:00Z");
const CERTIFIED = "Certificate installation was successful.\n";
const at = (ms: number) => new Date(T0 + ms);
const DNS_NXDOMAIN = "example.com: Domain could not be validated, error message: error type: " +
  "urn:ietf:params:acme:error:dns, error detail: DNS problem: NXDOMAIN looking up A for " +
  "example.com\n";

/** A server that already has example.com, under `user`, serving `certificate`. */
function existingSite(
  user = "legacy-owner",
  certificate: { type: number | null; expires: string | null } = {
    type: 1,
    expires: "2036-01-01 00:00:00",
  },
): FakeShell {
  return new FakeShell({
    "server-state": stateAnswer([{
      domain_name: "example.com",
      user,
      certificate_type: certificate.type,
      certificate_expires_at: certificate.expires,
    }], [user]),
    "doc-root-check": ok(),
    "lets-encrypt:install:certificate": ok(CERTIFIED),
  });
}

const matomoDown = (
  code: "MATOMO_UNREACHABLE" | "MATOMO_AUTH" | "MATOMO_HTTP" = "MATOMO_UNREACHABLE",
) =>
  new FakeAnalytics(
    new Map(),
    new HostingError(code, `SitesManager.getSitesIdFromSiteUrl: ${code}`),
  );

// --- a new site --------------------------------------------------------------------------------------

Deno.test("a new site: one read, site:add:static, the certificate, Matomo, finished active", async () => {
  const shell = freshServer();
  const store = new FakeStore();
  const analytics = new FakeAnalytics();
  const claim = job();
  const result = await provisionSite(claim, context({ shell, store, analytics }), T0);

  assert.deepEqual(shell.lines, [
    serverState("example.com", siteUserCandidates("example.com", 5), "root").line,
    "clpctl site:add:static --domainName='example.com' --siteUser='example_com' --siteUserPassword='Pa55word-for-tests.1234'",
    "clpctl lets-encrypt:install:certificate --domainName='example.com'",
  ]);
  assert.deepEqual(analytics.calls, ["find example.com", "add example.com"]);
  assert.deepEqual(store.trail, [
    "site:ok:SITE_CREATED",
    "certificate:ok:CERTIFICATE_INSTALLED",
    "analytics:ok:MATOMO_CREATED",
  ]);
  assert.deepEqual(store.finishes, [{
    siteId: claim.site_id,
    claimToken: claim.claim_token,
    durationMs: 0,
    status: "active",
    siteUser: "example_com",
    docRoot: "/home/example_com/htdocs/example.com",
    matomoSiteId: 42,
    nextAttemptAt: undefined,
    analyticsFailed: false,
    eventCode: "ACTIVE",
    errorMessage: undefined,
  }]);
  assert.deepEqual(store.health, []);
  assert.deepEqual(result, {
    site_id: claim.site_id,
    domain: "example.com",
    attempt: 1,
    status: "active",
    doc_root: "/home/example_com/htdocs/example.com",
    matomo_site_id: 42,
    warnings: [],
    error: null,
    next_attempt_at: null,
    duration_ms: 0,
  });
});

Deno.test("a created site gets no document-root check", async () => {
  const shell = freshServer();
  await provisionSite(job(), context({ shell }), T0);
  assert.ok(!shell.verbs.includes("doc-root-check"), shell.verbs.join(", "));
});

Deno.test("every step's event carries the claim token, so it renews the lease", async () => {
  const store = new FakeStore();
  const claim = job();
  await provisionSite(claim, context({ store }), T0);
  assert.equal(store.events.length, 3);
  for (const event of store.events) {
    assert.equal(event.claimToken, claim.claim_token);
    assert.equal(event.siteId, claim.site_id);
    assert.equal(event.attempt, 1);
  }
});

Deno.test("a non-root SSH user runs every command through sudo -n", async () => {
  const shell = freshServer();
  await provisionSite(job(), context({ shell, sshUser: "deploy" }), T0);
  assert.equal(shell.lines.length, 3);
  assert.match(shell.lines[0], /^\{ sudo -n sqlite3 .*\{ sudo -n getent passwd /);
  for (const line of shell.lines.slice(1)) assert.match(line, /^sudo -n /);
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
  assert.equal(store.finishes[0].refundAttempt, false);
  assert.deepEqual(store.trail, [
    "site:error:INVALID_DOMAIN",
    "certificate:skipped:INVALID_DOMAIN",
    "analytics:skipped:INVALID_DOMAIN",
  ]);
});

// --- orphans ------------------------------------------------------------------------------------------

Deno.test("an orphan site user is left alone: the site is created under the next candidate, with a warning", async () => {
  const shell = freshServer();
  shell.script["server-state"] = stateAnswer([], ["example_com"]);
  const store = new FakeStore();
  const result = await provisionSite(job(), context({ shell, store }), T0);

  assert.equal(result.status, "active");
  assert.equal(
    shell.lines[1],
    "clpctl site:add:static --domainName='example.com' --siteUser='example_com-2' --siteUserPassword='Pa55word-for-tests.1234'",
  );
  assert.deepEqual(shell.verbs, [
    "server-state",
    "site:add:static",
    "lets-encrypt:install:certificate",
  ]);
  assert.equal(store.finishes[0].siteUser, "example_com-2");
  assert.equal(store.finishes[0].docRoot, "/home/example_com-2/htdocs/example.com");
  assert.equal(result.doc_root, "/home/example_com-2/htdocs/example.com");
  assert.deepEqual(result.warnings.map((w) => w.code), ["SITE_USER_ORPHAN"]);
  assert.match(result.warnings[0].message, /the Linux user example_com exists without/);
  assert.equal(store.trail[0], "site:warning:SITE_USER_ORPHAN");
  assert.equal(
    store.events[0].message,
    "created with site user example_com-2 at /home/example_com-2/htdocs/example.com; " +
      "the Linux user example_com exists without a CloudPanel site (left untouched); " +
      "trying the next name",
  );
});

Deno.test("a partial failure of attempt N (user created, no site) is healed by attempt N+1", async () => {
  // Attempt 1: CloudPanel created the Linux user, then failed (it never rolls back).
  const first = freshServer();
  first.script["site:add:static"] = exit(1, "<error>nginx reload failed</error>\n");
  const store = new FakeStore();
  const one = await provisionSite(job({ attempt: 1 }), context({ shell: first, store }), T0);
  assert.equal(one.status, "pending");
  assert.equal(one.error?.code, "CLPCTL_FAILED");

  // Attempt 2 sees the orphan and creates the site under the next name, no manual step.
  const second = freshServer();
  second.script["server-state"] = stateAnswer([], ["example_com"]);
  const two = await provisionSite(job({ attempt: 2 }), context({ shell: second, store }), T0);
  assert.equal(two.status, "active");
  assert.equal(store.finishes[1].siteUser, "example_com-2");
});

// --- adopting what exists ------------------------------------------------------------------------------

Deno.test("an existing site is adopted with its real user and document root, without site:add", async () => {
  const shell = existingSite();
  const store = new FakeStore();
  const result = await provisionSite(job(), context({ shell, store }), T0);

  assert.equal(result.status, "active");
  assert.equal(result.doc_root, "/home/legacy-owner/htdocs/example.com");
  assert.equal(store.finishes[0].siteUser, "legacy-owner");
  assert.deepEqual(shell.verbs, [
    "server-state",
    "doc-root-check",
    "lets-encrypt:install:certificate",
  ]);
  assert.equal(shell.lines[1], "test -d '/home/legacy-owner/htdocs/example.com'");
  assert.deepEqual(result.warnings.map((w) => w.code), ["SITE_ADOPTED"]);
  assert.equal(store.trail[0], "site:warning:SITE_ADOPTED");
});

Deno.test("an adopted site serving a Let's Encrypt certificate for 30 more days gets no new one", async () => {
  const shell = existingSite("example_com", { type: 2, expires: "2027-02-01 10:00:00" });
  const store = new FakeStore();
  const result = await provisionSite(job(), context({ shell, store }), T0);

  assert.equal(result.status, "active");
  assert.deepEqual(shell.verbs, ["server-state", "doc-root-check"]);
  assert.deepEqual(store.trail, [
    "site:warning:SITE_ADOPTED",
    "certificate:skipped:CERTIFICATE_VALID",
    "analytics:ok:MATOMO_CREATED",
  ]);
  assert.equal(
    store.events[1].message,
    "a Let's Encrypt certificate is served until 2027-02-01T10:00:00.000Z; not requested " +
      "again (CloudPanel renews it)",
  );
});

Deno.test("six re-provisionings of an active site ask Let's Encrypt once", async () => {
  const store = new FakeStore();
  let certificates = 0;
  let served: { type: number; expires: string } | null = null;
  for (let i = 0; i < 6; i++) {
    const shell = new FakeShell({
      "server-state": () =>
        stateAnswer(
          i === 0 ? [] : [{
            domain_name: "example.com",
            user: "example_com",
            certificate_type: served?.type ?? 1,
            certificate_expires_at: served?.expires ?? "2036-01-01 00:00:00",
          }],
          i === 0 ? [] : ["example_com"],
        ),
      "site:add:static": ok("Site example.com has been added.\n"),
      "doc-root-check": ok(),
      "lets-encrypt:install:certificate": () => {
        certificates++;
        served = { type: 2, expires: "2027-02-24 12:00:00" };
        return ok(CERTIFIED);
      },
    });
    const result = await provisionSite(
      job({ site_user: i === 0 ? null : "example_com", matomo_site_id: i === 0 ? null : 42 }),
      context({ shell, store }),
      T0,
    );
    assert.equal(result.status, "active", `run ${i + 1}`);
  }
  assert.equal(certificates, 1);
  assert.equal(store.trail.filter((t) => t === "site:ok:SITE_CREATED").length, 1);
});

Deno.test("a Let's Encrypt certificate expiring within 30 days is requested again", async () => {
  const shell = existingSite("example_com", { type: 2, expires: "2026-12-20 00:00:00" });
  const store = new FakeStore();
  await provisionSite(job(), context({ shell, store }), T0);
  assert.deepEqual(shell.verbs, [
    "server-state",
    "doc-root-check",
    "lets-encrypt:install:certificate",
  ]);
  assert.equal(store.trail[1], "certificate:ok:CERTIFICATE_INSTALLED");
});

Deno.test("an adopted site whose document root is missing (test -d exit 1) fails with DOC_ROOT_MISSING", async () => {
  const shell = existingSite();
  shell.script["doc-root-check"] = exit(1, "");
  const store = new FakeStore();
  const result = await provisionSite(job(), context({ shell, store }), T0);
  assert.equal(result.status, "failed");
  assert.equal(result.error?.code, "DOC_ROOT_MISSING");
  assert.deepEqual(store.health, []);
  assert.equal(store.finishes[0].refundAttempt, false);
});

Deno.test("sudo refusing the document-root check stays SUDO_REFUSED: the server waits, the site is not failed", async () => {
  const shell = existingSite();
  shell.script["doc-root-check"] = exit(1, "", "sudo: a password is required\n");
  const store = new FakeStore();
  const result = await provisionSite(job(), context({ shell, store, sshUser: "deploy" }), T0);
  assert.equal(result.status, "pending");
  assert.equal(result.error?.code, "SUDO_REFUSED");
  assert.equal(store.finishes[0].refundAttempt, true);
  assert.equal(store.health.length, 1);
});

Deno.test("a site created meanwhile ('domainName: This value already exists.') is read again and adopted", async () => {
  const shell = new FakeShell({
    "server-state": [
      stateAnswer(),
      stateAnswer([{ domain_name: "example.com", user: "example_com" }], ["example_com"]),
    ],
    "site:add:static": exit(1, "domainName: This value already exists.\n"),
    "doc-root-check": ok(),
    "lets-encrypt:install:certificate": ok(CERTIFIED),
  });
  const store = new FakeStore();
  const result = await provisionSite(job(), context({ shell, store }), T0);
  assert.equal(result.status, "active");
  assert.deepEqual(shell.verbs, [
    "server-state",
    "site:add:static",
    "server-state",
    "doc-root-check",
    "lets-encrypt:install:certificate",
  ]);
  assert.equal(store.trail[0], "site:warning:SITE_ADOPTED");
});

Deno.test("'already exists' with no such site in the inventory on the second read is SITE_CONFLICT", async () => {
  const shell = freshServer();
  shell.script["site:add:static"] = exit(1, "domainName: This value already exists.\n");
  const result = await provisionSite(job(), context({ shell }), T0);
  assert.equal(result.status, "failed");
  assert.equal(result.error?.code, "SITE_CONFLICT");
  assert.equal(
    result.error?.message,
    "CloudPanel says example.com exists but its inventory has no such site",
  );
  assert.deepEqual(shell.verbs, ["server-state", "site:add:static", "server-state"]);
});

// --- conflicts ----------------------------------------------------------------------------------------

Deno.test("a row recording another site user than the server's is a conflict naming both; nothing moves", async () => {
  const shell = existingSite("someone_else");
  const store = new FakeStore();
  const result = await provisionSite(
    job({ site_user: "example_com" }),
    context({ shell, store }),
    T0,
  );
  assert.equal(result.status, "failed");
  assert.equal(result.error?.code, "SITE_CONFLICT");
  assert.match(result.error!.message, /example_com.*someone_else/);
  assert.deepEqual(shell.verbs, ["server-state"]);
  assert.equal(store.finishes[0].siteUser, undefined);
  assert.equal(store.finishes[0].docRoot, undefined);
});

Deno.test("a www twin held by another site is SITE_CONFLICT before any site:add:static", async () => {
  const shell = freshServer();
  shell.script["server-state"] = stateAnswer([{ domain_name: "www.example.com", user: "someone" }]);
  const result = await provisionSite(job(), context({ shell }), T0);
  assert.equal(result.status, "failed");
  assert.equal(result.error?.code, "SITE_CONFLICT");
  assert.match(result.error!.message, /www\.example\.com/);
  assert.deepEqual(shell.verbs, ["server-state"]);
});

Deno.test("a candidate user held by another site is SITE_USER_CONFLICT before any site:add:static", async () => {
  const shell = freshServer();
  shell.script["server-state"] = stateAnswer(
    [{ domain_name: "taken.net", user: "example_com" }],
    ["example_com"],
  );
  const result = await provisionSite(job(), context({ shell }), T0);
  assert.equal(result.status, "failed");
  assert.equal(result.error?.code, "SITE_USER_CONFLICT");
  assert.deepEqual(shell.verbs, ["server-state"]);
});

Deno.test("'siteUser: This value already exists.' alone from site:add:static fails as SITE_USER_CONFLICT", async () => {
  const shell = freshServer();
  shell.script["site:add:static"] = exit(1, "siteUser: This value already exists.\n");
  const store = new FakeStore();
  const result = await provisionSite(job({ attempt: 1 }), context({ shell, store }), T0);
  assert.equal(result.status, "failed");
  assert.equal(result.error?.code, "SITE_USER_CONFLICT");
  assert.deepEqual(shell.verbs, ["server-state", "site:add:static"]);
  assert.equal(store.finishes[0].status, "failed");
});

// --- the server's failures -------------------------------------------------------------------------------

Deno.test("a server-level failure pauses the server and puts the site back to pending with its attempt back", async () => {
  const shell = new FakeShell({
    "server-state": new HostingError("HOST_KEY_MISMATCH", "presented host key SHA256:x"),
  });
  const store = new FakeStore();
  const claim = job({ attempt: 5 }); // the last allowed attempt: still not failed
  const result = await provisionSite(claim, context({ shell, store }), T0);

  assert.equal(result.status, "pending");
  assert.equal(result.error?.code, "HOST_KEY_MISMATCH");
  assert.equal(result.next_attempt_at, "2026-11-26T12:01:00.000Z");
  assert.deepEqual(store.health, [{
    target: "ssh:root@cp.example.com:22",
    credential: "sha256:ssh",
    ok: false,
    code: "HOST_KEY_MISMATCH",
    message: "presented host key SHA256:x",
    baseSeconds: 60,
    maxSeconds: 900,
  }]);
  assert.deepEqual(store.finishes, [{
    siteId: claim.site_id,
    claimToken: claim.claim_token,
    durationMs: 0,
    status: "pending",
    siteUser: undefined,
    docRoot: undefined,
    errorCode: "HOST_KEY_MISMATCH",
    errorMessage: "presented host key SHA256:x",
    nextAttemptAt: new Date("2026-11-26T12:01:00Z"), // the pause's end, as the database says
    refundAttempt: true,
  }]);
  assert.deepEqual(store.trail, [
    "site:error:HOST_KEY_MISMATCH",
    "certificate:skipped:HOST_KEY_MISMATCH",
    "analytics:skipped:HOST_KEY_MISMATCH",
  ]);
});

Deno.test("every server-level code pauses the server instead of failing the site", async () => {
  for (
    const code of [
      "SSH_KEY_INVALID",
      "HOST_KEY_MISMATCH",
      "SSH_AUTH_FAILED",
      "SSH_UNREACHABLE",
      "SSH_TIMEOUT",
      "SSH_CONNECTION_LOST",
      "SUDO_REFUSED",
      "CLPCTL_NOT_FOUND",
      "INVENTORY_UNAVAILABLE",
      "CLOUDPANEL_NETWORK",
    ] as const
  ) {
    const store = new FakeStore();
    const shell = new FakeShell({ "server-state": new HostingError(code, "x") });
    const result = await provisionSite(job({ attempt: 8 }), context({ shell, store }), T0);
    assert.equal(result.status, "pending", code);
    assert.equal(store.finishes[0].refundAttempt, true, code);
    assert.equal(store.health.length, 1, code);
  }
});

Deno.test("sudo refusing the probe is SUDO_REFUSED, a server-level failure", async () => {
  const shell = new FakeShell({
    "server-state": ok(
      "sudo: a password is required\n@@hosting-automator inventory 1\n" +
        "sudo: a password is required\n@@hosting-automator passwd 1\n",
    ),
  });
  const store = new FakeStore();
  const result = await provisionSite(job(), context({ shell, store, sshUser: "deploy" }), T0);
  assert.equal(result.status, "pending");
  assert.equal(result.error?.code, "SUDO_REFUSED");
  assert.equal(store.finishes[0].refundAttempt, true);
  assert.deepEqual(shell.verbs, ["server-state"]);
});

Deno.test("CloudPanel unable to reach the Public Suffix List on site:add pauses the server", async () => {
  const shell = freshServer();
  shell.script["site:add:static"] = exit(
    1,
    "cURL error 6: Could not resolve host: publicsuffix.org (see https://curl.haxx.se/libcurl/c/libcurl-errors.html) for https://publicsuffix.org/list/public_suffix_list.dat\n",
  );
  const store = new FakeStore();
  const result = await provisionSite(job(), context({ shell, store }), T0);
  assert.equal(result.status, "pending");
  assert.equal(result.error?.code, "CLOUDPANEL_NETWORK");
  assert.equal(store.finishes[0].refundAttempt, true);
});

Deno.test("a server failure after the site was created keeps its user and document root on the row", async () => {
  const shell = freshServer();
  shell.script["lets-encrypt:install:certificate"] = new HostingError(
    "SSH_CONNECTION_LOST",
    "the channel closed",
  );
  const store = new FakeStore();
  const result = await provisionSite(job(), context({ shell, store }), T0);
  assert.equal(result.status, "pending");
  assert.equal(store.finishes[0].siteUser, "example_com");
  assert.equal(store.finishes[0].docRoot, "/home/example_com/htdocs/example.com");
  assert.equal(store.finishes[0].refundAttempt, true);
  assert.deepEqual(store.trail, [
    "site:ok:SITE_CREATED",
    "certificate:error:SSH_CONNECTION_LOST",
    "analytics:skipped:SSH_CONNECTION_LOST",
  ]);
});

Deno.test("when the database cannot record the pause, the site waits the server's base delay", async () => {
  const shell = new FakeShell({ "server-state": new HostingError("SSH_TIMEOUT", "no handshake") });
  const store = new FakeStore();
  store.reportHealth = () => Promise.reject(new Error("connection reset"));
  const result = await provisionSite(job(), context({ shell, store }), T0);
  assert.equal(result.status, "pending");
  assert.deepEqual(store.finishes[0].nextAttemptAt, at(60_000));

  const noAnswer = new FakeStore();
  noAnswer.pausedUntil = null;
  await provisionSite(job(), context({ shell, store: noAnswer }), T0);
  assert.deepEqual(noAnswer.finishes[0].nextAttemptAt, at(60_000));
});

// --- the site's own failures --------------------------------------------------------------------------------

Deno.test("DNS not ready for the certificate goes back to pending after the backoff, keeping the site's place", async () => {
  const shell = freshServer();
  shell.script["lets-encrypt:install:certificate"] = exit(1, DNS_NXDOMAIN);
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
  assert.deepEqual(store.finishes[0].nextAttemptAt, at(120_000));
  assert.equal(result.next_attempt_at, at(120_000).toISOString());
  assert.equal(store.finishes[0].refundAttempt, false);
  assert.equal(store.finishes[0].siteUser, "example_com");
  assert.equal(store.finishes[0].docRoot, "/home/example_com/htdocs/example.com");
  assert.deepEqual(store.health, []);
  assert.deepEqual(store.trail, [
    "site:ok:SITE_CREATED",
    "certificate:error:DNS_NOT_READY",
    "analytics:skipped:DNS_NOT_READY",
  ]);
});

Deno.test("the next attempt after DNS was not ready adopts the site it created and only asks for the certificate", async () => {
  const shell = existingSite("example_com");
  const result = await provisionSite(
    job({ attempt: 2, site_user: "example_com", doc_root: "/home/example_com/htdocs/example.com" }),
    context({ shell }),
    T0,
  );
  assert.equal(result.status, "active");
  assert.deepEqual(shell.verbs, [
    "server-state",
    "doc-root-check",
    "lets-encrypt:install:certificate",
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
  assert.deepEqual(store.finishes[0].nextAttemptAt, at(3_600_000));
});

Deno.test("a transient failure of the site on the last allowed attempt ends in failed", async () => {
  const shell = freshServer();
  shell.script["site:add:static"] = new HostingError("COMMAND_TIMEOUT", "no exit within 25000 ms");
  const store = new FakeStore();
  const result = await provisionSite(job({ attempt: 5 }), context({ shell, store }), T0);
  assert.equal(result.status, "failed");
  assert.equal(store.finishes[0].status, "failed");
  assert.equal(store.finishes[0].nextAttemptAt, undefined);
  assert.equal(store.finishes[0].refundAttempt, false);
});

Deno.test("a transient failure of the site before the last attempt is retried with backoff", async () => {
  const shell = freshServer();
  shell.script["site:add:static"] = new HostingError("COMMAND_TIMEOUT", "no exit within 25000 ms");
  const store = new FakeStore();
  const result = await provisionSite(job({ attempt: 1 }), context({ shell, store }), T0);
  assert.equal(result.status, "pending");
  assert.equal(store.finishes[0].errorCode, "COMMAND_TIMEOUT");
  assert.deepEqual(store.finishes[0].nextAttemptAt, at(60_000));
  assert.deepEqual(store.health, []);
});

// --- Matomo ---------------------------------------------------------------------------------------------------

Deno.test("Matomo being down is a warning: the site is active, analytics retried a minute later", async () => {
  const store = new FakeStore();
  const result = await provisionSite(job(), context({ analytics: matomoDown(), store }), T0);
  assert.equal(result.status, "active");
  assert.equal(result.matomo_site_id, null);
  assert.deepEqual(result.warnings.map((w) => w.code), ["MATOMO_UNREACHABLE"]);
  assert.equal(result.next_attempt_at, at(60_000).toISOString());
  assert.equal(store.finishes[0].status, "active");
  assert.equal(store.finishes[0].matomoSiteId, undefined);
  assert.equal(store.finishes[0].analyticsFailed, true);
  assert.deepEqual(store.finishes[0].nextAttemptAt, at(60_000));
  assert.equal(store.trail[2], "analytics:warning:MATOMO_UNREACHABLE");
  assert.ok(!store.trail.some((t) => t.includes(":error:")));
});

Deno.test("the analytics retry doubles with every registration that failed before", async () => {
  const store = new FakeStore();
  await provisionSite(
    job({ analytics_failures: 3 }),
    context({ analytics: matomoDown(), store }),
    T0,
  );
  assert.deepEqual(store.finishes[0].nextAttemptAt, at(480_000));
});

Deno.test("at the limit of failed registrations the retries end with ANALYTICS_GAVE_UP", async () => {
  const store = new FakeStore();
  const result = await provisionSite(
    job({ analytics_failures: 9 }),
    context({ analytics: matomoDown(), store }),
    T0,
  );
  assert.equal(result.status, "active");
  assert.equal(result.next_attempt_at, "infinity");
  assert.equal(store.finishes[0].nextAttemptAt, "never");
  assert.equal(store.finishes[0].analyticsFailed, true);
  assert.deepEqual(store.trail.slice(2), [
    "analytics:warning:MATOMO_UNREACHABLE",
    "analytics:warning:ANALYTICS_GAVE_UP",
  ]);
  assert.equal(
    store.events[3].message,
    "10 registrations failed; no further retry (select public.hosting_retry('example.com') " +
      "to try again)",
  );
});

Deno.test("a refused Matomo token is reported to the database and pauses Matomo until it says", async () => {
  const store = new FakeStore();
  store.pausedUntil = at(2 * 3_600_000);
  const analytics = matomoDown("MATOMO_AUTH");
  const result = await provisionSite(job(), context({ analytics, store }), T0);
  assert.equal(result.status, "active");
  assert.deepEqual(store.health, [{
    target: "matomo:https://analytics.example.com",
    credential: "sha256:matomo",
    ok: false,
    code: "MATOMO_AUTH",
    message: "SitesManager.getSitesIdFromSiteUrl: MATOMO_AUTH",
    baseSeconds: 3_600,
    maxSeconds: 3_600,
    minSeconds: 3_600,
  }]);
  assert.deepEqual(analytics.paused, at(2 * 3_600_000));
  // The later of the schedule (1 h floor) and the shared pause.
  assert.deepEqual(store.finishes[0].nextAttemptAt, at(2 * 3_600_000));
});

Deno.test("a refused Matomo token waits at least the hour even when the database cannot be told", async () => {
  const store = new FakeStore();
  store.reportHealth = () => Promise.reject(new Error("timeout"));
  await provisionSite(job(), context({ analytics: matomoDown("MATOMO_AUTH"), store }), T0);
  assert.deepEqual(store.finishes[0].nextAttemptAt, at(3_600_000));
});

Deno.test("while Matomo is paused no call is made: a MATOMO_PAUSED warning, retried at the pause's end", async () => {
  const analytics = new FakeAnalytics();
  analytics.paused = at(1_800_000);
  const store = new FakeStore();
  const result = await provisionSite(job(), context({ analytics, store }), T0);
  assert.deepEqual(analytics.calls, []);
  assert.equal(result.status, "active");
  assert.deepEqual(result.warnings, [{
    code: "MATOMO_PAUSED",
    message: "Matomo is not called until 2026-11-26T12:30:00.000Z (it refused the token)",
  }]);
  assert.equal(store.trail[2], "analytics:warning:MATOMO_PAUSED");
  assert.deepEqual(store.finishes[0].nextAttemptAt, at(1_800_000));
  assert.equal(store.finishes[0].analyticsFailed, false);
  assert.deepEqual(store.health, []);
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
  const store = new FakeStore();
  const result = await provisionSite(job(), context({ analytics, store }), T0);
  assert.equal(result.matomo_site_id, 3);
  assert.deepEqual(result.warnings.map((w) => w.code), ["MATOMO_DUPLICATES"]);
  assert.equal(store.trail[2], "analytics:warning:MATOMO_DUPLICATES");
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

// --- secrets ----------------------------------------------------------------------------------------------------

Deno.test("the generated password never reaches an event, a log line or the result", async () => {
  const password = "Zq9-unique-password-7731";
  const shell = freshServer();
  // A server that echoes its arguments back in an error.
  shell.script["site:add:static"] = (c) => exit(1, `unexpected failure running ${c.line}\n`);
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

Deno.test("a password echoed where the message is cut is masked before the cut: no part survives", async () => {
  const password = "Cut9-unique-password-4242";
  const shell = freshServer();
  // The failure message keeps 800 characters of output; the password straddles that limit.
  shell.script["site:add:static"] = () => exit(1, `${"x".repeat(790)} ${password} tail\n`);
  const store = new FakeStore();
  const { log, lines } = memoryLog();
  const result = await provisionSite(
    job({ attempt: 1 }),
    context({ shell, store, log, redact: createRedactor(), newPassword: () => password }),
    T0,
  );
  const everything = JSON.stringify([store.events, store.finishes, lines, result]);
  assert.ok(!everything.includes(password.slice(0, 9)), "a cut part of the password leaked");
  assert.ok(result.error?.message.includes(`${"x".repeat(790)} *** tail`), result.error?.message);
});

Deno.test("a configured secret in a command's output is masked before classification", async () => {
  const shell = freshServer();
  shell.script["server-state"] = ok(
    "token matomo-secret-token-0001\n@@hosting-automator inventory 1\n" +
      "@@hosting-automator passwd 2\n",
  );
  const store = new FakeStore();
  const result = await provisionSite(
    job(),
    context({ shell, store, redact: createRedactor(["matomo-secret-token-0001"]) }),
    T0,
  );
  const everything = JSON.stringify([store.events, store.finishes, store.health, result]);
  assert.ok(!everything.includes("matomo-secret-token-0001"));
  assert.ok(result.error?.message.includes("token ***"), result.error?.message);
});

// --- the row's last word ------------------------------------------------------------------------------------------

Deno.test("a claim taken over meanwhile is reported as superseded", async () => {
  const store = new FakeStore();
  store.stale = true;
  const result = await provisionSite(job(), context({ store }), T0);
  assert.equal(result.status, "superseded");
});

Deno.test("a failure to write the final state is a warning in the result, not a thrown error", async () => {
  const shell = freshServer();
  shell.script["lets-encrypt:install:certificate"] = exit(1, DNS_NXDOMAIN);
  const store = new FakeStore();
  store.finish = () => Promise.reject(new Error("hosting_finish: connection reset"));
  const result = await provisionSite(job(), context({ shell, store }), T0);
  assert.equal(result.status, "pending");
  assert.equal(result.error?.code, "DNS_NOT_READY");
  assert.deepEqual(result.warnings, [{
    code: "DATABASE_ERROR",
    message: "hosting_finish: connection reset",
  }]);
});

// --- analytics alone -----------------------------------------------------------------------------------------------

Deno.test("the analytics-only job registers an active site and leaves the server alone", async () => {
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
  assert.equal(store.finishes[0].analyticsFailed, false);
  assert.equal(store.finishes[0].eventCode, "ANALYTICS_REGISTERED");
});

Deno.test("a failed analytics-only job keeps the site active and tries again on the schedule", async () => {
  const store = new FakeStore();
  const result = await completeAnalytics(
    job({ kind: "analytics", analytics_failures: 1 }),
    context({ analytics: matomoDown("MATOMO_HTTP"), store }),
    T0,
  );
  assert.equal(result.status, "active");
  assert.equal(store.finishes[0].eventCode, "ANALYTICS_PENDING");
  assert.equal(store.finishes[0].analyticsFailed, true);
  assert.deepEqual(store.finishes[0].nextAttemptAt, at(120_000));
  assert.deepEqual(store.trail, ["analytics:warning:MATOMO_HTTP"]);
});

Deno.test("a refused token on an analytics-only job waits at least an hour", async () => {
  const store = new FakeStore();
  store.pausedUntil = at(3_600_000);
  await completeAnalytics(
    job({ kind: "analytics" }),
    context({ analytics: matomoDown("MATOMO_AUTH"), store }),
    T0,
  );
  assert.equal(store.finishes[0].eventCode, "ANALYTICS_PENDING");
  assert.deepEqual(store.finishes[0].nextAttemptAt, at(3_600_000));
  assert.equal(store.health.length, 1);
});

Deno.test("the last allowed analytics-only failure finishes with ANALYTICS_GAVE_UP", async () => {
  const store = new FakeStore();
  const result = await completeAnalytics(
    job({ kind: "analytics", analytics_failures: 9 }),
    context({ analytics: matomoDown(), store }),
    T0,
  );
  assert.equal(store.finishes[0].eventCode, "ANALYTICS_GAVE_UP");
  assert.equal(store.finishes[0].nextAttemptAt, "never");
  assert.equal(result.next_attempt_at, "infinity");
});

// --- interruption ------------------------------------------------------------------------------------------------------

Deno.test("an interrupted provisioning job is handed back pending, due now, its attempt given back", async () => {
  const store = new FakeStore();
  const clock = new FakeClock(T0 + 5_000);
  await releaseInterrupted(
    job({ attempt: 1 }),
    context({ store, now: clock.now }),
    T0,
    "wall_clock",
  );
  assert.equal(store.finishes.length, 1);
  const finish = store.finishes[0];
  assert.equal(finish.status, "pending");
  assert.equal(finish.errorCode, "INTERRUPTED");
  assert.equal(finish.errorMessage, "the edge runtime is shutting down (wall_clock)");
  assert.deepEqual(finish.nextAttemptAt, at(5_000));
  assert.equal(finish.refundAttempt, true);
  assert.equal(finish.durationMs, 5_000);
  assert.deepEqual(store.health, [], "an interruption is not the server's failure");
});

Deno.test("an interrupted analytics-only job stays active and is due again at once", async () => {
  const store = new FakeStore();
  await releaseInterrupted(job({ kind: "analytics" }), context({ store }), T0, "early_drop");
  assert.equal(store.finishes.length, 1);
  assert.equal(store.finishes[0].status, "active");
  assert.equal(store.finishes[0].eventCode, "INTERRUPTED");
  assert.deepEqual(store.finishes[0].nextAttemptAt, at(0));
});

Deno.test("Matomo's look-up runs beside the SSH steps; only the creation waits for the site", async () => {
  const analytics = new FakeAnalytics();
  const seenWhenAdding: string[][] = [];
  const shell = freshServer();
  const add = shell.script["site:add:static"]!;
  shell.script["site:add:static"] = (command) => {
    seenWhenAdding.push([...analytics.calls]);
    return typeof add === "function" ? add(command) : add as ReturnType<typeof ok>;
  };
  const result = await provisionSite(job(), context({ shell, analytics }), T0);
  assert.equal(result.status, "active");
  assert.deepEqual(seenWhenAdding, [["find example.com"]], "looked up before the site existed");
  assert.deepEqual(analytics.calls, ["find example.com", "add example.com"]);
});

Deno.test("no look-up reaches Matomo for a site that has its id, an invalid domain, or while it is paused", async () => {
  for (
    const [label, theJob, paused] of [
      ["registered", job({ matomo_site_id: 7 }), null],
      ["invalid", job({ domain: "bad domain.com" }), null],
      ["paused", job(), at(3_600_000)],
    ] as const
  ) {
    const analytics = new FakeAnalytics();
    analytics.paused = paused;
    await provisionSite(theJob, context({ analytics }), T0);
    assert.deepEqual(analytics.calls, [], label);
  }
});

// --- the DNS check before Let's Encrypt -------------------------------------------------------------

const SERVER = ["203.0.113.7", "2001:db8::7"];

Deno.test("DNS pointing elsewhere fails DNS_NOT_READY with the addresses seen; Let's Encrypt is not asked", async () => {
  const shell = freshServer();
  const store = new FakeStore();
  const resolver = new FakeResolver({
    "example.com": ["198.51.100.9"],
    "www.example.com": ["203.0.113.7"],
  });
  const result = await provisionSite(
    job({ attempt: 2 }),
    context({ shell, store, dns: { resolver, serverAddresses: SERVER } }),
    T0,
  );
  assert.deepEqual(resolver.asked, ["example.com"]);
  assert.deepEqual(shell.verbs, ["server-state", "site:add:static"]);
  assert.equal(result.status, "pending");
  assert.deepEqual(result.error, {
    code: "DNS_NOT_READY",
    message: "not pointing at this server (203.0.113.7, 2001:db8::7) yet: " +
      "example.com → 198.51.100.9; Let's Encrypt was not asked",
  });
  // The existing retry path: attempt 2 waits 60 s × 2, and the site keeps its place.
  assert.deepEqual(store.finishes[0].nextAttemptAt, at(120_000));
  assert.equal(store.finishes[0].errorCode, "DNS_NOT_READY");
  assert.equal(store.finishes[0].docRoot, "/home/example_com/htdocs/example.com");
  assert.deepEqual(store.trail, [
    "site:ok:SITE_CREATED",
    "certificate:error:DNS_NOT_READY",
    "analytics:skipped:DNS_NOT_READY",
  ]);
});

Deno.test("a name without any record is not ready either", async () => {
  const shell = freshServer();
  const resolver = new FakeResolver({ "example.com": ["203.0.113.7"] });
  const result = await provisionSite(
    job(),
    context({ shell, dns: { resolver, serverAddresses: SERVER } }),
    T0,
  );
  assert.equal(result.error?.code, "DNS_NOT_READY");
  assert.match(result.error?.message ?? "", /www\.example\.com → no A\/AAAA record/);
  assert.ok(!shell.verbs.includes("lets-encrypt:install:certificate"));
});

Deno.test("DNS pointing at the server: the certificate is requested and the event says so", async () => {
  const shell = freshServer();
  const store = new FakeStore();
  const resolver = new FakeResolver({
    "example.com": ["203.0.113.7", "2001:db8::7"],
    "www.example.com": ["203.0.113.7"],
  });
  const result = await provisionSite(
    job(),
    context({ shell, store, dns: { resolver, serverAddresses: SERVER } }),
    T0,
  );
  assert.equal(result.status, "active");
  assert.deepEqual(result.warnings, []);
  assert.equal(shell.verbs.filter((v) => v === "lets-encrypt:install:certificate").length, 1);
  assert.deepEqual(store.trail, [
    "site:ok:SITE_CREATED",
    "certificate:ok:CERTIFICATE_INSTALLED",
    "analytics:ok:MATOMO_CREATED",
  ]);
  assert.equal(
    store.events[1].message,
    "example.com → 203.0.113.7, 2001:db8::7; www.example.com → 203.0.113.7: this server",
  );
});

Deno.test("a resolver that cannot answer is a warning, and the certificate is requested anyway", async () => {
  const shell = freshServer();
  const store = new FakeStore();
  const resolver = new FakeResolver({}, "A example.com: no answer within 3000 ms");
  const result = await provisionSite(
    job(),
    context({ shell, store, dns: { resolver, serverAddresses: SERVER } }),
    T0,
  );
  assert.equal(result.status, "active");
  assert.equal(shell.verbs.filter((v) => v === "lets-encrypt:install:certificate").length, 1);
  assert.deepEqual(store.trail, [
    "site:ok:SITE_CREATED",
    "certificate:warning:DNS_UNCHECKED",
    "certificate:ok:CERTIFICATE_INSTALLED",
    "analytics:ok:MATOMO_CREATED",
  ]);
  assert.deepEqual(result.warnings, [{
    code: "DNS_UNCHECKED",
    message: "the resolver could not tell where the domain points (A example.com: no answer " +
      "within 3000 ms); asking Let's Encrypt anyway",
  }]);
});

Deno.test("a kept certificate asks no DNS question", async () => {
  const shell = existingSite("example_com", { type: 2, expires: "2027-02-01 10:00:00" });
  const resolver = new FakeResolver({}, "must not be asked");
  const store = new FakeStore();
  const result = await provisionSite(
    job({ site_user: "example_com" }),
    context({ shell, store, dns: { resolver, serverAddresses: SERVER } }),
    T0,
  );
  assert.equal(result.status, "active");
  assert.deepEqual(resolver.asked, []);
  assert.ok(store.trail.includes("certificate:skipped:CERTIFICATE_VALID"));
});

Deno.test("without server addresses no DNS question is asked (the check is off)", async () => {
  const shell = freshServer();
  const result = await provisionSite(job(), context({ shell }), T0);
  assert.equal(result.status, "active");
  assert.deepEqual(result.warnings, []);
});
