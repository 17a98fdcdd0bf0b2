import assert from "node:assert/strict";
import { HostingError } from "./core/errors.ts";
import { loadSettings } from "./core/settings.ts";
import { createHandler, type Runtime } from "./handler.ts";
import { Worker } from "./run/worker.ts";
import { context, FakeShell, FakeStore, freshServer, job, siteRow } from "./testing/fakes.ts";

const SERVICE_KEY = "service-role-key-for-tests-0123456789";
const SECRET_KEY = "sb_secret_for_tests_abcdefghijklmnop";
const SITE = "0b7e5a7c-5d2a-4a53-9d0e-8f0f6d0c1a11";

const ENV = {
  SUPABASE_URL: "http://127.0.0.1:54321",
  SUPABASE_SERVICE_ROLE_KEY: SERVICE_KEY,
  SUPABASE_SECRET_KEYS: JSON.stringify({ default: SECRET_KEY }),
  SSH_HOST: "cloudpanel.example.net",
  SSH_PRIVATE_KEY:
    "-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXktdjEAAAAA\\n-----END OPENSSH PRIVATE KEY-----",
  SSH_HOST_KEY_FINGERPRINT: "SHA256:n3ExG7bQ5wOkMcn6yM0vP8m2Dk3oH2V1q9nJbI2h5Zc",
  MATOMO_URL: "https://analytics.example.com",
  MATOMO_TOKEN_AUTH: "0123456789abcdef0123456789abcdef",
};

function setup(
  env: Record<string, string | undefined> = ENV,
  store = new FakeStore(),
  shell: FakeShell = freshServer(),
) {
  const background: Promise<unknown>[] = [];
  const runtime: Runtime = {
    loaded: loadSettings(env),
    createRun: () => ({
      worker: new Worker(context({ store, shell }), { maxConcurrent: 3, timeBudgetMs: 60_000 }),
      store,
    }),
    waitUntil: (work) => background.push(work),
    log: () => {},
    redact: (text) => text,
    now: () => new Date("2026-11-26T12:00:00Z"),
  };
  return { handler: createHandler(runtime), store, shell, background };
}

const post = (body: unknown, headers: Record<string, string> = { apikey: SECRET_KEY }) =>
  new Request("http://localhost/hosting-automator", {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });

Deno.test("methods other than POST get 405 with Allow: POST", async () => {
  const { handler } = setup();
  const response = await handler.fetch(new Request("http://localhost/", { method: "GET" }));
  assert.equal(response.status, 405);
  assert.equal(response.headers.get("allow"), "POST");
  assert.equal((await response.json()).error.code, "METHOD_NOT_ALLOWED");
});

Deno.test("a call without a key gets 401 and nothing is claimed", async () => {
  const { handler, store } = setup();
  const response = await handler.fetch(post({ site_id: SITE }, {}));
  assert.equal(response.status, 401);
  assert.equal((await response.json()).error.code, "UNAUTHORIZED");
  assert.deepEqual(store.claims, []);
});

Deno.test("a wrong key, or the anon key, gets 401", async () => {
  const { handler, store } = setup();
  const wrong: Array<Record<string, string>> = [
    { apikey: "sb_publishable_xyz" },
    { authorization: "Bearer nope" },
  ];
  for (const headers of wrong) {
    assert.equal((await handler.fetch(post({}, headers))).status, 401);
  }
  assert.deepEqual(store.claims, []);
});

Deno.test("the service-role key as Bearer and a secret key as apikey are both accepted", async () => {
  const { handler, store } = setup();
  assert.equal(
    (await handler.fetch(post({}, { authorization: `Bearer ${SERVICE_KEY}` }))).status,
    202,
  );
  assert.equal((await handler.fetch(post({}, { apikey: SECRET_KEY }))).status, 202);
  assert.equal(store.claims.length, 2);
});

Deno.test("missing settings give 500 naming them, never showing a value, before any claim", async () => {
  const { handler, store } = setup({ ...ENV, SSH_HOST: undefined, SSH_PORT: "not-a-port" });
  const response = await handler.fetch(post({ site_id: SITE }));
  assert.equal(response.status, 500);
  const body = await response.json();
  assert.equal(body.error.code, "CONFIGURATION");
  assert.match(body.error.message, /SSH_HOST/);
  assert.match(body.error.message, /SSH_PORT/);
  assert.ok(!JSON.stringify(body).includes("not-a-port"));
  assert.deepEqual(store.claims, []);
});

Deno.test("without any platform key the function refuses everyone with 500", async () => {
  const { handler } = setup({
    ...ENV,
    SUPABASE_SERVICE_ROLE_KEY: undefined,
    SUPABASE_SECRET_KEYS: undefined,
  });
  const response = await handler.fetch(post({}, { apikey: "" }));
  assert.equal(response.status, 500);
  assert.match((await response.json()).error.settings[0], /SUPABASE_SERVICE_ROLE_KEY/);
});

Deno.test("a bad body gets 400 with the validation issues and nothing is claimed", async () => {
  const { handler, store } = setup();
  for (const body of [{ site_id: "not-a-uuid" }, { siteid: SITE }, "{oops", [1, 2]]) {
    const response = await handler.fetch(post(body));
    assert.equal(response.status, 400, JSON.stringify(body));
    const answer = await response.json();
    assert.equal(answer.error.code, "INVALID_BODY");
    assert.ok(answer.error.issues.length > 0);
  }
  assert.deepEqual(store.claims, []);
});

Deno.test("without wait: 202 with what was accepted, the work going on in the background", async () => {
  const store = new FakeStore([{ claimed: [job({ site_id: SITE })], site: null }]);
  const { handler, background } = setup(ENV, store);
  const response = await handler.fetch(post({ site_id: SITE }));
  assert.equal(response.status, 202);
  assert.deepEqual(await response.json(), {
    accepted: [{ site_id: SITE, domain: "example.com", attempt: 1, kind: "provision" }],
    skipped: [],
  });
  assert.equal(background.length, 1);
  await background[0];
  assert.equal(store.finishes[0].status, "active");
});

Deno.test("a Database Webhook payload provisions its record", async () => {
  const store = new FakeStore([{ claimed: [job({ site_id: SITE })], site: null }]);
  const { handler } = setup(ENV, store);
  const response = await handler.fetch(post({
    type: "UPDATE",
    table: "sites",
    schema: "public",
    record: { id: SITE, domain: "example.com", status_dns: "active" },
    old_record: { id: SITE, status_dns: "pending" },
    wait: true,
  }));
  assert.equal(response.status, 200);
  assert.deepEqual(store.claims[0], { siteId: SITE, limit: 1 });
});

Deno.test("with wait: 200 and the full per-site results", async () => {
  const store = new FakeStore([{ claimed: [job({ site_id: SITE })], site: null }]);
  const { handler } = setup(ENV, store);
  const response = await handler.fetch(post({ site_id: SITE, wait: true }));
  assert.equal(response.status, 200);
  const { results, skipped } = await response.json();
  assert.deepEqual(skipped, []);
  assert.equal(results.length, 1);
  const [site] = results;
  assert.deepEqual(Object.keys(site).sort(), [
    "attempt",
    "doc_root",
    "domain",
    "duration_ms",
    "error",
    "matomo_site_id",
    "next_attempt_at",
    "site_id",
    "status",
    "warnings",
  ]);
  assert.equal(site.status, "active");
  assert.equal(site.doc_root, "/home/example_com/htdocs/example.com");
});

Deno.test("a dry run plans commands with the password masked and changes nothing", async () => {
  const store = new FakeStore([], { due: [siteRow({ site_id: SITE })], site: siteRow() });
  const shell = freshServer();
  const { handler } = setup(ENV, store, shell);
  const response = await handler.fetch(post({ site_id: SITE, dry_run: true }));
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.equal(body.dry_run, true);
  assert.equal(body.plans[0].site_user, "example_com");
  assert.match(body.plans[0].commands[0], /--siteUserPassword=\*\*\*$/);
  assert.ok(!JSON.stringify(body).includes(ENV.MATOMO_TOKEN_AUTH));
  assert.deepEqual(store.claims, []);
  assert.deepEqual(store.finishes, []);
  assert.deepEqual(shell.lines, []);
});

Deno.test("a database failure while claiming answers 503", async () => {
  const store = new FakeStore();
  store.claim = () =>
    Promise.reject(new HostingError("DATABASE_ERROR", "hosting_claim: fetch failed"));
  const { handler } = setup(ENV, store);
  const response = await handler.fetch(post({}));
  assert.equal(response.status, 503);
  assert.equal((await response.json()).error.code, "DATABASE_ERROR");
});
