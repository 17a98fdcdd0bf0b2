import assert from "node:assert/strict";
import { ERROR_CODES, HostingError, isHostingError, toHostingError } from "./errors.ts";

Deno.test("only the site's own permanent failures are not retried", () => {
  const permanent = Object.keys(ERROR_CODES).filter((code) =>
    !new HostingError(code as keyof typeof ERROR_CODES, "x").retryable
  );
  assert.deepEqual(permanent.sort(), [
    "DOC_ROOT_MISSING",
    "INVALID_DOMAIN",
    "INVALID_INPUT",
    "SITE_CONFLICT",
    "SITE_USER_CONFLICT",
  ]);
});

const SERVER_LEVEL = [
  "CLOUDPANEL_NETWORK",
  "CLPCTL_NOT_FOUND",
  "HOST_KEY_MISMATCH",
  "INVENTORY_UNAVAILABLE",
  "SSH_AUTH_FAILED",
  "SSH_CONNECTION_LOST",
  "SSH_KEY_INVALID",
  "SSH_TIMEOUT",
  "SSH_UNREACHABLE",
  "SUDO_REFUSED",
] as const;

Deno.test("exactly the server's and the connection's failures are server-level", () => {
  const serverLevel = Object.keys(ERROR_CODES).filter((code) =>
    new HostingError(code as keyof typeof ERROR_CODES, "x").serverLevel
  );
  assert.deepEqual(serverLevel.sort(), [...SERVER_LEVEL]);
});

Deno.test("a server-level failure is retryable, so it pauses the server and never fails the site", () => {
  for (const code of SERVER_LEVEL) {
    const error = new HostingError(code, "x");
    assert.equal(error.retryable, true, code);
    assert.equal(error.serverLevel, true, code);
    assert.equal("minRetryMs" in ERROR_CODES[code], false, code);
  }
});

Deno.test("a site's own failure is not server-level, retryable or not", () => {
  for (
    const code of [
      "INVALID_DOMAIN",
      "SITE_CONFLICT",
      "DOC_ROOT_MISSING",
      "COMMAND_TIMEOUT",
      "DNS_NOT_READY",
      "RATE_LIMITED",
      "MATOMO_AUTH",
      "INTERRUPTED",
      "INTERNAL",
    ] as const
  ) {
    assert.equal(new HostingError(code, "x").serverLevel, false, code);
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
