// PostgREST stand-in: `POST /rest/v1/rpc/<fn>`, the one route the product calls (supabase-js
// `rpc()` in supabase/functions/hosting-automator/adapters/store.ts).
//
// Replaces: PostgREST 12 as Supabase runs it behind `/rest/v1` (schema `public`, extra search
// path `public, extensions`; docs/supabase.md).
// Follows: the function is looked up in pg_proc (cached 1 s; reloaded on a miss), chosen by the
// argument names given (all required ones present, no unknown one), called with named arguments
// cast from JSON to the declared types (`json_to_record`, as PostgREST does) inside a
// transaction that sets `role`, `request.jwt.claims`, `request.jwt.claim.role`,
// `request.method`, `request.path`, `request.headers` and `search_path` (read-only for
// stable/immutable functions). Answers: a scalar → its JSON value, void → 204; 404 PGRST202 /
// 300 PGRST203 with PostgREST's texts; database errors via pg_errors.ts.
// Differs, because the product never asks for it: no table routes, no GET/HEAD calls, no `Prefer`
// or `Accept` handling (`count=`, `.single()`), no set-returning or composite results, no single
// unnamed json parameter, no per-role settings; those answer 501 PGRST127.

import postgres from "postgres";
import type { Caller } from "./auth.ts";
import { notImplemented, postgrestError, rawJson } from "./http.ts";
import { responseForDatabaseError } from "./pg_errors.ts";

type Sql = postgres.Sql;

/** The `authenticator` connection (PostgREST's login role). */
export function connectAuthenticator(url: string, max = 10): Sql {
  return postgres(url, { max, idle_timeout: 30, connect_timeout: 10, onnotice: () => {} });
}

export interface PostgrestOptions {
  /** Connection as the `authenticator` role, made by connectAuthenticator. */
  sql: Sql;
  schemaCacheMs?: number;
}

interface Routine {
  params: { name: string; type: string; hasDefault: boolean }[];
  returns: "void" | "scalar" | "rows";
  readOnly: boolean;
}

interface RoutineRow {
  setof: boolean;
  volatility: string;
  ndefaults: number;
  returns_void: boolean;
  returns_composite: boolean;
  argnames: string[];
  argmodes: string[];
  argtypes: string[];
}

const SCHEMA = "public";
const SEARCH_PATH = '"public", "extensions"';

const ROUTINES_SQL = `
select p.proretset as setof,
       p.provolatile::text as volatility,
       p.pronargdefaults::int as ndefaults,
       p.prorettype = 'void'::regtype as returns_void,
       (t.typtype = 'c' or (p.prorettype = 'record'::regtype
         and coalesce(p.proargmodes::text[] && array['o','b','t'], false))) as returns_composite,
       coalesce(p.proargnames, '{}') as argnames,
       coalesce(p.proargmodes::text[], '{}') as argmodes,
       array(select format_type(u.x, null)
               from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]))
                    with ordinality as u(x, i)
              order by u.i) as argtypes
  from pg_proc p
  join pg_namespace n on n.oid = p.pronamespace
  join pg_type t on t.oid = p.prorettype
 where n.nspname = $1 and p.proname = $2 and p.prokind = 'f'`;

function toRoutine(row: RoutineRow): Routine {
  const inputs = row.argtypes.flatMap((type, i) =>
    ["i", "b", "v"].includes(row.argmodes[i] ?? "i") ? [{ name: row.argnames[i] ?? "", type }] : []
  );
  const firstDefault = inputs.length - row.ndefaults;
  return {
    params: inputs.map((p, i) => ({ ...p, hasDefault: i >= firstDefault })),
    returns: row.returns_void ? "void" : row.setof || row.returns_composite ? "rows" : "scalar",
    readOnly: row.volatility !== "v",
  };
}

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export function createPostgrest(options: PostgrestOptions) {
  const { sql } = options;
  const cacheMs = options.schemaCacheMs ?? 1000;
  const cache = new Map<string, { at: number; routines: Routine[] }>();

  async function routines(name: string, fresh: boolean): Promise<Routine[]> {
    const cached = cache.get(name);
    if (!fresh && cached && Date.now() - cached.at < cacheMs) return cached.routines;
    const rows = await sql.unsafe<RoutineRow[]>(ROUTINES_SQL, [SCHEMA, name]);
    const found = rows.map(toRoutine);
    cache.set(name, { at: Date.now(), routines: found });
    return found;
  }

  function noSuchFunction(name: string, keys: string[], overloads: Routine[]) {
    const sorted = [...keys].sort();
    const func = `${SCHEMA}.${name}`;
    const paramsText = sorted.length === 0 ? " without parameters" : `(${sorted.join(", ")})`;
    const detailParams = sorted.length === 0
      ? " without parameters"
      : ` with parameter${sorted.length > 1 ? "s" : ""} ${sorted.join(", ")}`;
    // PostgREST fuzzy-matches the overloads' parameter lists; the closest one here is the one
    // sharing the most names with the request.
    const shared = (r: Routine) => r.params.filter((p) => keys.includes(p.name)).length;
    const best = [...overloads].sort((a, b) => shared(b) - shared(a))[0];
    const hint = best
      ? `Perhaps you meant to call the function ${func}(${
        best.params.map((p) => p.name).sort().join(", ")
      })`
      : null;
    return postgrestError(
      404,
      "PGRST202",
      `Could not find the function ${func}${paramsText} in the schema cache`,
      `Searched for the function ${func}${detailParams} or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.`,
      hint,
    );
  }

  function matches(routine: Routine, keys: string[]): boolean {
    const names = new Set(routine.params.map((p) => p.name));
    return keys.every((k) => names.has(k)) &&
      routine.params.every((p) => p.hasDefault || keys.includes(p.name));
  }

  async function chooseRoutine(name: string, keys: string[]): Promise<Routine | Response> {
    for (const fresh of [false, true]) {
      const candidates = await routines(name, fresh);
      const named = candidates.filter((r) => matches(r, keys));
      if (named.length === 1) return named[0];
      if (named.length > 1) {
        return postgrestError(
          300,
          "PGRST203",
          `Could not choose the best candidate function between: ${
            named.map((r) =>
              `${SCHEMA}.${name}(${r.params.map((p) => `${p.name} => ${p.type}`).join(", ")})`
            ).join(", ")
          }`,
          null,
          "Try renaming the parameters or the function itself in the database so function overloading can be resolved",
        );
      }
      if (fresh) return noSuchFunction(name, keys, candidates);
    }
    throw new Error("unreachable");
  }

  async function rpc(request: Request, name: string, caller: Caller): Promise<Response> {
    if (request.method === "GET" || request.method === "HEAD") {
      return notImplemented(`${request.method} on rpc is not modelled: the product POSTs`);
    }
    if (request.method !== "POST") {
      return postgrestError(405, "PGRST101", `Cannot use the ${request.method} method on RPC`);
    }
    const rawBody = (await request.text()).trim() || "{}";
    let args: unknown;
    try {
      args = JSON.parse(rawBody);
    } catch { /* answered below */ }
    if (!args || typeof args !== "object" || Array.isArray(args)) {
      return postgrestError(400, "PGRST102", "Empty or invalid json");
    }
    const keys = Object.keys(args);
    const routine = await chooseRoutine(name, keys);
    if (routine instanceof Response) return routine;
    if (routine.returns === "rows") {
      return notImplemented("set-returning and composite results are not modelled");
    }

    const given = routine.params.filter((p) => keys.includes(p.name));
    const call = `${quoteIdent(SCHEMA)}.${quoteIdent(name)}(${
      given.map((p) => `${quoteIdent(p.name)} := _.${quoteIdent(p.name)}`).join(", ")
    })`;
    const from = given.length === 0
      ? ""
      : ` from json_to_record($1::text::json) as _(${
        given.map((p) => `${quoteIdent(p.name)} ${p.type}`).join(", ")
      })`;
    const url = new URL(request.url);
    return await sql.begin(routine.readOnly ? "read only" : "read write", async (tx) => {
      await tx.unsafe(
        `select set_config('search_path', $1, true),
                set_config('role', $2, true),
                set_config('request.jwt.claims', $3, true),
                set_config('request.jwt.claim.role', $2, true),
                set_config('request.method', $4, true),
                set_config('request.path', $5, true),
                set_config('request.headers', $6, true)`,
        [
          SEARCH_PATH,
          caller.role,
          JSON.stringify(caller.claims),
          request.method,
          url.pathname.replace(/^\/rest\/v1/, ""),
          JSON.stringify(Object.fromEntries(request.headers)),
        ],
      );
      const values = given.length === 0 ? [] : [rawBody];
      if (routine.returns === "void") {
        await tx.unsafe(`select ${call}${from}`, values);
        return new Response(null, { status: 204 });
      }
      const rows = await tx.unsafe<{ body: string | null }[]>(
        `select to_json(${call})::text as body${from}`,
        values,
      );
      return rawJson(rows[0]?.body ?? "null");
    }) as Response;
  }

  /** Serves a request whose path is what follows `/rest/v1`. */
  async function handle(request: Request, path: string, caller: Caller): Promise<Response> {
    const profile = request.headers.get("accept-profile") ?? request.headers.get("content-profile");
    if (profile && profile !== SCHEMA) {
      return postgrestError(406, "PGRST106", `The schema must be one of the following: ${SCHEMA}`);
    }
    const segments = path.split("/").filter((s) => s !== "").map(decodeURIComponent);
    if (segments.length !== 2 || segments[0] !== "rpc") {
      return notImplemented("only /rest/v1/rpc/<function> is modelled: the product calls no table");
    }
    try {
      return await rpc(request, segments[1], caller);
    } catch (err) {
      return responseForDatabaseError(err, caller.role);
    }
  }

  return { handle };
}

export type Postgrest = ReturnType<typeof createPostgrest>;
