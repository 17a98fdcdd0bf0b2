import assert from "node:assert/strict";
import { createClient } from "@supabase/supabase-js";
import { isHostingError } from "../core/errors.ts";
import { createSupabaseStore } from "./store.ts";

const KEY = "sb_secret_store_test_key_0123456789";
const limits = { maxConcurrent: 3, leaseSeconds: 600, maxAttempts: 8, analyticsLeaseSeconds: 60 };

function storeWith(answer: (url: string, body: unknown) => Response) {
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
  return { store: createSupabaseStore(client, limits, 1000), calls };
}

const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

Deno.test("claim calls hosting_claim with the configured limits and reads the jobs", async () => {
  const job = {
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
  const { store, calls } = storeWith(() => json({ claimed: [job], site: null }));
  const answer = await store.claim(undefined, 3);
  assert.deepEqual(answer.claimed, [job]);
  assert.equal(calls[0].url, "http://127.0.0.1:54321/rest/v1/rpc/hosting_claim");
  assert.equal(calls[0].apikey, KEY);
  assert.deepEqual(calls[0].body, {
    p_site_id: null,
    p_limit: 3,
    p_max_concurrent: 3,
    p_lease_seconds: 600,
    p_max_attempts: 8,
    p_analytics_lease_seconds: 60,
  });
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
  });
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
