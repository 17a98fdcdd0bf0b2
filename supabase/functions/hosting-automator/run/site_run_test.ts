import assert from "node:assert/strict";
import type { ExecResult, RemoteCommand } from "../core/cloudpanel.ts";
import { HostingError } from "../core/errors.ts";
import {
  exit,
  FakeAnalytics,
  FakeClock,
  FakeShell,
  FakeStore,
  freshServer,
  job,
  memoryLog,
  ok,
  runContext,
  siteRow,
  stateAnswer,
  TEST_SSH,
} from "../testing/fakes.ts";
import { SiteRun } from "./site_run.ts";

const options = { maxConcurrent: 3, timeBudgetMs: 60_000 };
const A = "11111111-1111-4111-8111-111111111111";
const B = "22222222-2222-4222-8222-222222222222";
const C = "33333333-3333-4333-8333-333333333333";

Deno.test("a requested site is claimed alone and reported as accepted", async () => {
  const store = new FakeStore([{
    claimed: [job({ site_id: A, domain: "a.example.com" })],
    site: null,
  }]);
  const run = new SiteRun(runContext({ store }), options);
  const batch = await run.claim(A);
  assert.deepEqual(store.claims, [{ siteId: A, limit: 1 }]);
  assert.deepEqual(batch, {
    accepted: [{ site_id: A, domain: "a.example.com", attempt: 1, kind: "provision" }],
    skipped: [],
  });
});

Deno.test("a requested site that is not claimable is skipped with the reason, and nothing runs", async () => {
  const active = siteRow({
    site_id: A,
    status_hosting: "active",
    matomo_site_id: 4,
    due: null,
    skip_reason: "ALREADY_ACTIVE",
  });
  const store = new FakeStore([{ claimed: [], site: active }]);
  const shell = freshServer();
  const run = new SiteRun(runContext({ store, shell }), options);
  const batch = await run.claim(A);
  assert.deepEqual(batch.skipped, [{
    site_id: A,
    domain: "example.com",
    status: "active",
    reason: "ALREADY_ACTIVE",
  }]);
  assert.deepEqual(await run.run(), []);
  assert.deepEqual(shell.lines, []);
  assert.equal(store.claims.length, 1, "no draining when nothing was accepted");
});

Deno.test("an unknown site id is reported as NOT_FOUND", async () => {
  const run = new SiteRun(
    runContext({ store: new FakeStore([{ claimed: [], site: null }]) }),
    options,
  );
  const batch = await run.claim(A);
  assert.equal(batch.skipped[0].reason, "NOT_FOUND");
});

Deno.test("the skip reason is the database's own verdict on the site", async () => {
  for (
    const reason of [
      "AT_CAPACITY",
      "NOT_DUE",
      "IN_PROGRESS",
      "FAILED",
      "DNS_NOT_ACTIVE",
      "SERVER_PAUSED",
      "ANALYTICS_PAUSED",
      "ANALYTICS_GAVE_UP",
    ]
  ) {
    const site = siteRow({ site_id: A, skip_reason: reason });
    const run = new SiteRun(runContext({ store: new FakeStore([{ claimed: [], site }]) }), options);
    assert.deepEqual((await run.claim(A)).skipped, [{
      site_id: A,
      domain: "example.com",
      status: "pending",
      reason,
    }], reason);
  }
});

Deno.test("every due site: the first claim asks for up to the concurrency limit", async () => {
  const store = new FakeStore();
  await new SiteRun(runContext({ store }), options).claim();
  assert.deepEqual(store.claims, [{ siteId: undefined, limit: 3 }]);
});

Deno.test("a lane that finishes its site claims the next due one until none is left", async () => {
  const store = new FakeStore([
    { claimed: [job({ site_id: A, domain: "a.example.com" })], site: null },
    { claimed: [job({ site_id: B, domain: "b.example.com" })], site: null },
    { claimed: [job({ site_id: C, domain: "c.example.com" })], site: null },
  ]);
  const run = new SiteRun(runContext({ store }), options);
  await run.claim(A);
  const results = await run.run();
  assert.deepEqual(results.map((r) => [r.domain, r.status]), [
    ["a.example.com", "active"],
    ["b.example.com", "active"],
    ["c.example.com", "active"],
  ]);
  assert.deepEqual(store.claims, [
    { siteId: A, limit: 1 },
    { siteId: undefined, limit: 1 },
    { siteId: undefined, limit: 1 },
    { siteId: undefined, limit: 1 },
  ]);
});

Deno.test("no new site is claimed once the time budget is spent", async () => {
  const clock = new FakeClock();
  const shell = freshServer();
  // Each site creation takes 40 s of the 60 s budget.
  shell.script["site:add:static"] = (c: RemoteCommand): ExecResult => {
    clock.advance(40_000);
    return ok(`Site ${c.line.match(/--domainName='([^']+)'/)?.[1]} has been added.`);
  };
  const store = new FakeStore([
    { claimed: [job({ site_id: A, domain: "a.example.com" })], site: null },
    { claimed: [job({ site_id: B, domain: "b.example.com" })], site: null },
    { claimed: [job({ site_id: C, domain: "c.example.com" })], site: null },
  ]);
  const run = new SiteRun(runContext({ store, shell, now: clock.now }), options);
  await run.claim(A);
  const results = await run.run();
  // a at 40 s → claims b (budget left) → b done at 80 s → stops.
  assert.deepEqual(results.map((r) => r.domain), ["a.example.com", "b.example.com"]);
  assert.equal(store.claims.length, 2);
});

Deno.test("a run whose budget ran out hands what is left to a fresh invocation, once", async () => {
  const clock = new FakeClock();
  const shell = freshServer();
  shell.script["site:add:static"] = (c: RemoteCommand): ExecResult => {
    clock.advance(40_000);
    return ok(`Site ${c.line.match(/--domainName='([^']+)'/)?.[1]} has been added.`);
  };
  const store = new FakeStore([
    { claimed: [job({ site_id: A, domain: "a.example.com" })], site: null },
    { claimed: [job({ site_id: B, domain: "b.example.com" })], site: null },
  ]);
  let continued = 0;
  const run = new SiteRun(runContext({ store, shell, now: clock.now }), {
    ...options,
    continueElsewhere: () => {
      continued++;
      return Promise.resolve();
    },
  });
  await run.claim(A);
  await run.run();
  assert.equal(continued, 1, "the budget ran out with work possibly left: one continuation");

  // A run that simply found nothing more to do asks nobody to go on.
  const idle = new SiteRun(
    runContext({
      store: new FakeStore([
        { claimed: [job({ site_id: A, domain: "a.example.com" })], site: null },
      ]),
    }),
    {
      ...options,
      continueElsewhere: () => {
        continued++;
        return Promise.resolve();
      },
    },
  );
  await idle.claim(A);
  await idle.run();
  assert.equal(continued, 1, "no continuation when no due work was left");

  // A failed continuation is logged, never thrown: the sweeper goes on instead.
  const { log, lines } = memoryLog();
  const failing = new SiteRun(
    runContext({
      store: new FakeStore([
        { claimed: [job({ site_id: A, domain: "a.example.com" })], site: null },
      ]),
      shell,
      now: clock.now,
      log,
    }),
    { ...options, timeBudgetMs: 0, continueElsewhere: () => Promise.reject(new Error("no route")) },
  );
  await failing.claim(A);
  await failing.run();
  assert.ok(lines.some((l) => l.event === "continue_failed"));
});

Deno.test("claimed sites run side by side and the connection is closed once at the end", async () => {
  let running = 0;
  let peak = 0;
  const shell = new FakeShell({
    "server-state": stateAnswer(),
    "site:add:static": (c) =>
      ok(`Site ${c.line.match(/--domainName='([^']+)'/)?.[1]} has been added.`),
    "doc-root-check": ok(),
    "lets-encrypt:install:certificate": ok("Certificate installation was successful."),
  });
  const slowRun = shell.run.bind(shell);
  shell.run = async (command: RemoteCommand) => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((resolve) => setTimeout(resolve, 5));
    running--;
    return await slowRun(command);
  };
  const store = new FakeStore([{
    claimed: [
      job({ site_id: A, domain: "a.example.com" }),
      job({ site_id: B, domain: "b.example.com" }),
      job({ site_id: C, domain: "c.example.com" }),
    ],
    site: null,
  }]);
  const run = new SiteRun(runContext({ store, shell }), options);
  await run.claim();
  const results = await run.run();
  assert.equal(results.length, 3);
  assert.equal(peak, 3);
  assert.equal(shell.closed, 1);
});

Deno.test("an interruption hands running sites back and stops further claims", async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  const shell = freshServer();
  const original = shell.script["site:add:static"] as (c: RemoteCommand) => ExecResult;
  shell.run = async (command: RemoteCommand) => {
    if (command.verb === "site:add:static") await gate;
    shell.lines.push(command.line);
    if (command.verb === "site:add:static") return original(command);
    return (shell.script[command.verb] as ExecResult);
  };
  const store = new FakeStore([
    { claimed: [job({ site_id: A, domain: "a.example.com" })], site: null },
    { claimed: [job({ site_id: B, domain: "b.example.com" })], site: null },
  ]);
  const run = new SiteRun(runContext({ store, shell }), options);
  await run.claim(A);
  const done = run.run();
  await new Promise((resolve) => setTimeout(resolve, 0));
  await run.interrupt("termination");
  assert.equal(store.finishes[0].status, "pending");
  assert.equal(store.finishes[0].errorCode, "INTERRUPTED");
  release();
  await done;
  assert.equal(store.claims.length, 1, "no claim after the interruption");
});

Deno.test("interrupting before the claims ran gives them all back unchanged", async () => {
  const a = job({ site_id: A, domain: "a.example.com" });
  const b = job({ site_id: B, domain: "b.example.com" });
  const store = new FakeStore([{ claimed: [a, b], site: null }]);
  const run = new SiteRun(runContext({ store }), options);
  await run.claim();
  await run.interrupt("termination");
  assert.deepEqual(store.released, [{
    tokens: [a.claim_token, b.claim_token],
    reason: "the edge runtime is shutting down (termination)",
  }]);
  assert.deepEqual(store.finishes, []);
  assert.deepEqual(await run.run(), [], "nothing runs after the interruption");
});

Deno.test("an interrupted running site is handed back with its attempt refunded", async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  const shell = freshServer();
  const run0 = shell.run.bind(shell);
  shell.run = async (command: RemoteCommand) => {
    if (command.verb === "site:add:static") await gate;
    return await run0(command);
  };
  const a = job({ site_id: A, domain: "a.example.com" });
  const store = new FakeStore([{ claimed: [a], site: null }]);
  const run = new SiteRun(runContext({ store, shell }), options);
  await run.claim(A);
  const done = run.run();
  await new Promise((resolve) => setTimeout(resolve, 0));
  await run.interrupt("wall_clock");
  assert.equal(store.finishes.length, 1);
  assert.equal(store.finishes[0].claimToken, a.claim_token);
  assert.equal(store.finishes[0].status, "pending");
  assert.equal(store.finishes[0].refundAttempt, true);
  assert.deepEqual(store.released, [], "nothing was queued");
  release();
  await done;
});

/** A server whose probe fails with `code` for one domain and answers normally for the others. */
function failingFor(domain: string, code: "HOST_KEY_MISMATCH" | "SSH_UNREACHABLE"): FakeShell {
  const shell = freshServer();
  shell.script["server-state"] = (c: RemoteCommand) =>
    c.line.includes(`'${domain}'`) ? new HostingError(code, "the server refused") : stateAnswer();
  return shell;
}

Deno.test("a server-level failure: nothing more is started on that server in this run", async () => {
  const c = job({ site_id: C, domain: "c.example.com" });
  const store = new FakeStore([
    {
      claimed: [
        job({ site_id: A, domain: "a.example.com" }),
        job({ site_id: B, domain: "b.example.com" }),
      ],
      site: null,
    },
    // The pause may not have reached the database: a later claim hands out the same server.
    { claimed: [c], site: null },
  ]);
  const shell = failingFor("a.example.com", "HOST_KEY_MISMATCH");
  const run = new SiteRun(runContext({ store, shell }), options);
  await run.claim();
  const results = await run.run();
  assert.deepEqual(results.map((r) => [r.domain, r.status, r.error?.code ?? null]), [
    ["a.example.com", "pending", "HOST_KEY_MISMATCH"],
    ["b.example.com", "active", null],
  ]);
  assert.deepEqual(store.released, [{
    tokens: [c.claim_token],
    reason: "the run stopped on ssh:root@cp.example.com:22: HOST_KEY_MISMATCH",
  }], "the site claimed later for the failed server is given back, not attempted");
  assert.ok(!shell.lines.some((line) => line.includes("c.example.com")), "c never ran");
  assert.equal(store.finishes.find((f) => f.siteId === A)?.refundAttempt, true);
  assert.equal(shell.closed, 1);
});

Deno.test("after a server-level failure the claims not started yet are released unchanged", async () => {
  const b = job({ site_id: B, domain: "b.example.com" });
  const c = job({ site_id: C, domain: "c.example.com" });
  const store = new FakeStore([
    { claimed: [job({ site_id: A, domain: "a.example.com" })], site: null },
    // A claim answer with more than one job: the second waits in the queue.
    { claimed: [b, c], site: null },
  ]);
  const shell = failingFor("b.example.com", "SSH_UNREACHABLE");
  const run = new SiteRun(runContext({ store, shell }), options);
  await run.claim(A);
  const results = await run.run();
  assert.deepEqual(results.map((r) => [r.domain, r.status]), [
    ["a.example.com", "active"],
    ["b.example.com", "pending"],
  ]);
  assert.deepEqual(store.released, [{
    tokens: [c.claim_token],
    reason: "the run stopped on ssh:root@cp.example.com:22: SSH_UNREACHABLE",
  }]);
  assert.ok(!shell.lines.some((line) => line.includes("c.example.com")), "c never ran");
  // The lane asks once more; the database, which paused the server, answers nothing for it.
  assert.equal(store.claims.length, 3);
});

const listed = (name: string) => ({
  name,
  host: `${name}.example.net`,
  port: 22,
  user: name === "beta" ? "deploy" : "root",
  host_key_fingerprint: "SHA256:n3ExG7bQ5wOkMcn6yM0vP8m2Dk3oH2V1q9nJbI2h5Zc",
  addresses: [],
});

Deno.test("a failing server stops only its own sites: the other server's go on in the same run", async () => {
  const D = "44444444-4444-4444-8444-444444444444";
  const a2 = job({ site_id: B, domain: "a2.example.com", server: listed("alpha") });
  const b2 = job({ site_id: D, domain: "b2.example.com", server: listed("beta") });
  const store = new FakeStore([
    {
      claimed: [
        job({ site_id: A, domain: "a1.example.com", server: listed("alpha") }),
        job({ site_id: C, domain: "b1.example.com", server: listed("beta") }),
      ],
      site: null,
    },
    { claimed: [a2, b2], site: null },
  ]);
  const alpha = failingFor("a1.example.com", "SSH_UNREACHABLE");
  const beta = freshServer();
  const ctx = runContext({ store, shells: { alpha, beta } });
  const run = new SiteRun(ctx, { maxConcurrent: 2, timeBudgetMs: 60_000 });
  await run.claim();
  const results = await run.run();
  assert.deepEqual(
    results.map((r) => [r.domain, r.status]).sort(),
    [["a1.example.com", "pending"], ["b1.example.com", "active"], ["b2.example.com", "active"]],
  );
  assert.deepEqual(store.released, [{
    tokens: [a2.claim_token],
    reason: "the run stopped on server:alpha: SSH_UNREACHABLE",
  }]);
  assert.ok(!alpha.lines.some((line) => line.includes("a2.example.com")), "a2 never ran");
  assert.ok(
    beta.lines.every((line) => /^{? ?sudo -n /.test(line)),
    "beta's login is deploy: sudo",
  );
  assert.ok(!alpha.lines.some((line) => line.startsWith("sudo")), "alpha's is root");
  assert.deepEqual(ctx.opened.sort(), ["alpha", "beta"], "one shell per server per run");
  assert.deepEqual(
    store.health.map((h) => [h.target, h.ok]),
    [["server:alpha", false]],
    "only alpha is paused",
  );
});

Deno.test("a job on a listed server uses its own key and pins its own host key", async () => {
  const store = new FakeStore([{
    claimed: [job({ site_id: A, server: { ...listed("gamma"), addresses: ["203.0.113.9"] } })],
    site: null,
  }]);
  const seen: Array<Record<string, unknown>> = [];
  const shell = freshServer();
  const ctx = runContext({
    store,
    ssh: { ...TEST_SSH, keys: { gamma: { privateKey: "gamma key", passphrase: "p" } } },
  });
  const servers = ctx.servers;
  ctx.servers = {
    serverOf: servers.serverOf,
    shell: (server) => {
      seen.push({ ...server.ssh, health: server.health.target, addresses: server.addresses });
      return shell;
    },
  };
  const run = new SiteRun(ctx, options);
  await run.claim();
  await run.run();
  assert.deepEqual(seen, [{
    host: "gamma.example.net",
    port: 22,
    user: "root",
    hostKeyFingerprint: "SHA256:n3ExG7bQ5wOkMcn6yM0vP8m2Dk3oH2V1q9nJbI2h5Zc",
    privateKey: "gamma key",
    passphrase: "p",
    connectTimeoutMs: 8_000,
    maxChannels: 4,
    health: "server:gamma",
    addresses: ["203.0.113.9"],
  }]);
});

Deno.test("a site without any server (no listed one, no SSH_HOST) is given back, never attempted", async () => {
  const a = job({ site_id: A, domain: "a.example.com" });
  const store = new FakeStore([{ claimed: [a], site: null }]);
  const { implicit: _i, ...noImplicit } = TEST_SSH;
  const shell = freshServer();
  const run = new SiteRun(runContext({ store, shell, ssh: noImplicit }), options);
  await run.claim();
  assert.deepEqual(await run.run(), []);
  assert.deepEqual(store.released.map((r) => r.tokens), [[a.claim_token]]);
  assert.deepEqual(shell.lines, []);
});

Deno.test("a site's own failure does not stop the run", async () => {
  const shell = freshServer();
  shell.script["site:add:static"] = (c: RemoteCommand) =>
    c.line.includes("'a.example.com'")
      ? exit(1, "siteUser: This value already exists.\n")
      : ok(`Site ${c.line.match(/--domainName='([^']+)'/)?.[1]} has been added.\n`);
  const store = new FakeStore([
    { claimed: [job({ site_id: A, domain: "a.example.com" })], site: null },
    { claimed: [job({ site_id: B, domain: "b.example.com" })], site: null },
  ]);
  const run = new SiteRun(runContext({ store, shell }), options);
  await run.claim(A);
  const results = await run.run();
  assert.deepEqual(results.map((r) => [r.domain, r.status]), [
    ["a.example.com", "failed"],
    ["b.example.com", "active"],
  ]);
  assert.deepEqual(store.released, []);
});

Deno.test("a release that fails is logged; the leases end on their own", async () => {
  const store = new FakeStore([{ claimed: [job({ site_id: A })], site: null }]);
  store.release = () => Promise.reject(new Error("hosting_release: connection reset"));
  const { log, lines } = memoryLog();
  const run = new SiteRun(runContext({ store, log }), options);
  await run.claim(A);
  await run.interrupt("termination");
  assert.ok(
    lines.some((l) =>
      l.event === "release_failed" && l.msg === "hosting_release: connection reset"
    ),
    JSON.stringify(lines),
  );
});

Deno.test("a claim that fails while draining ends that lane, logged, without losing the results", async () => {
  const store = new FakeStore([{ claimed: [job({ site_id: A })], site: null }]);
  const { log, lines } = memoryLog();
  const run = new SiteRun(runContext({ store, log }), options);
  await run.claim(A);
  store.claim = () => Promise.reject(new HostingError("DATABASE_ERROR", "hosting_claim: timeout"));
  const results = await run.run();
  assert.equal(results.length, 1);
  assert.ok(
    lines.some((l) => l.event === "claim_failed" && l.code === "DATABASE_ERROR"),
    JSON.stringify(lines),
  );
});

Deno.test("a Matomo pause the database reports on a claim is applied before any call", async () => {
  const analytics = new FakeAnalytics();
  const store = new FakeStore([{
    claimed: [job({ site_id: A })],
    site: null,
    paused: { ssh: null, matomo: "2026-11-26T13:00:00.000Z", servers: {} },
  }]);
  const run = new SiteRun(runContext({ store, analytics }), options);
  await run.claim(A);
  assert.deepEqual(analytics.paused, new Date("2026-11-26T13:00:00Z"));
  const [result] = await run.run();
  assert.deepEqual(analytics.calls, []);
  assert.deepEqual(result.warnings.map((w) => w.code), ["MATOMO_PAUSED"]);
});
