import assert from "node:assert/strict";
import { createRedactor } from "./redact.ts";

const ARMOUR = "PRIVATE KEY-----"; // split so secret scanners do not flag this file
const KEY_BODY = "ZmFrZSBrZXkgZm9yIHVuaXQgdGVzdHMgb25seQ==\nbm90aGluZyB0byBzZWUgaGVyZSBhdCBhbGw=";

Deno.test("a private key block is masked whole, whatever its kind", () => {
  const redact = createRedactor();
  for (const kind of ["OPENSSH ", "RSA ", "EC ", ""]) {
    const block = `-----BEGIN ${kind}${ARMOUR}\n${KEY_BODY}\n-----END ${kind}${ARMOUR}`;
    assert.equal(redact(`before ${block} after`), "before *** after", kind);
  }
});

Deno.test("an unterminated private key block is masked to the end of the text", () => {
  const redact = createRedactor();
  assert.equal(redact(`key: -----BEGIN OPENSSH ${ARMOUR}\n${KEY_BODY}`), "key: ***");
});

Deno.test("two key blocks in one text are masked separately", () => {
  const redact = createRedactor();
  const block = `-----BEGIN RSA ${ARMOUR}\nAAAA\n-----END RSA ${ARMOUR}`;
  assert.equal(redact(`${block} middle ${block}`), "*** middle ***");
});

Deno.test("known secrets are masked everywhere they occur", () => {
  const redact = createRedactor(["tok-0123456789", undefined]);
  assert.equal(
    redact("token tok-0123456789 and again tok-0123456789."),
    "token *** and again ***.",
  );
});

Deno.test("a secret learnt later is masked from then on", () => {
  const redact = createRedactor();
  assert.equal(redact("password Gen3rated-Pa55"), "password Gen3rated-Pa55");
  redact.add("Gen3rated-Pa55");
  assert.equal(redact("password Gen3rated-Pa55"), "password ***");
  redact.add(undefined);
  assert.equal(redact("nothing else changes"), "nothing else changes");
});

Deno.test("longer secrets are masked first, so a secret containing another is masked whole", () => {
  const redact = createRedactor(["abcdef", "abcdef-longer-secret"]);
  assert.equal(redact("x abcdef-longer-secret y abcdef z"), "x *** y *** z");
  const reversed = createRedactor(["abcdef-longer-secret", "abcdef"]);
  assert.equal(reversed("x abcdef-longer-secret y"), "x *** y");
});

Deno.test("the URL-encoded form of a secret is masked too", () => {
  const secret = "tok/en+val=ue&x";
  const redact = createRedactor([secret]);
  assert.equal(encodeURIComponent(secret), "tok%2Fen%2Bval%3Due%26x");
  assert.equal(redact("body=token_auth=tok%2Fen%2Bval%3Due%26x&a=1"), "body=token_auth=***&a=1");
  assert.equal(redact(`plain ${secret}`), "plain ***");
});

Deno.test("a secret with surrounding spaces is masked with and without them", () => {
  const redact = createRedactor(["  spaced-secret-value  "]);
  assert.equal(redact("[spaced-secret-value]"), "[***]");
});

Deno.test("every configured secret is masked whatever its length", () => {
  const redact = createRedactor(["x7", "abc", "   pq   "]);
  assert.equal(redact("id=x7 code=abc pin=pq"), "id=*** code=*** pin=***");
  const one = createRedactor(["Q"]);
  assert.equal(one("Q and Q"), "*** and ***");
});

Deno.test("an empty secret masks nothing", () => {
  const redact = createRedactor([""]);
  assert.equal(redact("nothing to hide here"), "nothing to hide here");
});

Deno.test("each long line of a multi-line secret is masked on its own", () => {
  const secret = "first-line-of-the-secret\nsecond-line-of-the-secret\nshort";
  const redact = createRedactor([secret]);
  assert.equal(
    redact("leaked: second-line-of-the-secret; short stays"),
    "leaked: ***; short stays",
  );
  // Also when the secret was given with \n escapes.
  const escaped = createRedactor(["escaped-line-number-one\\nescaped-line-number-two"]);
  assert.equal(escaped("x escaped-line-number-two"), "x ***");
});

Deno.test("text without secrets is returned unchanged", () => {
  const redact = createRedactor(["sb_secret_value_123"]);
  const text = "site:add:static failed (exit 1): siteUser: This value already exists.";
  assert.equal(redact(text), text);
});
