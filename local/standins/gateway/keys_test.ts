// The throw-away keys that local/stack writes into keys.env.

import assert from "node:assert/strict";
import { base64url, generateStackKeys, signHs256Jwt, toEnvLines } from "./keys.ts";

function decodeSegment(segment: string): unknown {
  const base64 = segment.replaceAll("-", "+").replaceAll("_", "/");
  return JSON.parse(atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, "=")));
}

async function verifiesWith(jwt: string, secret: string): Promise<boolean> {
  const [header, payload, signature] = jwt.split(".");
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["verify"],
  );
  const base64 = signature.replaceAll("-", "+").replaceAll("_", "/");
  const bytes = Uint8Array.from(
    atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, "=")),
    (char) => char.charCodeAt(0),
  );
  return await crypto.subtle.verify(
    "HMAC",
    key,
    bytes,
    new TextEncoder().encode(`${header}.${payload}`),
  );
}

Deno.test("base64url drops padding and uses the url-safe alphabet", () => {
  assert.equal(base64url(new Uint8Array([251, 255, 191])), "-_-_");
  assert.equal(base64url(new Uint8Array([1])), "AQ");
});

Deno.test("a signed JWT verifies only with its own secret", async () => {
  const jwt = await signHs256Jwt({ role: "anon" }, "secret-one");

  assert.deepEqual(decodeSegment(jwt.split(".")[0]), { alg: "HS256", typ: "JWT" });
  assert.equal(await verifiesWith(jwt, "secret-one"), true);
  assert.equal(await verifiesWith(jwt, "secret-two"), false);
});

Deno.test("the anon and service_role keys carry Supabase's claims and verify with the JWT secret", async () => {
  const keys = await generateStackKeys(1_700_000_000);

  for (
    const [key, role] of [[keys.SUPABASE_ANON_KEY, "anon"], [
      keys.SUPABASE_SERVICE_ROLE_KEY,
      "service_role",
    ]]
  ) {
    assert.deepEqual(decodeSegment(key.split(".")[1]), {
      iss: "supabase",
      role,
      iat: 1_700_000_000,
      exp: 1_700_000_000 + 10 * 365 * 24 * 3600,
    });
    assert.equal(await verifiesWith(key, keys.HA_JWT_SECRET), true);
  }
});

Deno.test("the opaque keys have Supabase's prefixes and every run makes new ones", async () => {
  const first = await generateStackKeys(0);
  const second = await generateStackKeys(0);

  assert.match(first.HA_PUBLISHABLE_KEY, /^sb_publishable_[A-Za-z0-9_-]{32}$/);
  assert.match(first.HA_SECRET_KEY, /^sb_secret_[A-Za-z0-9_-]{32}$/);
  assert.match(first.HA_AUTHENTICATOR_PASSWORD, /^[0-9a-f]{48}$/);
  assert.notEqual(first.HA_SECRET_KEY, second.HA_SECRET_KEY);
  assert.notEqual(first.HA_JWT_SECRET, second.HA_JWT_SECRET);
});

Deno.test("the env lines are single-quoted NAME='value' lines, one per key", async () => {
  const keys = await generateStackKeys(0);
  const lines = toEnvLines(keys).trimEnd().split("\n");

  assert.equal(lines.length, 6);
  for (const line of lines) assert.match(line, /^[A-Z_]+='[^']+'$/);
  assert.equal(lines[4], `HA_SECRET_KEY='${keys.HA_SECRET_KEY}'`);
});
