import assert from "node:assert/strict";
import { HostingError } from "./core/errors.ts";
import { loadSettings } from "./core/settings.ts";
import { createHandler, MAX_BODY_BYTES, type Runtime } from "./handler.ts";
import { SiteRun } from "./run/site_run.ts";
import {
  FakeShell,
  FakeStore,
  freshServer,
  job,
  ok,
  runContext,
  siteRow,
} from "./testing/fakes.ts";

const SERVICE_KEY = "service-role-key-for-tests-0123456789";
const SECRET_KEY = "sb_secret_for_tests_abcdefghijklmnop";
const SITE = "0b7e5a7c-5d2a-4a53-9d0e-8f0f6d0c1a11";
const DISPATCH = "dispatch-token-for-tests-0123456789abcdef";

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
      run: new SiteRun(runContext({ store, shell }), { maxConcurrent: 3, timeBudgetMs: 60_000 }),
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

Deno.test("missing settings give 500 listing {setting, message}, never a value, before any claim", async () => {
  const { handler, store } = setup({ ...ENV, MATOMO_URL: undefined, SSH_PORT: "not-a-port" });
  const response = await handler.fetch(post({ site_id: SITE }));
  assert.equal(response.status, 500);
  const body = await response.json();
  assert.equal(body.error.code, "CONFIGURATION");
  assert.equal(body.error.message, "missing or invalid settings: SSH_PORT, MATOMO_URL");
  assert.deepEqual(body.error.settings.map((p: { setting: string }) => p.setting), [
    "SSH_PORT",
    "MATOMO_URL",
  ]);
  assert.deepEqual(body.error.settings[1], { setting: "MATOMO_URL", message: "missing" });
  assert.equal(typeof body.error.settings[0].message, "string");
  assert.ok(!JSON.stringify(body).includes("not-a-port"));
  assert.deepEqual(store.claims, []);
});

Deno.test("settings that do not fit together are a 500 naming the setting", async () => {
  const { handler } = setup({ ...ENV, HOSTING_LEASE_SECONDS: "30" });
  const body = await (await handler.fetch(post({}))).json();
  assert.equal(body.error.code, "CONFIGURATION");
  assert.equal(body.error.message, "missing or invalid settings: HOSTING_LEASE_SECONDS");
});

Deno.test("an unauthenticated caller gets 401 and learns nothing about broken settings", async () => {
  const { handler } = setup({ ...ENV, MATOMO_URL: undefined });
  const response = await handler.fetch(post({}, { apikey: "wrong" }));
  assert.equal(response.status, 401);
  const text = await response.text();
  assert.ok(!text.includes("MATOMO_URL"), text);
  assert.ok(!text.includes("CONFIGURATION"), text);
});

Deno.test("without any platform key every caller gets 401, and nothing about the settings", async () => {
  const { handler, store } = setup({
    ...ENV,
    SUPABASE_SERVICE_ROLE_KEY: undefined,
    SUPABASE_SECRET_KEYS: undefined,
  });
  for (
    const headers of [{ apikey: "" }, { apikey: SERVICE_KEY }, {}] as Array<Record<string, string>>
  ) {
    const response = await handler.fetch(post({}, headers));
    assert.equal(response.status, 401, JSON.stringify(headers));
    const body = await response.json();
    assert.equal(body.error.code, "UNAUTHORIZED");
    assert.equal(body.error.settings, undefined);
    assert.ok(!JSON.stringify(body).includes("SUPABASE_"));
  }
  assert.deepEqual(store.claims, []);
});

// --- body size and type ---------------------------------------------------------------------------

Deno.test("a body declared larger than 64 KiB gets 413 without being read", async () => {
  const { handler, store } = setup();
  assert.equal(MAX_BODY_BYTES, 65_536);
  let pulled = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulled++;
      controller.enqueue(new Uint8Array(1024));
    },
  });
  const response = await handler.fetch(
    new Request("http://localhost/", {
      method: "POST",
      headers: {
        apikey: SECRET_KEY,
        "content-type": "application/json",
        "content-length": String(MAX_BODY_BYTES + 1),
      },
      body,
    }),
  );
  assert.equal(response.status, 413);
  assert.equal((await response.json()).error.code, "BODY_TOO_LARGE");
  assert.ok(pulled <= 1, `pulled ${pulled} chunks`);
  assert.deepEqual(store.claims, []);
});

Deno.test("a streamed body over 64 KiB gets 413, read no further than the limit", async () => {
  const { handler, store } = setup();
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      sent += 16_384;
      controller.enqueue(new TextEncoder().encode(" ".repeat(16_384)));
      if (sent > 10 * MAX_BODY_BYTES) controller.close();
    },
  });
  const response = await handler.fetch(
    new Request("http://localhost/", {
      method: "POST",
      headers: { apikey: SECRET_KEY, "content-type": "application/json" },
      body,
    }),
  );
  assert.equal(response.status, 413);
  assert.ok(sent <= MAX_BODY_BYTES + 3 * 16_384, `read ${sent} bytes`);
  assert.deepEqual(store.claims, []);
});

Deno.test("a body of exactly 64 KiB is read", async () => {
  const { handler } = setup();
  const text = JSON.stringify({ site_id: SITE }).padEnd(MAX_BODY_BYTES, " ");
  assert.equal(text.length, MAX_BODY_BYTES);
  const response = await handler.fetch(post(text));
  assert.equal(response.status, 202);
});

Deno.test("a body that is not sent as JSON gets 415", async () => {
  const { handler, store } = setup();
  for (const type of ["text/plain", "application/x-www-form-urlencoded", "application/jsonx"]) {
    const response = await handler.fetch(post({ site_id: SITE }, {
      apikey: SECRET_KEY,
      "content-type": type,
    }));
    assert.equal(response.status, 415, type);
    assert.equal((await response.json()).error.code, "UNSUPPORTED_MEDIA_TYPE");
  }
  assert.deepEqual(store.claims, []);
});

Deno.test("JSON with a charset is accepted, and an empty body needs no content type", async () => {
  const { handler, store } = setup();
  assert.equal(
    (await handler.fetch(post({}, {
      apikey: SECRET_KEY,
      "content-type": "application/json; charset=utf-8",
    }))).status,
    202,
  );
  const empty = new Request("http://localhost/", {
    method: "POST",
    headers: { apikey: SECRET_KEY },
  });
  assert.equal((await handler.fetch(empty)).status, 202);
  assert.equal(store.claims.length, 2);
});

// --- the dispatch token ---------------------------------------------------------------------------

const WITH_DISPATCH = { ...ENV, HOSTING_DISPATCH_TOKEN: DISPATCH };

Deno.test("the dispatch token starts due work, for a named site or for every due site", async () => {
  const store = new FakeStore([{ claimed: [job({ site_id: SITE })], site: null }]);
  const { handler } = setup(WITH_DISPATCH, store);
  assert.equal((await handler.fetch(post({ site_id: SITE }, { apikey: DISPATCH }))).status, 202);
  assert.equal(
    (await handler.fetch(post({}, { authorization: `Bearer ${DISPATCH}` }))).status,
    202,
  );
  assert.deepEqual(store.claims.slice(0, 2), [
    { siteId: SITE, limit: 1 },
    { siteId: undefined, limit: 3 },
  ]);
});

Deno.test("the dispatch token is refused with 403 for dry_run and for wait, touching nothing", async () => {
  const store = new FakeStore([], { due: [siteRow()], site: siteRow() });
  const { handler } = setup(WITH_DISPATCH, store);
  for (const body of [{ site_id: SITE, dry_run: true }, { dry_run: true }, { wait: true }]) {
    const response = await handler.fetch(post(body, { apikey: DISPATCH }));
    assert.equal(response.status, 403, JSON.stringify(body));
    assert.equal((await response.json()).error.code, "FORBIDDEN");
  }
  assert.deepEqual(store.claims, []);
});

Deno.test("without a configured dispatch token, the token is just a wrong key", async () => {
  const { handler, store } = setup();
  assert.equal((await handler.fetch(post({}, { apikey: DISPATCH }))).status, 401);
  assert.deepEqual(store.claims, []);
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
  assert.equal(body.plans[0].skip_reason, null);
  assert.match(body.plans[0].commands[0], /getent passwd 'example_com'/);
  assert.match(body.plans[0].commands[1], /--siteUserPassword=\*\*\* {3}# only if/);
  assert.ok(!JSON.stringify(body).includes(ENV.MATOMO_TOKEN_AUTH));
  assert.deepEqual(store.claims, []);
  assert.deepEqual(store.finishes, []);
  assert.deepEqual(shell.lines, []);
});

Deno.test("a dry run lists the DNS queries when the check is on, and none when it is off", async () => {
  const store = new FakeStore([], { due: [], site: siteRow({ site_id: SITE }) });
  const on = setup({
    ...ENV,
    HOSTING_SERVER_ADDRESSES: "203.0.113.7",
    HOSTING_DNS_RESOLVER_URL: "https://dns.example.net/dns-query",
  }, store);
  const body = await (await on.handler.fetch(post({ site_id: SITE, dry_run: true }))).json();
  assert.deepEqual(
    body.plans[0].dns_queries.map((q: { url: string }) => q.url),
    [
      "https://dns.example.net/dns-query?name=example.com&type=A",
      "https://dns.example.net/dns-query?name=example.com&type=AAAA",
      "https://dns.example.net/dns-query?name=www.example.com&type=A",
      "https://dns.example.net/dns-query?name=www.example.com&type=AAAA",
    ],
  );
  const off = setup(ENV, store);
  const plain = await (await off.handler.fetch(post({ site_id: SITE, dry_run: true }))).json();
  assert.deepEqual(plain.plans[0].dns_queries, []);
});

Deno.test("a dry run plans a site on its listed server: its login, its addresses' DNS check, its name", async () => {
  const site = siteRow({
    site_id: SITE,
    server: "nbg-1",
    server_user: "deploy",
    server_addresses: ["203.0.113.20"],
  });
  const { handler } = setup(ENV, new FakeStore([], { due: [], site }));
  const body = await (await handler.fetch(post({ site_id: SITE, dry_run: true }))).json();
  assert.equal(body.plans[0].server, "nbg-1");
  assert.ok(
    body.plans[0].commands.every((c: string) => /^{? ?sudo -n /.test(c)),
    "deploy is not root: every command through sudo -n",
  );
  assert.equal(body.plans[0].dns_queries.length, 4, "its public address turns the DNS check on");
  const bare = siteRow({
    site_id: SITE,
    server: "fra-1",
    server_user: "root",
    server_addresses: [],
  });
  const off = setup(ENV, new FakeStore([], { due: [], site: bare }));
  const plain = await (await off.handler.fetch(post({ site_id: SITE, dry_run: true }))).json();
  assert.equal(plain.plans[0].server, "fra-1");
  assert.deepEqual(plain.plans[0].dns_queries, [], "no addresses: no DNS check for that server");
  assert.ok(!plain.plans[0].commands.some((c: string) => c.includes("sudo")));
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

Deno.test("a dry run for a named site that would be skipped still returns its plan, with the reason", async () => {
  const active = siteRow({
    site_id: SITE,
    status_hosting: "active",
    matomo_site_id: 4,
    due: null,
    skip_reason: "ALREADY_ACTIVE",
  });
  const store = new FakeStore([], { due: [], site: active });
  const shell = freshServer();
  const { handler } = setup(ENV, store, shell);
  const body = await (await handler.fetch(post({ site_id: SITE, dry_run: true }))).json();
  assert.equal(body.plans.length, 1);
  assert.equal(body.plans[0].site_id, SITE);
  assert.equal(body.plans[0].skip_reason, "ALREADY_ACTIVE");
  assert.equal(body.plans[0].commands.length, 4);
  assert.deepEqual(body.plans[0].matomo_calls, []);
  assert.deepEqual(body.skipped, []);
  assert.deepEqual(store.claims, []);
  assert.deepEqual(shell.lines, []);
});

Deno.test("a dry run for an unknown site has no plan and says NOT_FOUND", async () => {
  const { handler } = setup(ENV, new FakeStore([], { due: [], site: null }));
  const body = await (await handler.fetch(post({ site_id: SITE, dry_run: true }))).json();
  assert.deepEqual(body, {
    dry_run: true,
    plans: [],
    skipped: [{ site_id: SITE, domain: null, status: null, reason: "NOT_FOUND" }],
  });
});

Deno.test("a dry run without a site plans what is due", async () => {
  const store = new FakeStore([], {
    due: [
      siteRow({ site_id: SITE }),
      siteRow({ site_id: "1f0c1a2b-4d5e-4f60-8a7b-9c0d1e2f3a4b", domain: "b.example.com" }),
    ],
    site: null,
  });
  const { handler } = setup(ENV, store);
  const body = await (await handler.fetch(post({ dry_run: true }))).json();
  assert.deepEqual(body.plans.map((p: { domain: string }) => p.domain), [
    "example.com",
    "b.example.com",
  ]);
  assert.deepEqual(body.skipped, []);
});

Deno.test("the runtime's end hands the running sites back through the handler", async () => {
  const shell = freshServer();
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  const run0 = shell.run.bind(shell);
  shell.run = async (command) => {
    if (command.verb === "site:add:static") await gate;
    return await run0(command);
  };
  const store = new FakeStore([{ claimed: [job({ site_id: SITE })], site: null }]);
  const { handler, background } = setup(ENV, store, shell);
  assert.equal((await handler.fetch(post({ site_id: SITE }))).status, 202);
  await new Promise((resolve) => setTimeout(resolve, 0));
  await handler.interrupt("termination");
  assert.equal(store.finishes[0].status, "pending");
  assert.equal(store.finishes[0].errorCode, "INTERRUPTED");
  release();
  await background[0];
});

// --- removal ---------------------------------------------------------------------------------

Deno.test("the dispatch token cannot ask for a removal (403), and nothing is asked or claimed", async () => {
  const store = new FakeStore();
  const { handler } = setup(WITH_DISPATCH, store);
  const response = await handler.fetch(
    post({ site_id: SITE, action: "deprovision" }, { apikey: DISPATCH }),
  );
  assert.equal(response.status, 403);
  assert.equal((await response.json()).error.code, "FORBIDDEN");
  assert.deepEqual(store.removalRequests, []);
  assert.deepEqual(store.claims, []);
});

Deno.test("a removal is asked for first, then claimed and run like any due work", async () => {
  const removal = job({ site_id: SITE, kind: "remove", matomo_site_id: 5, delete_analytics: true });
  const store = new FakeStore([{ claimed: [removal], site: null }]);
  const shell = new FakeShell({ "site:delete": ok("Site example.com has been deleted.\n") });
  const { handler } = setup(ENV, store, shell);
  const response = await handler.fetch(
    post({ site_id: SITE, action: "deprovision", delete_analytics: true, wait: true }),
  );
  assert.equal(response.status, 200);
  assert.deepEqual(store.removalRequests, [{ siteId: SITE, deleteAnalytics: true }]);
  assert.deepEqual(store.claims[0], { siteId: SITE, limit: 1 });
  const { results } = await response.json();
  assert.equal(results[0].status, "removed");
  assert.deepEqual(shell.verbs, ["site:delete"]);
});

Deno.test("a removal of a site a worker is provisioning answers 409 and claims nothing", async () => {
  const store = new FakeStore();
  store.removalAnswer = {
    outcome: "in_progress",
    site: siteRow({
      site_id: SITE,
      status_hosting: "provisioning",
      lease_until: "2026-11-26T12:09:00Z",
    }),
  };
  const { handler } = setup(ENV, store);
  const response = await handler.fetch(post({ site_id: SITE, action: "deprovision" }));
  assert.equal(response.status, 409);
  const { error } = await response.json();
  assert.equal(error.code, "IN_PROGRESS");
  assert.match(error.message, /example\.com is being worked on until 2026-11-26T12:09:00Z/);
  assert.deepEqual(store.claims, []);
});

Deno.test("a dry run of a removal shows site:delete and asks for nothing", async () => {
  const store = new FakeStore([], {
    due: [],
    site: siteRow({ site_id: SITE, status_hosting: "active", due: null, matomo_site_id: 5 }),
  });
  const { handler } = setup(ENV, store);
  const response = await handler.fetch(
    post({ site_id: SITE, action: "deprovision", delete_analytics: true, dry_run: true }),
  );
  const { plans } = await response.json();
  assert.equal(plans[0].work, "remove");
  assert.match(plans[0].commands[0], /^clpctl site:delete --domainName='example\.com' --force/);
  assert.equal(plans[0].matomo_calls[0].body, "token_auth=***&idSite=5");
  assert.equal(plans[0].skip_reason, null);
  assert.deepEqual(store.removalRequests, []);
  assert.deepEqual(store.claims, []);
});
