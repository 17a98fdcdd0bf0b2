import assert from "node:assert/strict";
import type { ExecResult, RemoteCommand } from "../core/cloudpanel.ts";
import {
  context,
  FakeClock,
  FakeShell,
  FakeStore,
  freshServer,
  job,
  ok,
  siteRow,
} from "../testing/fakes.ts";
import { Worker } from "./worker.ts";

const options = { maxConcurrent: 3, timeBudgetMs: 60_000 };
const A = "11111111-1111-4111-8111-111111111111";
const B = "22222222-2222-4222-8222-222222222222";
const C = "33333333-3333-4333-8333-333333333333";

Deno.test("a requested site is claimed alone and reported as accepted", async () => {
  const store = new FakeStore([{
    claimed: [job({ site_id: A, domain: "a.example.com" })],
    site: null,
  }]);
  const worker = new Worker(context({ store }), options);
  const batch = await worker.claim(A);
  assert.deepEqual(store.claims, [{ siteId: A, limit: 1 }]);
  assert.deepEqual(batch, {
    accepted: [{ site_id: A, domain: "a.example.com", attempt: 1, kind: "provision" }],
    skipped: [],
  });
});

Deno.test("a requested site that is not claimable is skipped with the reason, and nothing runs", async () => {
  const active = siteRow({ site_id: A, status_hosting: "active", matomo_site_id: 4, due: null });
  const store = new FakeStore([{ claimed: [], site: active }]);
  const shell = freshServer();
  const worker = new Worker(context({ store, shell }), options);
  const batch = await worker.claim(A);
  assert.deepEqual(batch.skipped, [{
    site_id: A,
    domain: "example.com",
    status: "active",
    reason: "ALREADY_ACTIVE",
  }]);
  assert.deepEqual(await worker.run(), []);
  assert.deepEqual(shell.lines, []);
  assert.equal(store.claims.length, 1, "no draining when nothing was accepted");
});

Deno.test("an unknown site id is reported as NOT_FOUND", async () => {
  const worker = new Worker(
    context({ store: new FakeStore([{ claimed: [], site: null }]) }),
    options,
  );
  const batch = await worker.claim(A);
  assert.equal(batch.skipped[0].reason, "NOT_FOUND");
});

Deno.test("a due site blocked by the concurrency limit is reported as AT_CAPACITY", async () => {
  const worker = new Worker(
    context({ store: new FakeStore([{ claimed: [], site: siteRow({ site_id: A }) }]) }),
    options,
  );
  assert.equal((await worker.claim(A)).skipped[0].reason, "AT_CAPACITY");
});

Deno.test("every due site: the first claim asks for up to the concurrency limit", async () => {
  const store = new FakeStore();
  await new Worker(context({ store }), options).claim();
  assert.deepEqual(store.claims, [{ siteId: undefined, limit: 3 }]);
});

Deno.test("a lane that finishes its site claims the next due one until none is left", async () => {
  const store = new FakeStore([
    { claimed: [job({ site_id: A, domain: "a.example.com" })], site: null },
    { claimed: [job({ site_id: B, domain: "b.example.com" })], site: null },
    { claimed: [job({ site_id: C, domain: "c.example.com" })], site: null },
  ]);
  const worker = new Worker(context({ store }), options);
  await worker.claim(A);
  const results = await worker.run();
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
  const worker = new Worker(context({ store, shell, now: clock.now }), options);
  await worker.claim(A);
  const results = await worker.run();
  // a at 40 s → claims b (budget left) → b done at 80 s → stops.
  assert.deepEqual(results.map((r) => r.domain), ["a.example.com", "b.example.com"]);
  assert.equal(store.claims.length, 2);
});

Deno.test("claimed sites run side by side and the connection is closed once at the end", async () => {
  let running = 0;
  let peak = 0;
  const shell = new FakeShell({
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
  const worker = new Worker(context({ store, shell }), options);
  await worker.claim();
  const results = await worker.run();
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
  const worker = new Worker(context({ store, shell }), options);
  await worker.claim(A);
  const done = worker.run();
  await new Promise((resolve) => setTimeout(resolve, 0));
  await worker.interrupt("termination");
  assert.equal(store.finishes[0].status, "pending");
  assert.equal(store.finishes[0].errorCode, "INTERRUPTED");
  release();
  await done;
  assert.equal(store.claims.length, 1, "no claim after the interruption");
});
