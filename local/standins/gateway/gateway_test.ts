// Tests of the gateway stand-in against the stack's real PostgreSQL: what the product's
// supabase-js `rpc()` and function calls meet. Skipped without the stack's env (local/test).
import assert from "node:assert/strict";
import { join } from "node:path";
import postgres from "postgres";
import { createClient } from "@supabase/supabase-js";
import { createRuntime, DENO_PASSTHROUGH_ENV } from "../edge-runtime/runtime.ts";
import { apiKeysFromEnv } from "./auth.ts";
import { type FunctionSettings, loadFunctionRoutes } from "./function_config.ts";
import { createGateway, type GatewayDeps } from "./gateway.ts";
import { signJwt } from "./jwt.ts";
import { connectAuthenticator } from "./postgrest.ts";
import { stackTest } from "../../../supabase/tests/stack_env.ts";

const ROOT = new URL("../../..", import.meta.url).pathname;
const needs = ["HA_DB_URL", "HA_AUTHENTICATOR_DB_URL", "HA_JWT_SECRET", "SUPABASE_URL"];
function gatewayTest(name: string, fn: (t: Deno.TestContext) => Promise<void>): void {
  stackTest({ name, needs, fn });
}

interface Fixture {
  env: Record<string, string>;
  admin: postgres.Sql;
  sql: postgres.Sql;
  secretKey: string;
  publishableKey: string;
  userJwt: string;
  call(path: string, init?: RequestInit & { key?: string }): Promise<Called>;
  deps: GatewayDeps;
  close(): Promise<void>;
}

interface Called {
  status: number;
  text: string;
  body: unknown;
  headers: Headers;
}

async function read(response: Response): Promise<Called> {
  const text = await response.text();
  let body: unknown = undefined;
  try {
    body = text === "" ? undefined : JSON.parse(text);
  } catch { /* not JSON */ }
  return { status: response.status, text, body, headers: response.headers };
}

async function startFixture(
  overrides: Partial<GatewayDeps> = {},
): Promise<Fixture> {
  const env = Deno.env.toObject();
  const admin = postgres(env.HA_DB_URL, { onnotice: () => {}, max: 2 });
  await admin.file(new URL("./testdata/cleanup.sql", import.meta.url).pathname);
  await admin.file(new URL("./testdata/fixture.sql", import.meta.url).pathname);
  const sql = connectAuthenticator(env.HA_AUTHENTICATOR_DB_URL, 4);
  const keys = apiKeysFromEnv((name) => env[name]);
  const deps: GatewayDeps = {
    sql,
    keys,
    jwtSecret: env.HA_JWT_SECRET,
    functionRoutes: () => Promise.resolve(new Map<string, FunctionSettings>()),
    edgeUrl: "http://edge.invalid",
    schemaCacheMs: 0,
    ...overrides,
  };
  const gateway = createGateway(deps);
  const secretKey = keys.secret[0];
  return {
    env,
    admin,
    sql,
    secretKey,
    publishableKey: keys.publishable[0],
    userJwt: await signJwt(
      { role: "authenticated", sub: "user-1", exp: Math.floor(Date.now() / 1000) + 600 },
      env.HA_JWT_SECRET,
    ),
    deps,
    async call(path, init = {}) {
      const { key, ...rest } = init;
      const headers = new Headers(rest.headers);
      if (key !== "" && !headers.has("apikey")) headers.set("apikey", key ?? secretKey);
      if (typeof rest.body === "string" && !headers.has("content-type")) {
        headers.set("content-type", "application/json");
      }
      return await read(
        await gateway.handler(
          new Request(`http://api.local${path}`, {
            ...rest,
            headers,
          }),
        ),
      );
    },
    async close() {
      await sql.end({ timeout: 5 });
      await admin.file(new URL("./testdata/cleanup.sql", import.meta.url).pathname);
      await admin.end({ timeout: 5 });
    },
  };
}

/** PostgREST's error body. */
function pgError(
  code: string,
  message: string,
  details: string | null = null,
  hint: string | null = null,
) {
  return { code, details, hint, message };
}

function post(body: unknown, extra: RequestInit & { key?: string } = {}) {
  return { method: "POST", body: JSON.stringify(body), ...extra };
}

gatewayTest("rpc calls answer like PostgREST 12", async (t) => {
  const f = await startFixture();
  try {
    await t.step(
      "a scalar function returns its JSON value; defaults fill missing args",
      async () => {
        assert.deepEqual(
          await f.call("/rest/v1/rpc/gwtest_add", post({ a: 2 })).then((r) => r.body),
          12,
        );
        const both = await f.call("/rest/v1/rpc/gwtest_add", post({ a: 2, b: 3 }));
        assert.equal(both.status, 200);
        assert.equal(both.text, "5");
        assert.match(both.headers.get("content-type")!, /^application\/json/);
        assert.equal(
          (await f.call("/rest/v1/rpc/gwtest_hello", post({ name: "x" }))).text,
          '"hello x"',
        );
      },
    );

    await t.step("a jsonb function receives and returns JSON values", async () => {
      const { body } = await f.call(
        "/rest/v1/rpc/gwtest_doc",
        post({ doc: { a: [1, { b: null }] } }),
      );
      assert.deepEqual(body, { a: [1, { b: null }], seen: true });
    });

    await t.step("named arguments are cast from JSON to their declared types", async () => {
      const id = crypto.randomUUID();
      const { status, body } = await f.call(
        "/rest/v1/rpc/gwtest_types",
        post({
          p_id: id,
          p_n: "41",
          p_at: "2026-01-02T03:04:05Z",
          p_doc: "a JSON string",
          p_tags: ["x", "y,z"],
        }),
      );
      assert.equal(status, 200);
      assert.deepEqual(body, {
        id,
        id_type: "uuid",
        n_plus_one: 42,
        at_epoch: Date.UTC(2026, 0, 2, 3, 4, 5) / 1000,
        doc: "a JSON string",
        doc_type: "string",
        tags: ["x", "y,z"],
        tags_type: "text[]",
      });
    });

    await t.step("a bad value for a typed argument is a 400 with the SQLSTATE", async () => {
      const { status, body } = await f.call(
        "/rest/v1/rpc/gwtest_types",
        post({ p_id: "not-a-uuid", p_n: 1, p_at: "2026-01-01", p_doc: {}, p_tags: [] }),
      );
      assert.equal(status, 400);
      assert.equal((body as { code: string }).code, "22P02");
    });

    await t.step(
      "a void function answers 204 with no body, and its work is committed",
      async () => {
        const marker = Math.floor(Math.random() * 1e9);
        const { status, text } = await f.call("/rest/v1/rpc/gwtest_nothing", post({ x: marker }));
        assert.equal(status, 204);
        assert.equal(text, "");
        const rows = await f.admin`select 1 from public.gwtest_items where label = ${
          "void-" + marker
        }`;
        assert.equal(rows.length, 1);
      },
    );

    await t.step(
      "an unknown function or argument name is 404 PGRST202 with PostgREST's texts",
      async () => {
        const searched = (fn: string, args: string) =>
          `Searched for the function public.${fn} with parameters ${args} or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.`;
        const cases: [string, Record<string, number>, string | null, string][] = [
          ["gwtest_missing", { b: 1, a: 2 }, null, "a, b"],
          ["gwtest_add", { a: 1, zzz: 2 }, "(a, b)", "a, zzz"],
        ];
        for (const [fn, args, meant, sorted] of cases) {
          const { status, body } = await f.call(`/rest/v1/rpc/${fn}`, post(args));
          assert.equal(status, 404);
          assert.deepEqual(body, {
            code: "PGRST202",
            details: searched(fn, sorted),
            hint: meant && `Perhaps you meant to call the function public.${fn}${meant}`,
            message: `Could not find the function public.${fn}(${sorted}) in the schema cache`,
          });
        }
        const none = await f.call("/rest/v1/rpc/gwtest_missing", post({}));
        assert.equal(
          (none.body as { message: string }).message,
          "Could not find the function public.gwtest_missing without parameters in the schema cache",
        );
        assert.equal((await f.call("/rest/v1/rpc/gwtest_add", post({ b: 1 }))).status, 404);
      },
    );

    await t.step("an overloaded name the arguments cannot resolve is 300 PGRST203", async () => {
      const { status, body } = await f.call("/rest/v1/rpc/gwtest_overloaded", post({ x: 1 }));
      assert.equal(status, 300);
      assert.equal((body as { code: string }).code, "PGRST203");
    });

    await t.step("raise exception is 400 with code, message, details and hint", async () => {
      const { status, body } = await f.call("/rest/v1/rpc/gwtest_fail", post({ kind: "x" }));
      assert.equal(status, 400);
      assert.deepEqual(body, pgError("P0001", "boom: x", "the detail", "the hint"));
      const unique = await f.call("/rest/v1/rpc/gwtest_fail", post({ kind: "unique" }));
      assert.equal(unique.status, 409);
      assert.deepEqual(unique.body, pgError("23505", "duplicate site"));
    });

    await t.step(
      "permission denied is 401 for anon, 403 for a user, allowed for service_role",
      async () => {
        const anon = await f.call(
          "/rest/v1/rpc/gwtest_secret",
          post({}, { key: f.publishableKey }),
        );
        assert.equal(anon.status, 401);
        assert.deepEqual(
          anon.body,
          pgError("42501", "permission denied for function gwtest_secret"),
        );
        const user = await f.call(
          "/rest/v1/rpc/gwtest_secret",
          post({}, { key: f.publishableKey, headers: { authorization: `Bearer ${f.userJwt}` } }),
        );
        assert.equal(user.status, 403);
        const service = await f.call("/rest/v1/rpc/gwtest_secret", post({}));
        assert.equal(service.status, 200);
        assert.equal(service.body, "only for service_role");
      },
    );

    await t.step("the role, claims and request settings are those of the caller", async () => {
      const asAnon = await f.call(
        "/rest/v1/rpc/gwtest_whoami",
        post({}, { key: f.publishableKey }),
      );
      assert.deepEqual(
        (({ role, claims, claim_role }) => ({ role, claims, claim_role }))(
          asAnon.body as Record<string, unknown>,
        ),
        { role: "anon", claims: { role: "anon" }, claim_role: "anon" },
      );
      const asService = await f.call(
        "/rest/v1/rpc/gwtest_whoami",
        post({}, { headers: { "x-probe": "here" } }),
      );
      assert.deepEqual(asService.body, {
        role: "service_role",
        claims: { role: "service_role" },
        claim_role: "service_role",
        method: "POST",
        path: "/rpc/gwtest_whoami",
        header_x_probe: "here",
        search_path: '"public", "extensions"',
        read_only: "on",
      });
      const asUser = await f.call(
        "/rest/v1/rpc/gwtest_whoami",
        post({}, { key: f.publishableKey, headers: { authorization: `Bearer ${f.userJwt}` } }),
      );
      const user = asUser.body as { role: string; claims: Record<string, unknown> };
      assert.equal(user.role, "authenticated");
      assert.equal(user.claims.sub, "user-1");
    });

    await t.step(
      "GET on rpc and table routes are 501: the product only POSTs to rpc",
      async () => {
        for (const path of ["/rest/v1/rpc/gwtest_add?a=1", "/rest/v1/gwtest_items"]) {
          const { status, body } = await f.call(path);
          assert.equal(status, 501);
          assert.equal((body as { code: string }).code, "PGRST127");
        }
      },
    );

    await t.step("other methods on rpc are 405 PGRST101; bad JSON is 400 PGRST102", async () => {
      const patch = await f.call("/rest/v1/rpc/gwtest_add", { method: "PATCH", body: "{}" });
      assert.equal(patch.status, 405);
      assert.equal((patch.body as { code: string }).code, "PGRST101");
      const bad = await f.call("/rest/v1/rpc/gwtest_add", { method: "POST", body: "{not json" });
      assert.equal(bad.status, 400);
      assert.equal((bad.body as { code: string }).code, "PGRST102");
    });
  } finally {
    await f.close();
  }
});

gatewayTest("rest authentication: apikey required, JWT verified", async () => {
  const f = await startFixture();
  try {
    const missing = await f.call("/rest/v1/rpc/gwtest_add", post({ a: 1 }, { key: "" }));
    assert.equal(missing.status, 401);
    assert.deepEqual(missing.body, { message: "No API key found in request" });
    const invalid = await f.call(
      "/rest/v1/rpc/gwtest_add",
      post({ a: 1 }, { key: "sb_secret_x" }),
    );
    assert.equal(invalid.status, 401);
    assert.deepEqual(invalid.body, { message: "Invalid API key" });
    const badJwt = await f.call(
      "/rest/v1/rpc/gwtest_add",
      post({ a: 1 }, { headers: { authorization: "Bearer a.b.c" } }),
    );
    assert.equal(badJwt.status, 401);
    assert.equal((badJwt.body as { code: string }).code, "PGRST301");
    assert.equal((await f.call("/health", { key: "" })).status, 200);
    assert.equal((await f.call("/nowhere", { key: "" })).status, 404);
  } finally {
    await f.close();
  }
});

gatewayTest("functions: proxied to the edge runtime with verify_jwt per function", async (t) => {
  const forwarded: Request[] = [];
  let upstreamDown = false;
  const f = await startFixture({
    functionRoutes: () =>
      Promise.resolve(
        new Map([
          ["guarded", { enabled: true, verifyJwt: true }],
          ["open", { enabled: true, verifyJwt: false }],
        ]),
      ),
    edgeUrl: "http://edge.local:9",
    fetch: (input, init) => {
      if (upstreamDown) return Promise.reject(new TypeError("connection refused"));
      forwarded.push(new Request(input, init));
      return Promise.resolve(
        new Response('{"from":"edge"}', {
          status: 202,
          headers: { "content-type": "application/json", "x-edge": "1" },
        }),
      );
    },
  });
  try {
    await t.step("verify_jwt on: no Authorization is 401 and nothing is forwarded", async () => {
      const { status, body } = await f.call("/functions/v1/guarded", post({}, { key: "" }));
      assert.equal(status, 401);
      assert.deepEqual(body, {
        code: "UNAUTHORIZED_NO_AUTH_HEADER",
        message: "Missing authorization header",
      });
      const secretAsBearer = await f.call(
        "/functions/v1/guarded",
        post({}, { headers: { authorization: `Bearer ${f.secretKey}` } }),
      );
      assert.equal(secretAsBearer.status, 401);
      assert.equal(forwarded.length, 0);
    });

    await t.step(
      "verify_jwt on: a valid JWT passes with path, query, method and body",
      async () => {
        const { status, body, headers } = await f.call("/functions/v1/guarded/sub/path?x=1", {
          method: "PUT",
          body: "payload",
          headers: { authorization: `Bearer ${f.userJwt}`, "x-custom": "kept" },
        });
        assert.equal(status, 202);
        assert.deepEqual(body, { from: "edge" });
        assert.equal(headers.get("x-edge"), "1");
        const sent = forwarded.at(-1)!;
        assert.equal(sent.url, "http://edge.local:9/guarded/sub/path?x=1");
        assert.equal(sent.method, "PUT");
        assert.equal(await sent.text(), "payload");
        assert.equal(sent.headers.get("x-custom"), "kept");
        assert.equal(sent.headers.get("authorization"), `Bearer ${f.userJwt}`);
      },
    );

    await t.step("verify_jwt off: the request passes untouched, with any or no key", async () => {
      const { status } = await f.call(
        "/functions/v1/open",
        post({ site_id: "x" }, { headers: { authorization: "Bearer sb_secret_whatever" } }),
      );
      assert.equal(status, 202);
      const sent = forwarded.at(-1)!;
      assert.equal(sent.url, "http://edge.local:9/open");
      assert.equal(sent.headers.get("authorization"), "Bearer sb_secret_whatever");
      assert.equal(sent.headers.get("apikey"), f.secretKey);
      assert.equal(await sent.text(), '{"site_id":"x"}');
    });

    await t.step("OPTIONS preflight is never JWT-checked", async () => {
      const { status } = await f.call("/functions/v1/guarded", { method: "OPTIONS", key: "" });
      assert.equal(status, 202);
    });

    await t.step("an unknown function is 404 NOT_FOUND", async () => {
      const { status, body } = await f.call("/functions/v1/nope", post({}));
      assert.equal(status, 404);
      assert.deepEqual(body, { code: "NOT_FOUND", message: "Requested function was not found" });
    });

    await t.step("an unreachable edge runtime is Kong's 502", async () => {
      upstreamDown = true;
      const { status, body } = await f.call("/functions/v1/open", post({}));
      assert.equal(status, 502);
      assert.deepEqual(body, {
        message: "An invalid response was received from the upstream server",
      });
    });
  } finally {
    await f.close();
  }
});

gatewayTest("supabase-js works against the real gateway server and edge runtime", async () => {
  const work = await Deno.makeTempDir({ prefix: "ha-gateway-e2e-" });
  const functionsDir = new URL("../edge-runtime/testdata/functions", import.meta.url).pathname;
  await Deno.writeTextFile(join(work, "functions.env"), "FROM_DOTENV=yes\n");
  await Deno.writeTextFile(
    join(work, "config.toml"),
    "[functions.served-default]\nverify_jwt = false\n",
  );
  const passthroughEnv: Record<string, string> = {};
  for (const key of DENO_PASSTHROUGH_ENV) {
    const value = Deno.env.get(key);
    if (value !== undefined) passthroughEnv[key] = value;
  }
  const runtime = createRuntime({
    functionsDir,
    envFile: join(work, "functions.env"),
    denoConfig: join(ROOT, "deno.json"),
    functionsLogFile: join(work, "functions.log"),
    wallClockMs: 400_000,
    graceMs: 1_000,
    bootTimeoutMs: 60_000,
    passthroughEnv,
    log: () => {},
  });
  const edge = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    runtime.handler,
  );
  const f = await startFixture({
    functionRoutes: () => loadFunctionRoutes(functionsDir, join(work, "config.toml")),
    edgeUrl: `http://127.0.0.1:${edge.addr.port}`,
  });
  const gateway = createGateway(f.deps);
  const api = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, gateway.handler);
  const url = `http://127.0.0.1:${api.addr.port}`;
  const options = { auth: { persistSession: false, autoRefreshToken: false } };
  try {
    const service = createClient(url, f.secretKey, options);
    const added = await service.rpc("gwtest_add", { a: 1 });
    assert.equal(added.error, null);
    assert.equal(added.data, 11);
    assert.equal(added.status, 200);

    const voided = await service.rpc("gwtest_nothing", { x: 7 });
    assert.equal(voided.error, null);
    assert.equal(voided.status, 204);
    assert.equal(voided.data, null);

    const failed = await service.rpc("gwtest_fail", { kind: "js" });
    assert.equal(failed.status, 400);
    assert.equal(failed.error?.code, "P0001");
    assert.equal(failed.error?.message, "boom: js");
    assert.equal(failed.error?.details, "the detail");
    assert.equal(failed.error?.hint, "the hint");

    const anon = createClient(url, f.publishableKey, options);
    const denied = await anon.rpc("gwtest_secret");
    assert.equal(denied.status, 401);
    assert.equal(denied.error?.code, "42501");
    const legacyAnon = createClient(url, f.env.SUPABASE_ANON_KEY, options);
    const whoami = await legacyAnon.rpc("gwtest_whoami");
    assert.equal((whoami.data as { role: string }).role, "anon");

    // Functions: legacy keys travel as a Bearer JWT and pass verify_jwt; new keys do not.
    const invoked = await legacyAnon.functions.invoke("probe/echo", { body: { hello: "edge" } });
    assert.equal(invoked.error, null);
    const echoed = invoked.data as {
      method: string;
      body: string;
      headers: Record<string, string>;
    };
    assert.equal(echoed.method, "POST");
    assert.deepEqual(JSON.parse(echoed.body), { hello: "edge" });
    assert.equal(echoed.headers.apikey, f.env.SUPABASE_ANON_KEY);
    const refused = await anon.functions.invoke("probe/echo", { body: {} });
    assert.equal((refused.error as { context?: Response })?.context?.status, 401);
    await (refused.error as { context?: Response })?.context?.body?.cancel();
    const open = await anon.functions.invoke("served-default", { method: "GET" });
    assert.equal(open.data, "default export saw /served-default");
  } finally {
    await api.shutdown();
    await f.close();
    await runtime.shutdown();
    await edge.shutdown();
    await Deno.remove(work, { recursive: true });
  }
});

gatewayTest("the gateway started by local/stack up serves supabase-js", async () => {
  const f = await startFixture();
  try {
    const options = { auth: { persistSession: false, autoRefreshToken: false } };
    const service = createClient(f.env.SUPABASE_URL, f.secretKey, options);
    const added = await service.rpc("gwtest_add", { a: 30, b: 12 });
    assert.equal(added.error, null);
    assert.equal(added.data, 42);
    const denied = await createClient(f.env.SUPABASE_URL, f.publishableKey, options)
      .rpc("gwtest_secret");
    assert.equal(denied.status, 401);
    const response = await fetch(`${f.env.SUPABASE_URL}/functions/v1/gwtest-none`, {
      method: "POST",
    });
    assert.equal(response.status, 404);
    assert.deepEqual(await response.json(), {
      code: "NOT_FOUND",
      message: "Requested function was not found",
    });
  } finally {
    await f.close();
  }
});
