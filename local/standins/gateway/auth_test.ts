import assert from "node:assert/strict";
import {
  type ApiKeys,
  apiKeysFromEnv,
  authenticateRest,
  keyValues,
  rejectWithoutValidJwt,
} from "./auth.ts";
import { signJwt } from "./jwt.ts";

const SECRET = "auth-test-secret-with-32-characters-min";

async function keys(): Promise<ApiKeys> {
  return {
    anonJwt: await signJwt({ role: "anon", iss: "supabase-demo" }, SECRET),
    serviceRoleJwt: await signJwt({ role: "service_role", iss: "supabase-demo" }, SECRET),
    publishable: ["sb_publishable_pub"],
    secret: ["sb_secret_sec"],
  };
}

function request(headers: Record<string, string>, query = ""): Request {
  return new Request(`http://api.local/rest/v1/rpc/f${query}`, { headers });
}

Deno.test("a request without an apikey is refused before PostgREST", async () => {
  const result = await authenticateRest(request({}), await keys(), SECRET);
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.equal(result.response.status, 401);
  assert.deepEqual(await result.response.json(), { message: "No API key found in request" });
});

Deno.test("an apikey that is not one of the project's keys is refused", async () => {
  const forged = await signJwt({ role: "service_role" }, SECRET); // valid JWT, but not a key
  for (const apikey of ["sb_secret_other", forged]) {
    const result = await authenticateRest(request({ apikey }), await keys(), SECRET);
    assert.equal(result.ok, false);
    if (result.ok) return;
    assert.equal(result.response.status, 401);
    assert.deepEqual(await result.response.json(), { message: "Invalid API key" });
  }
});

Deno.test("each project key maps to its role when no user JWT is sent", async () => {
  const k = await keys();
  const cases: [string, string][] = [
    ["sb_secret_sec", "service_role"],
    ["sb_publishable_pub", "anon"],
    [k.anonJwt!, "anon"],
    [k.serviceRoleJwt!, "service_role"],
  ];
  for (const [apikey, role] of cases) {
    const result = await authenticateRest(request({ apikey }), k, SECRET);
    assert.ok(result.ok);
    assert.equal(result.caller.role, role, apikey.slice(0, 12));
    assert.equal(result.caller.claims.role, role);
  }
});

Deno.test("a legacy key's own claims are what the database sees", async () => {
  const k = await keys();
  const result = await authenticateRest(request({ apikey: k.anonJwt! }), k, SECRET);
  assert.ok(result.ok);
  assert.deepEqual(result.caller.claims, { role: "anon", iss: "supabase-demo" });
});

Deno.test("a valid Bearer JWT sets the role from its role claim", async () => {
  const k = await keys();
  const user = await signJwt({ role: "authenticated", sub: "user-1" }, SECRET);
  const result = await authenticateRest(
    request({ apikey: "sb_publishable_pub", authorization: `Bearer ${user}` }),
    k,
    SECRET,
  );
  assert.ok(result.ok);
  assert.deepEqual(result.caller, {
    role: "authenticated",
    claims: { role: "authenticated", sub: "user-1" },
  });
});

Deno.test("a Bearer JWT without a role claim runs as anon", async () => {
  const token = await signJwt({ sub: "x" }, SECRET);
  const result = await authenticateRest(
    request({ apikey: "sb_secret_sec", authorization: `Bearer ${token}` }),
    await keys(),
    SECRET,
  );
  assert.ok(result.ok);
  assert.equal(result.caller.role, "anon");
});

Deno.test("a bad Bearer JWT is PostgREST's 401 PGRST301", async () => {
  const expired = await signJwt({ role: "service_role", exp: 1 }, SECRET);
  const result = await authenticateRest(
    request({ apikey: "sb_secret_sec", authorization: `Bearer ${expired}` }),
    await keys(),
    SECRET,
  );
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.equal(result.response.status, 401);
  assert.match(result.response.headers.get("www-authenticate")!, /invalid_token/);
  assert.deepEqual(await result.response.json(), {
    code: "PGRST301",
    details: null,
    hint: null,
    message: "JWT expired",
  });
});

Deno.test("Bearer sb_ keys are not JWTs: the apikey decides the role", async () => {
  const result = await authenticateRest(
    request({ apikey: "sb_secret_sec", authorization: "Bearer sb_secret_sec" }),
    await keys(),
    SECRET,
  );
  assert.ok(result.ok);
  assert.equal(result.caller.role, "service_role");
});

Deno.test("the apikey may come as a query parameter", async () => {
  const result = await authenticateRest(request({}, "?apikey=sb_secret_sec"), await keys(), SECRET);
  assert.ok(result.ok);
  assert.equal(result.caller.role, "service_role");
});

Deno.test("keys are read from the stack settings' JSON dicts", () => {
  const env: Record<string, string> = {
    SUPABASE_ANON_KEY: "a.b.c",
    SUPABASE_PUBLISHABLE_KEYS: '{"default":"sb_publishable_1"}',
    SUPABASE_SECRET_KEYS: '{"default":"sb_secret_1","automations":"sb_secret_2"}',
  };
  assert.deepEqual(apiKeysFromEnv((name) => env[name]), {
    anonJwt: "a.b.c",
    serviceRoleJwt: undefined,
    publishable: ["sb_publishable_1"],
    secret: ["sb_secret_1", "sb_secret_2"],
  });
  assert.throws(() => keyValues("[1]", "SUPABASE_SECRET_KEYS"), /not a JSON object/);
});

Deno.test("verify_jwt answers like the hosted gateway", async () => {
  const call = (authorization?: string) =>
    rejectWithoutValidJwt(
      new Request("http://api.local/functions/v1/f", {
        headers: authorization ? { authorization } : {},
      }),
      SECRET,
    );
  const missing = await call();
  assert.equal(missing?.status, 401);
  assert.deepEqual(await missing?.json(), {
    code: "UNAUTHORIZED_NO_AUTH_HEADER",
    message: "Missing authorization header",
  });
  const notBearer = await call("Basic abc");
  assert.deepEqual(await notBearer?.json(), {
    code: "UNAUTHORIZED_INVALID_JWT_FORMAT",
    message: "Auth header is not 'Bearer {token}'",
  });
  const secretKey = await call("Bearer sb_secret_sec");
  assert.equal(secretKey?.status, 401);
  assert.deepEqual(await secretKey?.json(), {
    code: "UNAUTHORIZED_INVALID_JWT_FORMAT",
    message: "Invalid JWT",
  });
  assert.equal(await call(`Bearer ${await signJwt({ role: "anon" }, SECRET)}`), undefined);
});
