import assert from "node:assert/strict";
import {
  afterFailure,
  analyticsRetryAt,
  retryDelayMs,
  type RetryPolicy,
  type SiteState,
  skipReason,
} from "./decisions.ts";
import { type ErrorCode, HostingError } from "./errors.ts";

// The defaults of settings.ts: 8 attempts, 60 s doubling, capped at one hour.
const POLICY: RetryPolicy = { maxAttempts: 8, baseDelayMs: 60_000, maxDelayMs: 3_600_000 };
const NOW = new Date("2025-01-01T12:00:00.000Z");
const error = (code: ErrorCode) => new HostingError(code, "test");

Deno.test("the backoff doubles from the base delay with every attempt", () => {
  const delays = [1, 2, 3, 4, 5, 6].map((attempt) =>
    retryDelayMs(error("SSH_TIMEOUT"), attempt, POLICY)
  );
  assert.deepEqual(delays, [60_000, 120_000, 240_000, 480_000, 960_000, 1_920_000]);
});

Deno.test("the backoff stops growing at the cap", () => {
  assert.equal(retryDelayMs(error("SSH_TIMEOUT"), 7, POLICY), 3_600_000); // 3 840 000 uncapped
  assert.equal(retryDelayMs(error("SSH_TIMEOUT"), 50, POLICY), 3_600_000);
  const small = { maxAttempts: 8, baseDelayMs: 1_000, maxDelayMs: 5_000 };
  assert.deepEqual(
    [1, 2, 3, 4, 5].map((a) => retryDelayMs(error("DNS_NOT_READY"), a, small)),
    [1_000, 2_000, 4_000, 5_000, 5_000],
  );
});

Deno.test("an attempt number below one waits the base delay", () => {
  assert.equal(retryDelayMs(error("SSH_TIMEOUT"), 0, POLICY), 60_000);
});

Deno.test("a Let's Encrypt rate limit waits at least one hour, even under a lower cap", () => {
  assert.equal(retryDelayMs(error("RATE_LIMITED"), 1, POLICY), 3_600_000);
  const lowCap = { maxAttempts: 8, baseDelayMs: 1_000, maxDelayMs: 10_000 };
  assert.equal(retryDelayMs(error("RATE_LIMITED"), 1, lowCap), 3_600_000);
  // Above the floor, the ordinary backoff applies.
  const highCap = { maxAttempts: 20, baseDelayMs: 60_000, maxDelayMs: 86_400_000 };
  assert.equal(retryDelayMs(error("RATE_LIMITED"), 8, highCap), 7_680_000);
});

Deno.test("a refused or blocked Matomo token waits at least one hour", () => {
  assert.equal(retryDelayMs(error("MATOMO_AUTH"), 1, POLICY), 3_600_000);
  assert.equal(retryDelayMs(error("MATOMO_BLOCKED"), 2, POLICY), 3_600_000);
});

Deno.test("a retryable failure before the last attempt goes back to pending with its delay", () => {
  assert.deepEqual(afterFailure(error("SSH_UNREACHABLE"), 1, POLICY, NOW), {
    status: "pending",
    nextAttemptAt: new Date("2025-01-01T12:01:00.000Z"),
    delayMs: 60_000,
  });
  assert.deepEqual(afterFailure(error("DNS_NOT_READY"), 3, POLICY, NOW), {
    status: "pending",
    nextAttemptAt: new Date("2025-01-01T12:04:00.000Z"),
    delayMs: 240_000,
  });
  assert.deepEqual(afterFailure(error("RATE_LIMITED"), 1, POLICY, NOW), {
    status: "pending",
    nextAttemptAt: new Date("2025-01-01T13:00:00.000Z"),
    delayMs: 3_600_000,
  });
});

Deno.test("the attempt before the last still retries; the last allowed attempt fails", () => {
  assert.equal(afterFailure(error("SSH_TIMEOUT"), 7, POLICY, NOW).status, "pending");
  assert.deepEqual(afterFailure(error("SSH_TIMEOUT"), 8, POLICY, NOW), { status: "failed" });
  assert.deepEqual(afterFailure(error("SSH_TIMEOUT"), 9, POLICY, NOW), { status: "failed" });
  const once = { ...POLICY, maxAttempts: 1 };
  assert.deepEqual(afterFailure(error("SSH_TIMEOUT"), 1, once, NOW), { status: "failed" });
});

Deno.test("a permanent failure fails at the first attempt", () => {
  for (
    const code of [
      "INVALID_DOMAIN",
      "HOST_KEY_MISMATCH",
      "SSH_AUTH_FAILED",
      "SITE_USER_CONFLICT",
      "SUDO_REFUSED",
    ] as const
  ) {
    assert.deepEqual(afterFailure(error(code), 1, POLICY, NOW), { status: "failed" }, code);
  }
});

Deno.test("a Matomo retry for an active site waits the configured time, or the floor if longer", () => {
  assert.deepEqual(
    analyticsRetryAt(error("MATOMO_HTTP"), 600_000, NOW),
    new Date("2025-01-01T12:10:00.000Z"),
  );
  assert.deepEqual(
    analyticsRetryAt(error("MATOMO_AUTH"), 600_000, NOW),
    new Date("2025-01-01T13:00:00.000Z"),
  );
  assert.deepEqual(
    analyticsRetryAt(error("MATOMO_BLOCKED"), 7_200_000, NOW),
    new Date("2025-01-01T14:00:00.000Z"),
  );
});

// --- why a site was not claimed -------------------------------------------------------------------

const PAST = "2025-01-01T11:00:00.000Z";
const FUTURE = "2025-01-01T13:00:00.000Z";

function site(overrides: Partial<SiteState>): SiteState {
  return {
    status_dns: "active",
    status_hosting: "pending",
    matomo_site_id: null,
    lease_until: null,
    next_attempt_at: null,
    due: null,
    ...overrides,
  };
}

Deno.test("a site that does not exist is NOT_FOUND", () => {
  assert.equal(skipReason(null, NOW), "NOT_FOUND");
});

Deno.test("a site whose DNS is not active is DNS_NOT_ACTIVE, whatever its hosting state", () => {
  assert.equal(skipReason(site({ status_dns: "pending" }), NOW), "DNS_NOT_ACTIVE");
  assert.equal(skipReason(site({ status_dns: null }), NOW), "DNS_NOT_ACTIVE");
  assert.equal(skipReason(site({ status_dns: "Active" }), NOW), "DNS_NOT_ACTIVE");
  assert.equal(
    skipReason(site({ status_dns: null, status_hosting: "active" }), NOW),
    "DNS_NOT_ACTIVE",
  );
});

Deno.test("an active site with analytics is ALREADY_ACTIVE", () => {
  assert.equal(
    skipReason(site({ status_hosting: "active", matomo_site_id: 7 }), NOW),
    "ALREADY_ACTIVE",
  );
  assert.equal(
    skipReason(site({ status_hosting: "active", matomo_site_id: 7, lease_until: FUTURE }), NOW),
    "ALREADY_ACTIVE",
  );
});

Deno.test("an active site without analytics is IN_PROGRESS, NOT_DUE or ALREADY_ACTIVE", () => {
  const active = { status_hosting: "active", matomo_site_id: null };
  assert.equal(skipReason(site({ ...active, lease_until: FUTURE }), NOW), "IN_PROGRESS");
  assert.equal(skipReason(site({ ...active, next_attempt_at: FUTURE }), NOW), "NOT_DUE");
  assert.equal(skipReason(site({ ...active, next_attempt_at: PAST }), NOW), "ALREADY_ACTIVE");
  assert.equal(skipReason(site({ ...active, lease_until: PAST }), NOW), "ALREADY_ACTIVE");
});

Deno.test("a provisioning site is IN_PROGRESS under its lease and AT_CAPACITY once it expired", () => {
  assert.equal(
    skipReason(site({ status_hosting: "provisioning", lease_until: FUTURE }), NOW),
    "IN_PROGRESS",
  );
  assert.equal(
    skipReason(site({ status_hosting: "provisioning", lease_until: PAST }), NOW),
    "AT_CAPACITY",
  );
  // A lease ending exactly now has expired.
  assert.equal(
    skipReason(site({ status_hosting: "provisioning", lease_until: NOW.toISOString() }), NOW),
    "AT_CAPACITY",
  );
});

Deno.test("a failed site is FAILED", () => {
  assert.equal(skipReason(site({ status_hosting: "failed" }), NOW), "FAILED");
});

Deno.test("a pending site is NOT_DUE while it waits and AT_CAPACITY when due but not claimed", () => {
  assert.equal(skipReason(site({ next_attempt_at: FUTURE }), NOW), "NOT_DUE");
  assert.equal(skipReason(site({ next_attempt_at: FUTURE, due: "provision" }), NOW), "NOT_DUE");
  assert.equal(skipReason(site({ due: "provision" }), NOW), "AT_CAPACITY");
  assert.equal(skipReason(site({ next_attempt_at: PAST, due: "provision" }), NOW), "AT_CAPACITY");
  assert.equal(skipReason(site({ due: null }), NOW), "NOT_DUE");
});
