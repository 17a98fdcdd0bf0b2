import assert from "node:assert/strict";
import { callerRole, isAuthorized, presentedKeys } from "./auth.ts";

const SERVICE = "eyJhbGciOiJIUzI1NiJ9.service-role.signature";
const SECRET = "sb_secret_0123456789abcdefghijkl";
const KEYS = [SERVICE, SECRET];

const headers = (init: Record<string, string>) => new Headers(init);

Deno.test("the service-role key in an apikey header is accepted", () => {
  assert.equal(isAuthorized(headers({ apikey: SERVICE }), KEYS), true);
});

Deno.test("a secret key as Authorization: Bearer is accepted", () => {
  assert.equal(isAuthorized(headers({ Authorization: `Bearer ${SECRET}` }), KEYS), true);
  assert.equal(isAuthorized(headers({ authorization: `bearer ${SECRET}` }), KEYS), true);
  assert.equal(isAuthorized(headers({ Authorization: `Bearer   ${SECRET}  ` }), KEYS), true);
});

Deno.test("any one of several valid keys is accepted", () => {
  const many = ["sb_secret_first_aaaaaaaaaaaa", "sb_secret_second_bbbbbbbbbbb", SERVICE];
  for (const key of many) {
    assert.equal(isAuthorized(headers({ apikey: key }), many), true, key);
  }
});

Deno.test("a wrong key is refused", () => {
  assert.equal(isAuthorized(headers({ apikey: "sb_secret_wrong" }), KEYS), false);
  assert.equal(isAuthorized(headers({ Authorization: "Bearer sb_secret_wrong" }), KEYS), false);
  // Near misses: a prefix, an extension, another case.
  assert.equal(isAuthorized(headers({ apikey: SECRET.slice(0, -1) }), KEYS), false);
  assert.equal(isAuthorized(headers({ apikey: `${SECRET}x` }), KEYS), false);
  assert.equal(isAuthorized(headers({ apikey: SECRET.toUpperCase() }), KEYS), false);
});

Deno.test("no key, an empty key or an empty bearer is refused", () => {
  assert.equal(isAuthorized(headers({}), KEYS), false);
  assert.equal(isAuthorized(headers({ apikey: "" }), KEYS), false);
  assert.equal(isAuthorized(headers({ apikey: "   " }), KEYS), false);
  assert.equal(isAuthorized(headers({ Authorization: "Bearer " }), KEYS), false);
  assert.equal(isAuthorized(headers({ Authorization: "Bearer" }), KEYS), false);
});

Deno.test("a valid key under another scheme is refused", () => {
  assert.equal(isAuthorized(headers({ Authorization: `Basic ${SECRET}` }), KEYS), false);
  assert.equal(isAuthorized(headers({ Authorization: `Token ${SECRET}` }), KEYS), false);
  assert.equal(isAuthorized(headers({ Authorization: SECRET }), KEYS), false);
  assert.equal(isAuthorized(headers({ Authorization: `Bearer ${SECRET} extra` }), KEYS), false);
});

Deno.test("an empty valid key never matches an empty presented key", () => {
  assert.equal(isAuthorized(headers({ apikey: "" }), [""]), false);
  assert.equal(isAuthorized(headers({ apikey: SERVICE }), []), false);
});

Deno.test("one right key among the two places is enough", () => {
  assert.equal(
    isAuthorized(headers({ apikey: "anon-key", Authorization: `Bearer ${SERVICE}` }), KEYS),
    true,
  );
});

Deno.test("the presented keys are read from apikey then Authorization", () => {
  assert.deepEqual(
    presentedKeys(headers({ apikey: " a-key ", Authorization: "Bearer b-key" })),
    ["a-key", "b-key"],
  );
  assert.deepEqual(presentedKeys(headers({ Authorization: "Basic b-key" })), []);
});

const DISPATCH = "dispatch-token-0123456789abcdefghijklmnop";

Deno.test("a service-role or secret key makes the caller an admin", () => {
  assert.equal(callerRole(headers({ apikey: SERVICE }), KEYS, DISPATCH), "admin");
  assert.equal(callerRole(headers({ Authorization: `Bearer ${SECRET}` }), KEYS, DISPATCH), "admin");
  assert.equal(callerRole(headers({ apikey: SERVICE }), KEYS, undefined), "admin");
});

Deno.test("the dispatch token makes the caller a dispatcher, in either header", () => {
  assert.equal(callerRole(headers({ apikey: DISPATCH }), KEYS, DISPATCH), "dispatch");
  assert.equal(
    callerRole(headers({ Authorization: `Bearer ${DISPATCH}` }), KEYS, DISPATCH),
    "dispatch",
  );
});

Deno.test("an admin key beside the dispatch token makes the caller an admin", () => {
  assert.equal(
    callerRole(headers({ apikey: DISPATCH, Authorization: `Bearer ${SERVICE}` }), KEYS, DISPATCH),
    "admin",
  );
});

Deno.test("a wrong key, no key or a near miss of the dispatch token is nobody", () => {
  assert.equal(callerRole(headers({}), KEYS, DISPATCH), null);
  assert.equal(callerRole(headers({ apikey: "anon-key" }), KEYS, DISPATCH), null);
  assert.equal(callerRole(headers({ apikey: DISPATCH.slice(0, -1) }), KEYS, DISPATCH), null);
  assert.equal(callerRole(headers({ apikey: `${DISPATCH}x` }), KEYS, DISPATCH), null);
});

Deno.test("without a configured dispatch token no presented key is a dispatcher", () => {
  assert.equal(callerRole(headers({ apikey: DISPATCH }), KEYS, undefined), null);
  assert.equal(callerRole(headers({ apikey: "" }), KEYS, ""), null);
  assert.equal(callerRole(headers({ apikey: DISPATCH }), [], undefined), null);
});
