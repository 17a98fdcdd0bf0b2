import assert from "node:assert/strict";
import { signJwt, verifyJwt } from "./jwt.ts";

const SECRET = "test-secret-with-at-least-32-characters!";
const NOW = 1_800_000_000;

Deno.test("a token signed with the secret verifies and yields its claims", async () => {
  const token = await signJwt({ role: "authenticated", sub: "u1", exp: NOW + 60 }, SECRET);
  assert.deepEqual(await verifyJwt(token, SECRET, NOW), {
    ok: true,
    claims: { role: "authenticated", sub: "u1", exp: NOW + 60 },
  });
});

Deno.test("a token signed with another secret is rejected as an invalid signature", async () => {
  const token = await signJwt({ role: "service_role" }, "another-secret-another-secret-xx");
  assert.deepEqual(await verifyJwt(token, SECRET, NOW), {
    ok: false,
    message: "JWSError JWSInvalidSignature",
  });
});

Deno.test("a tampered payload fails the signature check", async () => {
  const [header, , signature] = (await signJwt({ role: "anon" }, SECRET)).split(".");
  const forged = btoa(JSON.stringify({ role: "service_role" })).replace(/=+$/, "");
  const result = await verifyJwt(`${header}.${forged}.${signature}`, SECRET, NOW);
  assert.equal(result.ok, false);
});

Deno.test("expiry is checked with PostgREST's 30 second skew", async () => {
  const token = await signJwt({ role: "anon", exp: NOW }, SECRET);
  assert.equal((await verifyJwt(token, SECRET, NOW + 29)).ok, true);
  assert.deepEqual(await verifyJwt(token, SECRET, NOW + 30), {
    ok: false,
    message: "JWT expired",
  });
});

Deno.test("a token that is not yet valid is rejected", async () => {
  const token = await signJwt({ role: "anon", nbf: NOW + 31 }, SECRET);
  assert.deepEqual(await verifyJwt(token, SECRET, NOW), {
    ok: false,
    message: "JWT not yet valid",
  });
});

Deno.test("malformed tokens and other algorithms are rejected with PostgREST's texts", async () => {
  assert.deepEqual(await verifyJwt("abc", SECRET, NOW), {
    ok: false,
    message: "JWSError (CompactDecodeError Invalid number of parts: Expected 3 parts; got 1)",
  });
  assert.deepEqual(await verifyJwt("", SECRET, NOW), {
    ok: false,
    message: "Empty JWT is sent in Authorization header",
  });
  assert.equal((await verifyJwt("a.b.c", SECRET, NOW)).ok, false);
  const none = `${btoa('{"alg":"none"}')}.${btoa('{"role":"service_role"}')}.`.replace(/=/g, "");
  assert.deepEqual(await verifyJwt(none, SECRET, NOW), {
    ok: false,
    message: "JWSError JWSInvalidSignature",
  });
});

Deno.test("a non-numeric exp claim is rejected", async () => {
  const token = await signJwt({ role: "anon", exp: "soon" }, SECRET);
  assert.deepEqual(await verifyJwt(token, SECRET, NOW), {
    ok: false,
    message: "The JWT 'exp' claim must be a number",
  });
});
