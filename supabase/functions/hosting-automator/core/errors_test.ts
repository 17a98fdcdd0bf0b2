import assert from "node:assert/strict";
import { ERROR_CODES, HostingError, isHostingError, toHostingError } from "./errors.ts";

Deno.test("the permanent failures listed in docs/contract.md#error-codes are not retried", () => {
  for (
    const code of [
      "INVALID_DOMAIN",
      "HOST_KEY_MISMATCH",
      "SSH_AUTH_FAILED",
      "SITE_USER_CONFLICT",
      "SSH_KEY_INVALID",
      "SUDO_REFUSED",
      "CLPCTL_NOT_FOUND",
    ] as const
  ) {
    assert.equal(new HostingError(code, "x").retryable, false, code);
  }
});

Deno.test("the transient failures listed in docs/contract.md#error-codes are retried", () => {
  for (
    const code of [
      "SSH_UNREACHABLE",
      "SSH_TIMEOUT",
      "COMMAND_TIMEOUT",
      "DNS_NOT_READY",
      "RATE_LIMITED",
      "CLPCTL_FAILED",
      "MATOMO_UNREACHABLE",
      "INTERNAL",
    ] as const
  ) {
    assert.equal(new HostingError(code, "x").retryable, true, code);
  }
});

Deno.test("a Let's Encrypt rate limit and a refused Matomo token wait at least one hour", () => {
  assert.equal(ERROR_CODES.RATE_LIMITED.minRetryMs, 3_600_000);
  assert.equal(ERROR_CODES.MATOMO_AUTH.minRetryMs, 3_600_000);
  assert.equal(ERROR_CODES.MATOMO_BLOCKED.minRetryMs, 3_600_000);
  assert.equal("minRetryMs" in ERROR_CODES.SSH_TIMEOUT, false);
});

Deno.test("a HostingError carries its code, step, message and cause", () => {
  const cause = new Error("root cause");
  const error = new HostingError("SSH_TIMEOUT", "no answer", { step: "site", cause });
  assert.equal(error.code, "SSH_TIMEOUT");
  assert.equal(error.step, "site");
  assert.equal(error.message, "no answer");
  assert.equal(error.cause, cause);
  assert.equal(error.name, "HostingError");
  assert.ok(error instanceof Error);
});

Deno.test("the brand check accepts a HostingError and a copy from another module instance", () => {
  assert.equal(isHostingError(new HostingError("INTERNAL", "x")), true);
  // What a HostingError from a second copy of this module looks like: same brand, no shared class.
  assert.equal(isHostingError({ brand: "HostingError", code: "SSH_TIMEOUT", message: "x" }), true);
});

Deno.test("the brand check refuses plain errors, unknown codes and non-objects", () => {
  assert.equal(isHostingError(new Error("x")), false);
  assert.equal(isHostingError({ brand: "HostingError", code: "NO_SUCH_CODE" }), false);
  assert.equal(isHostingError({ brand: "HostingError", code: 7 }), false);
  assert.equal(isHostingError({ brand: "Other", code: "INTERNAL" }), false);
  assert.equal(isHostingError(null), false);
  assert.equal(isHostingError(undefined), false);
  assert.equal(isHostingError("HostingError"), false);
});

Deno.test("toHostingError returns a HostingError unchanged", () => {
  const error = new HostingError("DNS_NOT_READY", "not yet", { step: "certificate" });
  assert.equal(toHostingError(error, "site"), error);
});

Deno.test("toHostingError turns any other thrown value into INTERNAL, keeping the cause", () => {
  const cause = new TypeError("boom");
  const wrapped = toHostingError(cause, "analytics");
  assert.equal(wrapped.code, "INTERNAL");
  assert.equal(wrapped.step, "analytics");
  assert.equal(wrapped.message, "unexpected error: boom");
  assert.equal(wrapped.cause, cause);
  assert.equal(wrapped.retryable, true);

  const fromText = toHostingError("plain text");
  assert.equal(fromText.code, "INTERNAL");
  assert.equal(fromText.message, "unexpected error: plain text");
  assert.equal(fromText.step, undefined);
});
