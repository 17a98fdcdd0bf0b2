// Local API gateway: the stand-in for Kong + PostgREST (+ the functions gateway) of a project.
//
// Replaces: the project URL `SUPABASE_URL` (Kong) with `/rest/v1` (PostgREST 12) and
// `/functions/v1` (edge runtime) behind it (docs/supabase.md), as far as the
// product and its tests use them: RPC calls and function calls.
// Follows: `/rest/v1/*` needs a project API key (auth.ts) and `/rest/v1/rpc/<fn>` is served by
// postgrest.ts as the caller's role over an `authenticator` connection; `/functions/v1/<name>[/…]` is proxied to the
// edge-runtime stand-in as `/<name>[/…]` (method, headers, body, status, response headers), with
// `verify_jwt` per function from supabase/config.toml (default true; OPTIONS is never checked),
// 404 `{"code":"NOT_FOUND",…}` for an unknown or disabled function, Kong's 502/504 texts when
// the runtime fails or exceeds 150 s; `/health` answers 200 when the database is reachable.
// Differs: no TLS, no CORS headers, no rate limits, no `/auth/v1`,
// `/storage/v1`, `/realtime/v1`; responses are buffered (no streaming).
//
// Run (by `up`): deno run --allow-net --allow-env --allow-read gateway.ts
// Settings (stack.env + lib.sh): HA_API_PORT, HA_EDGE_PORT, HA_AUTHENTICATOR_DB_URL,
// HA_JWT_SECRET, SUPABASE_ANON_KEY, SUPABASE_SERVICE_ROLE_KEY, SUPABASE_PUBLISHABLE_KEYS,
// SUPABASE_SECRET_KEYS, HA_ROOT; optional HA_FUNCTIONS_DIR.

import { join } from "node:path";
import type postgres from "postgres";
import { type ApiKeys, apiKeysFromEnv, authenticateRest, rejectWithoutValidJwt } from "./auth.ts";
import { type FunctionSettings, loadFunctionRoutes } from "./function_config.ts";
import { json } from "./http.ts";
import { connectAuthenticator, createPostgrest } from "./postgrest.ts";
import { forwardedRequestHeaders, relayedResponseHeaders } from "../proxy_headers.ts";

export interface GatewayDeps {
  /** Connection as the `authenticator` role (PostgREST's login role): connectAuthenticator. */
  sql: postgres.Sql;
  keys: ApiKeys;
  jwtSecret: string;
  /** The routable functions and their settings, read per request. */
  functionRoutes: () => Promise<Map<string, FunctionSettings>>;
  /** Base URL of the edge-runtime stand-in, e.g. http://127.0.0.1:54327. */
  edgeUrl: string;
  fetch?: typeof fetch;
  functionsTimeoutMs?: number;
  schemaCacheMs?: number;
}

export function createGateway(deps: GatewayDeps) {
  const doFetch = deps.fetch ?? fetch;
  const timeoutMs = deps.functionsTimeoutMs ?? 150_000;
  const postgrest = createPostgrest({ sql: deps.sql, schemaCacheMs: deps.schemaCacheMs });

  async function health(): Promise<Response> {
    try {
      await deps.sql`select 1`;
      return json({ status: "ok" });
    } catch (err) {
      return json({ status: "database unreachable", error: String(err) }, 503);
    }
  }

  async function rest(request: Request, path: string): Promise<Response> {
    const auth = await authenticateRest(request, deps.keys, deps.jwtSecret);
    if (!auth.ok) return auth.response;
    return await postgrest.handle(request, path, auth.caller);
  }

  async function functions(request: Request, path: string): Promise<Response> {
    const url = new URL(request.url);
    const name = path.split("/")[1] ?? "";
    const settings = (await deps.functionRoutes()).get(name);
    if (!settings) {
      return json({ code: "NOT_FOUND", message: "Requested function was not found" }, 404);
    }
    if (settings.verifyJwt && request.method !== "OPTIONS") {
      const rejected = await rejectWithoutValidJwt(request, deps.jwtSecret);
      if (rejected) return rejected;
    }

    const headers = forwardedRequestHeaders(request.headers);
    const body = request.method === "GET" || request.method === "HEAD"
      ? undefined
      : await request.arrayBuffer();
    let upstream: Response;
    try {
      upstream = await doFetch(`${deps.edgeUrl}${path}${url.search}`, {
        method: request.method,
        headers,
        body,
        redirect: "manual",
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      if (err instanceof DOMException && err.name === "TimeoutError") {
        return json({ message: "The upstream server is timing out" }, 504);
      }
      return json({ message: "An invalid response was received from the upstream server" }, 502);
    }
    const responseHeaders = relayedResponseHeaders(upstream.headers);
    const responseBody = await upstream.arrayBuffer();
    return new Response(
      request.method === "HEAD" || upstream.status === 204 || upstream.status === 304
        ? null
        : responseBody,
      { status: upstream.status, statusText: upstream.statusText, headers: responseHeaders },
    );
  }

  async function handler(request: Request): Promise<Response> {
    const { pathname } = new URL(request.url);
    if (pathname === "/health") return await health();
    const restMatch = pathname.match(/^\/rest\/v1(\/.*)?$/);
    if (restMatch) return await rest(request, restMatch[1] ?? "/");
    const functionsMatch = pathname.match(/^\/functions\/v1(\/.*)?$/);
    if (functionsMatch) return await functions(request, functionsMatch[1] ?? "/");
    return json({ message: "no Route matched with those values" }, 404);
  }

  return { handler };
}

function requiredEnv(name: string): string {
  const value = Deno.env.get(name);
  if (!value) throw new Error(`${name} is not set (stack.env and local/lib.sh provide it)`);
  return value;
}

function main(): void {
  const port = Number(requiredEnv("HA_API_PORT"));
  const root = requiredEnv("HA_ROOT");
  const functionsDir = Deno.env.get("HA_FUNCTIONS_DIR") || join(root, "supabase", "functions");
  const configPath = join(root, "supabase", "config.toml");
  const sql = connectAuthenticator(requiredEnv("HA_AUTHENTICATOR_DB_URL"));
  const gateway = createGateway({
    sql,
    keys: apiKeysFromEnv((name) => Deno.env.get(name)),
    jwtSecret: requiredEnv("HA_JWT_SECRET"),
    functionRoutes: () => loadFunctionRoutes(functionsDir, configPath),
    edgeUrl: `http://127.0.0.1:${requiredEnv("HA_EDGE_PORT")}`,
  });
  const log = (message: string) => console.log(`${new Date().toISOString()} ${message}`);
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port,
    onListen: () => log(`api gateway stand-in listening on 127.0.0.1:${port}`),
  }, async (request) => {
    const started = Date.now();
    const response = await gateway.handler(request);
    const { pathname } = new URL(request.url);
    log(`${request.method} ${pathname} ${response.status} ${Date.now() - started}ms`);
    return response;
  });
  const stop = async () => {
    await server.shutdown();
    await sql.end({ timeout: 5 });
    log("stopped");
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", () => void stop());
  Deno.addSignalListener("SIGINT", () => void stop());
}

if (import.meta.main) main();
