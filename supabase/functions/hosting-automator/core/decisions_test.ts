import assert from "node:assert/strict";
import {
  afterFailure,
  type AnalyticsPolicy,
  analyticsRetryAt,
  retryDelayMs,
  type RetryPolicy,
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
      "SITE_USER_CONFLICT",
      "SITE_CONFLICT",
      "DOC_ROOT_MISSING",
      "INVALID_INPUT",
    ] as const
  ) {
    assert.deepEqual(afterFailure(error(code), 1, POLICY, NOW), { status: "failed" }, code);
  }
});

Deno.test("a server-level failure is retryable: by itself it goes back to pending with backoff", () => {
  for (const code of ["HOST_KEY_MISMATCH", "SSH_AUTH_FAILED", "SUDO_REFUSED"] as const) {
    assert.deepEqual(afterFailure(error(code), 2, POLICY, NOW), {
      status: "pending",
      nextAttemptAt: new Date("2025-01-01T12:02:00.000Z"),
      delayMs: 120_000,
    }, code);
  }
});

// --- analytics retries of an active site ------------------------------------------------------------

// The defaults of settings.ts: 60 s doubling, capped at one hour, ten failed registrations.
const ANALYTICS: AnalyticsPolicy = { baseDelayMs: 60_000, maxDelayMs: 3_600_000, maxAttempts: 10 };
const at = (ms: number) => new Date(NOW.getTime() + ms);

Deno.test("the first Matomo retry comes a minute after the failure, then the wait doubles", () => {
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5].map((failedBefore) =>
      analyticsRetryAt(error("MATOMO_HTTP"), failedBefore, ANALYTICS, NOW)
    ),
    [60_000, 120_000, 240_000, 480_000, 960_000, 1_920_000].map(at),
  );
});

Deno.test("the Matomo retry wait stops growing at its cap", () => {
  assert.deepEqual(analyticsRetryAt(error("MATOMO_TIMEOUT"), 6, ANALYTICS, NOW), at(3_600_000));
  assert.deepEqual(analyticsRetryAt(error("MATOMO_TIMEOUT"), 8, ANALYTICS, NOW), at(3_600_000));
  const small = { baseDelayMs: 1_000, maxDelayMs: 5_000, maxAttempts: 10 };
  assert.deepEqual(
    [0, 1, 2, 3, 4].map((n) => analyticsRetryAt(error("MATOMO_HTTP"), n, small, NOW)),
    [1_000, 2_000, 4_000, 5_000, 5_000].map(at),
  );
});

Deno.test("a refused or blocked Matomo token is retried no sooner than an hour later", () => {
  assert.deepEqual(analyticsRetryAt(error("MATOMO_AUTH"), 0, ANALYTICS, NOW), at(3_600_000));
  assert.deepEqual(analyticsRetryAt(error("MATOMO_BLOCKED"), 2, ANALYTICS, NOW), at(3_600_000));
  const long = { baseDelayMs: 600_000, maxDelayMs: 86_400_000, maxAttempts: 10 };
  // Above the floor, the ordinary backoff applies: 600 s × 2³ = 80 min.
  assert.deepEqual(analyticsRetryAt(error("MATOMO_AUTH"), 3, long, NOW), at(4_800_000));
});

Deno.test("the failure that reaches the limit of registrations is never retried", () => {
  assert.notEqual(analyticsRetryAt(error("MATOMO_HTTP"), 8, ANALYTICS, NOW), "never");
  assert.equal(analyticsRetryAt(error("MATOMO_HTTP"), 9, ANALYTICS, NOW), "never");
  assert.equal(analyticsRetryAt(error("MATOMO_AUTH"), 12, ANALYTICS, NOW), "never");
  const once = { ...ANALYTICS, maxAttempts: 1 };
  assert.equal(analyticsRetryAt(error("MATOMO_HTTP"), 0, once, NOW), "never");
});
