import assert from "node:assert/strict";
import { createClient } from "@supabase/supabase-js";
import { isHostingError } from "../core/errors.ts";
import { createSupabaseStore, type Targets } from "./store.ts";

const KEY = "sb_secret_store_test_key_0123456789";
const limits = { maxConcurrent: 3, leaseSeconds: 75, maxAttempts: 8, analyticsLeaseSeconds: 34 };
const TARGETS = {
  ssh: { target: "ssh:root@cp.example.com:22", credential: "sha256:0011223344556677" },
  sshKeys: { "*": "sha256:0011223344556677", "fra-1": "sha256:1122334455667788" },
  matomo: { target: "matomo:https://analytics.example.com", credential: "sha256:8899aabbccddeeff" },
};

function storeWith(
  answer: (url: string, body: unknown) => Response,
  targets: Targets = TARGETS,
) {
  const calls: Array<{ url: string; body: unknown; apikey: string | null }> = [];
  const fetchFn = (async (input: string | URL | Request, init?: RequestInit) => {
    const request = new Request(input, init);
    const body = await request.json();
    calls.push({ url: request.url, body, apikey: request.headers.get("apikey") });
    return answer(request.url, body);
  }) as typeof fetch;
  const client = createClient("http://127.0.0.1:54321", KEY, {
    auth: { persistSession: false, autoRefreshToken: false },
    global: { fetch: fetchFn },
  });
  return { store: createSupabaseStore(client, limits, 1000, targets), calls };
}

const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

/** A job as hosting_claim answers it, without the fields an older database leaves out. */
const JOB_ROW = {
  kind: "provision",
  site_id: "0b7e5a7c-5d2a-4a53-9d0e-8f0f6d0c1a11",
  domain: "example.com",
  attempt: 1,
  claim_token: "f359c363-b32b-4dbb-b191-4d95129a7b29",
  lease_until: "2026-11-26T12:10:00+00:00",
  site_user: null,
  doc_root: null,
  matomo_site_id: null,
};

Deno.test("claim calls hosting_claim with the limits, targets and credential digests and reads the jobs", async () => {
  const job = JOB_ROW;
  const { store, calls } = storeWith(() => json({ claimed: [job], site: null }));
  const answer = await store.claim(undefined, 3);
  // A job without a server is the implicit server's (an older database answers so too).
  assert.deepEqual(answer.claimed, [{ ...job, analytics_failures: 0, server: null }]);
  // An answer without the pause fields means nothing is paused.
  assert.deepEqual(answer.paused, { ssh: null, matomo: null, servers: {} });
  assert.equal(calls[0].url, "http://127.0.0.1:54321/rest/v1/rpc/hosting_claim");
  assert.equal(calls[0].apikey, KEY);
  assert.deepEqual(calls[0].body, {
    p_site_id: null,
    p_limit: 3,
    p_max_concurrent: 3,
    p_lease_seconds: 75,
    p_max_attempts: 8,
    p_analytics_lease_seconds: 34,
    p_ssh_target: "ssh:root@cp.example.com:22",
    p_ssh_credential: "sha256:0011223344556677",
    p_matomo_target: "matomo:https://analytics.example.com",
    p_matomo_credential: "sha256:8899aabbccddeeff",
    p_ssh_keys: { "*": "sha256:0011223344556677", "fra-1": "sha256:1122334455667788" },
    p_implicit_server: true,
  });
});

Deno.test("claim without an implicit server says so, and reads a job's listed server", async () => {
  const server = {
    name: "fra-1",
    host: "10.0.0.1",
    port: 2222,
    user: "deploy",
    host_key_fingerprint: "SHA256:n3ExG7bQ5wOkMcn6yM0vP8m2Dk3oH2V1q9nJbI2h5Zc",
    addresses: ["203.0.113.1", "2001:db8::1"],
  };
  const { ssh: _implicit, ...targets } = TARGETS;
  const { store, calls } = storeWith(() =>
    json({
      claimed: [{ ...JOB_ROW, server }],
      site: null,
      paused: { ssh: null, matomo: null, servers: { "nbg-2": "2026-11-26T12:05:00+00:00" } },
    }), targets);
  const answer = await store.claim(undefined, 1);
  assert.deepEqual(answer.claimed[0].server, server);
  assert.deepEqual(answer.paused.servers, { "nbg-2": "2026-11-26T12:05:00+00:00" });
  const body = calls[0].body as Record<string, unknown>;
  assert.equal(body.p_ssh_target, null);
  assert.equal(body.p_implicit_server, false);
});

Deno.test("claim reads the pauses the database reports and a named site's skip reason", async () => {
  const site = {
    site_id: "0b7e5a7c-5d2a-4a53-9d0e-8f0f6d0c1a11",
    domain: "example.com",
    status_dns: "active",
    status_hosting: "pending",
    attempt: 2,
    site_user: null,
    doc_root: null,
    matomo_site_id: null,
    error: "SSH_TIMEOUT: no answer",
    lease_until: null,
    next_attempt_at: "2026-11-26T12:05:00+00:00",
    updated_at: "2026-11-26T12:00:00+00:00",
    due: null,
    skip_reason: "SERVER_PAUSED",
  };
  const { store, calls } = storeWith(() =>
    json({
      claimed: [],
      site,
      paused: { ssh: "2026-11-26T12:05:00+00:00", matomo: null },
    })
  );
  const answer = await store.claim(site.site_id, 1);
  assert.deepEqual(answer, {
    claimed: [],
    site,
    paused: { ssh: "2026-11-26T12:05:00+00:00", matomo: null, servers: {} },
  });
  assert.equal((calls[0].body as Record<string, unknown>).p_site_id, site.site_id);
  assert.equal((calls[0].body as Record<string, unknown>).p_limit, 1);
});

Deno.test("finish sends every field of the outcome", async () => {
  const { store, calls } = storeWith(() => json({ applied: true, site: {} }));
  const answer = await store.finish({
    siteId: "s",
    claimToken: "t",
    status: "pending",
    errorCode: "DNS_NOT_READY",
    errorMessage: "not yet",
    nextAttemptAt: new Date("2026-11-26T12:01:00Z"),
    durationMs: 1234.6,
  });
  assert.deepEqual(answer, { applied: true });
  assert.deepEqual(calls[0].body, {
    p_site_id: "s",
    p_claim_token: "t",
    p_status: "pending",
    p_site_user: null,
    p_doc_root: null,
    p_matomo_site_id: null,
    p_error_code: "DNS_NOT_READY",
    p_error_message: "not yet",
    p_next_attempt_at: "2026-11-26T12:01:00.000Z",
    p_duration_ms: 1235,
    p_event_code: null,
    p_refund_attempt: false,
    p_analytics_failed: false,
  });
});

Deno.test("finish gives an attempt back and marks a failed Matomo registration when told", async () => {
  const { store, calls } = storeWith(() => json({ applied: true }));
  await store.finish({
    siteId: "s",
    claimToken: "t",
    status: "pending",
    errorCode: "HOST_KEY_MISMATCH",
    errorMessage: "the server's host key is not the configured one",
    nextAttemptAt: new Date("2026-11-26T12:01:00Z"),
    durationMs: 10,
    refundAttempt: true,
  });
  const body = calls[0].body as Record<string, unknown>;
  assert.equal(body.p_refund_attempt, true);
  assert.equal(body.p_analytics_failed, false);
  assert.equal(body.p_next_attempt_at, "2026-11-26T12:01:00.000Z");
});

Deno.test("finish sends 'never' as infinity: an active site whose analytics retries are used up", async () => {
  const { store, calls } = storeWith(() => json({ applied: true }));
  await store.finish({
    siteId: "s",
    claimToken: "t",
    status: "active",
    siteUser: "example_com",
    docRoot: "/home/example_com/htdocs/example.com",
    nextAttemptAt: "never",
    analyticsFailed: true,
    eventCode: "ANALYTICS_GAVE_UP",
    durationMs: 10,
  });
  assert.deepEqual(calls[0].body, {
    p_site_id: "s",
    p_claim_token: "t",
    p_status: "active",
    p_site_user: "example_com",
    p_doc_root: "/home/example_com/htdocs/example.com",
    p_matomo_site_id: null,
    p_error_code: null,
    p_error_message: null,
    p_next_attempt_at: "infinity",
    p_duration_ms: 10,
    p_event_code: "ANALYTICS_GAVE_UP",
    p_refund_attempt: false,
    p_analytics_failed: true,
  });
});

Deno.test("recordEvent passes the claim token and the lease, so the event renews the lease", async () => {
  const { store, calls } = storeWith(() => json(17));
  await store.recordEvent({
    siteId: "s",
    attempt: 2,
    step: "certificate",
    outcome: "skipped",
    code: "CERTIFICATE_VALID",
    message: "served until 2027-01-01",
    durationMs: 3.4,
    claimToken: "t",
  });
  assert.equal(calls[0].url, "http://127.0.0.1:54321/rest/v1/rpc/hosting_record_event");
  assert.deepEqual(calls[0].body, {
    p_site_id: "s",
    p_attempt: 2,
    p_step: "certificate",
    p_outcome: "skipped",
    p_code: "CERTIFICATE_VALID",
    p_message: "served until 2027-01-01",
    p_duration_ms: 3,
    p_claim_token: "t",
    p_lease_seconds: 75,
  });
});

Deno.test("recordEvent without a claim token renews nothing", async () => {
  const { store, calls } = storeWith(() => json(18));
  await store.recordEvent({ siteId: "s", attempt: 1, step: "site", outcome: "ok" });
  assert.deepEqual(calls[0].body, {
    p_site_id: "s",
    p_attempt: 1,
    p_step: "site",
    p_outcome: "ok",
    p_code: null,
    p_message: null,
    p_duration_ms: null,
    p_claim_token: null,
    p_lease_seconds: null,
  });
});

Deno.test("release hands back claim tokens with a reason and returns how many were given back", async () => {
  const { store, calls } = storeWith(() => json(2));
  assert.equal(await store.release(["t1", "t2"], "the run stopped: SSH_TIMEOUT on the server"), 2);
  assert.equal(calls[0].url, "http://127.0.0.1:54321/rest/v1/rpc/hosting_release");
  assert.deepEqual(calls[0].body, {
    p_claim_tokens: ["t1", "t2"],
    p_reason: "the run stopped: SSH_TIMEOUT on the server",
  });
});

Deno.test("reportHealth sends the target's failure and reads until when it is paused", async () => {
  const { store, calls } = storeWith(() =>
    json({ paused_until: "2026-11-26T13:00:00+00:00", failures: 1 })
  );
  const answer = await store.reportHealth({
    ...TARGETS.matomo,
    ok: false,
    code: "MATOMO_AUTH",
    message: "SitesManager.getSitesIdFromSiteUrl: HTTP 401",
    baseSeconds: 3_600,
    maxSeconds: 86_400,
    minSeconds: 3_600,
  });
  assert.deepEqual(answer, { pausedUntil: new Date("2026-11-26T13:00:00Z") });
  assert.equal(calls[0].url, "http://127.0.0.1:54321/rest/v1/rpc/hosting_report_health");
  assert.deepEqual(calls[0].body, {
    p_target: "matomo:https://analytics.example.com",
    p_credential: "sha256:8899aabbccddeeff",
    p_ok: false,
    p_code: "MATOMO_AUTH",
    p_message: "SitesManager.getSitesIdFromSiteUrl: HTTP 401",
    p_base_seconds: 3_600,
    p_max_seconds: 86_400,
    p_min_seconds: 3_600,
  });
});

Deno.test("a healthy report clears the pause; the floor defaults to zero", async () => {
  const { store, calls } = storeWith(() => json({ paused_until: null, failures: 0 }));
  const answer = await store.reportHealth({
    ...TARGETS.ssh,
    ok: true,
    baseSeconds: 60,
    maxSeconds: 900,
  });
  assert.deepEqual(answer, { pausedUntil: null });
  assert.deepEqual(calls[0].body, {
    p_target: "ssh:root@cp.example.com:22",
    p_credential: "sha256:0011223344556677",
    p_ok: true,
    p_code: null,
    p_message: null,
    p_base_seconds: 60,
    p_max_seconds: 900,
    p_min_seconds: 0,
  });
});

Deno.test("peek calls hosting_peek read-only with the site and the limit", async () => {
  const { store, calls } = storeWith(() => json({ due: [], site: null }));
  assert.deepEqual(await store.peek(undefined, 3), { due: [], site: null });
  assert.equal(calls[0].url, "http://127.0.0.1:54321/rest/v1/rpc/hosting_peek");
  assert.deepEqual(calls[0].body, { p_site_id: null, p_limit: 3 });
});

Deno.test("a PostgREST error becomes DATABASE_ERROR with its code and message", async () => {
  const { store } = storeWith(() =>
    json({
      code: "22023",
      message: "hosting_finish: a retry needs p_next_attempt_at",
      details: null,
      hint: null,
    }, 400)
  );
  try {
    await store.finish({ siteId: "s", claimToken: "t", status: "active", durationMs: 1 });
    assert.fail("expected an error");
  } catch (error) {
    assert.ok(isHostingError(error));
    assert.equal(error.code, "DATABASE_ERROR");
    assert.match(error.message, /^hosting_finish: 22023 hosting_finish: a retry needs/);
  }
});

Deno.test("an answer of the wrong shape is refused rather than trusted", async () => {
  const { store } = storeWith(() => json({ claimed: [{ site_id: 1 }], site: null }));
  await assert.rejects(
    () => store.claim("x", 1),
    (error) => isHostingError(error) && error.code === "DATABASE_ERROR",
  );
});
