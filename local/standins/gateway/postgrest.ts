// PostgREST stand-in: `/rest/v1/rpc/<fn>` and a small part of `/rest/v1/<table>`.
//
// Replaces: PostgREST 12 as Supabase runs it behind `/rest/v1` (schema `public`, extra search
// path `public, extensions`; reference/supabase.md §6, §7).
// Follows, for RPC: the function is looked up in pg_proc (cached; reloaded on a miss), chosen by
// the argument names given (all required ones present, no unknown one; a single unnamed
// json/jsonb parameter takes the whole POST body), called with named arguments cast from JSON to
// the declared types (`json_to_record`, as PostgREST does) inside a transaction that sets
// `role`, `request.jwt.claims`, `request.jwt.claim.role`, `request.method`, `request.path`,
// `request.headers` and `search_path` (read-only for GET/HEAD and for stable/immutable
// functions). Answers: scalar → its JSON value, composite → object, setof → array, void → 204;
// 404 PGRST202 / 300 PGRST203 with PostgREST's texts; database errors via pg_errors.ts.
// `Accept: application/vnd.pgrst.object+json` (supabase-js `.single()`) → one object or 406
// PGRST116; `Prefer: count=exact` → Content-Range total.
// For tables: GET/HEAD with select=, filters, order=, limit=, offset= (query_params.ts); POST
// inserts (object, array, `columns=`), PATCH and DELETE with filters, `Prefer: return=
// representation|minimal`; PATCH/DELETE without a filter fail like Supabase's pg-safeupdate.
// Differs: no upsert (`on_conflict`, `Prefer: resolution`), no embedding, no `Accept-Profile`
// other than public, no CSV/GeoJSON, no `missing=default`, no OpenAPI root; those answer
// 501/406. Role settings (`alter role anon set statement_timeout`) are applied per transaction
// as PostgREST 11+ does, for settings of context `user` only. Schema-cache entries live 1 s (PostgREST
// reloads on `NOTIFY pgrst`); a stale shape is re-read after the TTL or on a miss.

import postgres from "postgres";
import type { Caller } from "./auth.ts";
import { notImplemented, postgrestError, rawJson } from "./http.ts";
import { responseForDatabaseError } from "./pg_errors.ts";
import {
  columnsParam,
  limitClause,
  orderClause,
  Params,
  QueryError,
  quoteIdent,
  RESERVED_PARAMS,
  selectList,
  UnsupportedQuery,
  whereClause,
} from "./query_params.ts";

type Sql = postgres.Sql;
type Tx = postgres.TransactionSql;

/**
 * The `authenticator` connection this stand-in expects (see connectAuthenticator): a filter value
 * compared with a json/jsonb column must reach PostgreSQL as written, like PostgREST's untyped
 * literals, so strings bound to json/jsonb parameters are not JSON-encoded a second time.
 */
export function connectAuthenticator(url: string, max = 10): Sql {
  return postgres(url, {
    max,
    idle_timeout: 30,
    connect_timeout: 10,
    onnotice: () => {},
    types: {
      json: {
        to: 114,
        from: [114, 3802],
        serialize: (value: unknown) => typeof value === "string" ? value : JSON.stringify(value),
        parse: (raw: string) => JSON.parse(raw),
      },
    },
  }) as unknown as Sql;
}

export interface PostgrestOptions {
  /** Connection as the `authenticator` role, made by connectAuthenticator. */
  sql: Sql;
  schema?: string;
  extraSearchPath?: string[];
  schemaCacheMs?: number;
}

interface RoutineParam {
  name: string;
  type: string;
  hasDefault: boolean;
}

interface Routine {
  name: string;
  params: RoutineParam[];
  returns: "void" | "scalar" | "composite";
  setof: boolean;
  readOnly: boolean;
  /** `f(json)` / `f(jsonb)` with one unnamed parameter: receives the whole POST body. */
  singleJsonParam: boolean;
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

// Database-specific settings come last, so they win over settings for all databases.
const ROLE_SETTINGS_SQL = `
select split_part(s.setting, '=', 1) as name, substr(s.setting, strpos(s.setting, '=') + 1) as value
  from pg_db_role_setting d
  join pg_roles r on r.oid = d.setrole
  cross join lateral unnest(d.setconfig) as s(setting)
  join pg_settings p on p.name = split_part(s.setting, '=', 1) and p.context = 'user'
 where r.rolname = $1
   and d.setdatabase in (0, (select oid from pg_database where datname = current_database()))
 order by d.setdatabase`;

function toRoutine(name: string, row: RoutineRow): Routine {
  const inputs: { name: string; type: string }[] = [];
  row.argtypes.forEach((type, i) => {
    const mode = row.argmodes[i] ?? "i";
    if (mode === "i" || mode === "b" || mode === "v") {
      inputs.push({ name: row.argnames[i] ?? "", type });
    }
  });
  const firstDefault = inputs.length - row.ndefaults;
  return {
    name,
    params: inputs.map((p, i) => ({ ...p, hasDefault: i >= firstDefault })),
    returns: row.returns_void ? "void" : row.returns_composite ? "composite" : "scalar",
    setof: row.setof,
    readOnly: row.volatility !== "v",
    singleJsonParam: inputs.length === 1 && inputs[0].name === "" &&
      (inputs[0].type === "json" || inputs[0].type === "jsonb"),
  };
}

interface Prefer {
  return?: string;
  count?: string;
  resolution?: string;
  missing?: string;
}

function parsePrefer(request: Request): Prefer {
  const prefer: Record<string, string> = {};
  for (const part of (request.headers.get("prefer") ?? "").split(",")) {
    const [key, value] = part.trim().split("=");
    if (key && value) prefer[key.trim()] = value.trim();
  }
  return prefer;
}

function wantsSingleObject(request: Request): boolean {
  return (request.headers.get("accept") ?? "").includes("application/vnd.pgrst.object");
}

function acceptsJson(request: Request): boolean {
  const accept = request.headers.get("accept");
  if (!accept) return true;
  return /(^|,)\s*(\*\/\*|application\/\*|application\/json|application\/vnd\.pgrst\.(object|array)(\+json)?)/
    .test(accept);
}

class RequestError extends Error {
  constructor(readonly response: Response) {
    super("request error");
  }
}

/** Rows of json_agg output: the array, its first element and the row count. */
interface Aggregate {
  body: string;
  first: string | null;
  n: number;
}

/** The select list that turns rows `s` (or values `s.v`) into an Aggregate. */
function aggregate(rows: "s" | "s.v"): string {
  return `coalesce(json_agg(${rows}), '[]')::text as body, (json_agg(${rows}) -> 0)::text as first,
    count(*)::int as n`;
}

export function createPostgrest(options: PostgrestOptions) {
  const { sql } = options;
  const schema = options.schema ?? "public";
  const searchPath = (options.extraSearchPath ?? ["public", "extensions"])
    .filter((s) => s !== schema);
  const searchPathValue = [schema, ...searchPath].map(quoteIdent).join(", ");
  const cacheMs = options.schemaCacheMs ?? 1000;
  const cache = new Map<string, { at: number; routines: Routine[] }>();

  async function routines(name: string, fresh: boolean): Promise<Routine[]> {
    const cached = cache.get(name);
    if (!fresh && cached && Date.now() - cached.at < cacheMs) return cached.routines;
    const rows = await sql.unsafe<RoutineRow[]>(ROUTINES_SQL, [schema, name]);
    const found = rows.map((row) => toRoutine(name, row));
    cache.set(name, { at: Date.now(), routines: found });
    return found;
  }

  const roleSettingsCache = new Map<string, { at: number; settings: [string, string][] }>();

  /** `alter role … set x = y` settings of the role, applied like PostgREST 11+ does. */
  async function roleSettings(role: string): Promise<[string, string][]> {
    const cached = roleSettingsCache.get(role);
    if (cached && Date.now() - cached.at < cacheMs) return cached.settings;
    const rows = await sql.unsafe<{ name: string; value: string }[]>(ROLE_SETTINGS_SQL, [role]);
    const settings = rows.map((r) => [r.name, r.value] as [string, string]);
    roleSettingsCache.set(role, { at: Date.now(), settings });
    return settings;
  }

  async function transaction<T>(
    request: Request,
    caller: Caller,
    readOnly: boolean,
    work: (tx: Tx) => Promise<T>,
  ): Promise<T> {
    const url = new URL(request.url);
    const headers = Object.fromEntries(request.headers);
    const settings = await roleSettings(caller.role);
    return await sql.begin(readOnly ? "read only" : "read write", async (tx) => {
      await tx.unsafe(
        `select set_config('search_path', $1, true),
                set_config('role', $2, true),
                set_config('request.jwt.claims', $3, true),
                set_config('request.jwt.claim.role', $2, true),
                set_config('request.method', $4, true),
                set_config('request.path', $5, true),
                set_config('request.headers', $6, true)`,
        [
          searchPathValue,
          caller.role,
          JSON.stringify(caller.claims),
          request.method,
          url.pathname.replace(/^\/rest\/v1/, ""),
          JSON.stringify(headers),
        ],
      );
      if (settings.length > 0) {
        await tx.unsafe(
          `select ${settings.map((_, i) => `set_config($${2 * i + 1}, $${2 * i + 2}, true)`)}`,
          settings.flat(),
        );
      }
      return await work(tx);
    }) as T;
  }

  /** Array or single-object answer for a set of rows, with Content-Range like PostgREST. */
  function rowsResponse(
    request: Request,
    agg: Aggregate,
    options: { status?: number; offset?: number; total?: number; head?: boolean } = {},
  ): Response {
    const offset = options.offset ?? 0;
    const range = agg.n === 0 ? "*" : `${offset}-${offset + agg.n - 1}`;
    const headers: Record<string, string> = {
      "content-range": `${range}/${options.total ?? "*"}`,
    };
    if (wantsSingleObject(request)) {
      if (agg.n !== 1) {
        return postgrestError(
          406,
          "PGRST116",
          "JSON object requested, multiple (or no) rows returned",
          `The result contains ${agg.n} rows`,
        );
      }
      return rawJson(options.head ? "" : agg.first ?? "null", options.status ?? 200, headers);
    }
    let status = options.status ?? 200;
    if (options.total !== undefined && status === 200 && agg.n < options.total) status = 206;
    return rawJson(options.head ? "" : agg.body, status, headers);
  }

  function noSuchFunction(name: string, keys: string[], post: boolean, overloads: Routine[]) {
    const sorted = [...keys].sort();
    const func = `${schema}.${name}`;
    const paramsText = sorted.length === 0 ? " without parameters" : `(${sorted.join(", ")})`;
    const detailParams = sorted.length === 0
      ? " without parameters"
      : ` with parameter${sorted.length > 1 ? "s" : ""} ${sorted.join(", ")}`;
    let hint: string | null = null;
    if (overloads.length > 0) {
      // PostgREST fuzzy-matches the overloads' parameter lists; the closest one here is the one
      // sharing the most names with the request.
      const best = [...overloads].sort((a, b) =>
        b.params.filter((p) =>
          keys.includes(p.name)
        ).length -
        a.params.filter((p) => keys.includes(p.name)).length
      )[0];
      const names = best.params.map((p) => p.name).sort().join(", ");
      hint = `Perhaps you meant to call the function ${func}(${names})`;
    }
    return postgrestError(
      404,
      "PGRST202",
      `Could not find the function ${func}${paramsText} in the schema cache`,
      `Searched for the function ${func}${detailParams}${
        post ? " or with a single unnamed json/jsonb parameter" : ""
      }, but no matches were found in the schema cache.`,
      hint,
    );
  }

  function matches(routine: Routine, keys: string[]): boolean {
    if (routine.params.some((p) => p.name === "")) return false;
    const names = new Set(routine.params.map((p) => p.name));
    return keys.every((k) => names.has(k)) &&
      routine.params.every((p) => p.hasDefault || keys.includes(p.name));
  }

  async function chooseRoutine(
    name: string,
    keys: string[],
    post: boolean,
  ): Promise<Routine | Response> {
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
              `${schema}.${name}(${r.params.map((p) => `${p.name} => ${p.type}`).join(", ")})`
            ).join(", ")
          }`,
          null,
          "Try renaming the parameters or the function itself in the database so function overloading can be resolved",
        );
      }
      const single = post ? candidates.find((r) => r.singleJsonParam) : undefined;
      if (single) return single;
      if (fresh) return noSuchFunction(name, keys, post, candidates);
    }
    throw new Error("unreachable");
  }

  async function rpc(request: Request, name: string, caller: Caller): Promise<Response> {
    const method = request.method;
    if (method !== "GET" && method !== "HEAD" && method !== "POST") {
      return postgrestError(405, "PGRST101", `Cannot use the ${method} method on RPC`);
    }
    const url = new URL(request.url);
    const post = method === "POST";
    let args: Record<string, unknown> = {};
    let rawBody = "{}";
    if (post) {
      rawBody = (await request.text()).trim() || "{}";
      let parsed: unknown;
      try {
        parsed = JSON.parse(rawBody);
      } catch {
        return postgrestError(400, "PGRST102", "Empty or invalid json");
      }
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
        return postgrestError(400, "PGRST102", "Empty or invalid json");
      }
      args = parsed as Record<string, unknown>;
    } else {
      for (const [key, value] of url.searchParams) if (!RESERVED_PARAMS.has(key)) args[key] = value;
    }
    const keys = Object.keys(args);
    const chosen = await chooseRoutine(name, keys, post);
    if (chosen instanceof Response) return chosen;
    const routine = chosen;

    const params = new Params();
    const fn = `${quoteIdent(schema)}.${quoteIdent(name)}`;
    let call: string;
    let from: string;
    if (routine.singleJsonParam && !matches(routine, keys)) {
      call = `${fn}(${params.add(rawBody)}::text::${routine.params[0].type})`;
      from = "";
    } else if (keys.length === 0) {
      call = `${fn}()`;
      from = "";
    } else if (post) {
      const given = routine.params.filter((p) => keys.includes(p.name));
      const columns = given.map((p) => `${quoteIdent(p.name)} ${p.type}`).join(", ");
      call = `${fn}(${
        given.map((p) => `${quoteIdent(p.name)} := _.${quoteIdent(p.name)}`).join(", ")
      })`;
      from = `json_to_record(${params.add(rawBody)}::text::json) as _(${columns})`;
    } else {
      const given = routine.params.filter((p) => keys.includes(p.name));
      call = `${fn}(${
        given.map((p) => `${quoteIdent(p.name)} := ${params.add(args[p.name])}::text::${p.type}`)
          .join(", ")
      })`;
      from = "";
    }

    // Filters, select=, order=, limit= apply to the rows of composite results (POST only for
    // filters, since on GET every other parameter is an argument).
    const resultParams = new URLSearchParams(post ? url.search : "");
    for (const key of ["select", "order", "limit", "offset"]) {
      const value = url.searchParams.get(key);
      if (value !== null) resultParams.set(key, value);
    }
    const readOnly = !post || routine.readOnly;
    const prefer = parsePrefer(request);
    const head = method === "HEAD";

    return await transaction(request, caller, readOnly, async (tx) => {
      if (routine.returns === "void") {
        await tx.unsafe(`select ${call}${from ? ` from ${from}` : ""}`, params.values as never[]);
        return new Response(null, { status: 204 });
      }
      if (routine.returns === "scalar" && !routine.setof) {
        const rows = await tx.unsafe<{ body: string | null }[]>(
          `select to_json(${call})::text as body${from ? ` from ${from}` : ""}`,
          params.values as never[],
        );
        return rawJson(head ? "" : rows[0]?.body ?? "null");
      }
      const source = `${from ? `${from} cross join lateral ` : ""}${call} as t${
        routine.returns === "scalar" ? "(v)" : ""
      }`;
      const projection = routine.returns === "scalar"
        ? "t.v"
        : selectList(resultParams.get("select"));
      const where = routine.returns === "composite" ? whereClause(resultParams, params) : "";
      const order = routine.returns === "composite" ? orderClause(resultParams.get("order")) : "";
      const limit = limitClause(resultParams, params);
      const rows = await tx.unsafe<Aggregate[]>(
        `select ${
          aggregate(routine.returns === "scalar" ? "s.v" : "s")
        } from (select ${projection} from ${source} ${where} ${order} ${limit}) s`,
        params.values as never[],
      );
      const agg = rows[0];
      if (!routine.setof) return rawJson(head ? "" : agg.first ?? "null");
      const total = prefer.count === "exact" && !resultParams.has("limit") &&
          !resultParams.has("offset")
        ? agg.n
        : undefined;
      return rowsResponse(request, agg, { total, head });
    });
  }

  async function readTable(request: Request, table: string, caller: Caller): Promise<Response> {
    const url = new URL(request.url);
    const params = new Params();
    const relation = `${quoteIdent(schema)}.${quoteIdent(table)}`;
    const projection = selectList(url.searchParams.get("select"));
    const where = whereClause(url.searchParams, params);
    const order = orderClause(url.searchParams.get("order"));
    const filterValues = [...params.values];
    const limit = limitClause(url.searchParams, params);
    const prefer = parsePrefer(request);
    return await transaction(request, caller, true, async (tx) => {
      const [agg] = await tx.unsafe<Aggregate[]>(
        `select ${
          aggregate("s")
        } from (select ${projection} from ${relation} t ${where} ${order} ${limit}) s`,
        params.values as never[],
      );
      let total: number | undefined;
      if (prefer.count === "exact") {
        const [row] = await tx.unsafe<{ total: number }[]>(
          `select count(*)::int as total from ${relation} t ${where}`,
          filterValues as never[],
        );
        total = row.total;
      }
      return rowsResponse(request, agg, {
        offset: Number(url.searchParams.get("offset") ?? 0),
        total,
        head: request.method === "HEAD",
      });
    });
  }

  async function readJsonBody(request: Request): Promise<unknown> {
    const text = (await request.text()).trim();
    try {
      return JSON.parse(text === "" ? "{}" : text);
    } catch {
      throw new RequestError(postgrestError(400, "PGRST102", "Empty or invalid json"));
    }
  }

  async function writeTable(request: Request, table: string, caller: Caller): Promise<Response> {
    const url = new URL(request.url);
    const prefer = parsePrefer(request);
    if (url.searchParams.has("on_conflict") || prefer.resolution) {
      return notImplemented("upsert (on_conflict, Prefer: resolution) is not supported");
    }
    const representation = prefer.return === "representation";
    const relation = `${quoteIdent(schema)}.${quoteIdent(table)}`;
    const params = new Params();
    let statement: string;
    let status: number;

    if (request.method === "POST") {
      const body = await readJsonBody(request);
      const rows = Array.isArray(body) ? body : [body];
      if (rows.some((r) => !r || typeof r !== "object" || Array.isArray(r))) {
        return postgrestError(400, "PGRST102", "Empty or invalid json");
      }
      const objects = rows as Record<string, unknown>[];
      let columns = columnsParam(url.searchParams.get("columns"));
      if (!columns) {
        columns = Object.keys(objects[0] ?? {});
        const expected = [...columns].sort().join(",");
        if (objects.some((o) => Object.keys(o).sort().join(",") !== expected)) {
          return postgrestError(400, "PGRST102", "All object keys must match");
        }
      } else if (
        prefer.missing === "default" && objects.some((o) => columns!.some((c) => !(c in o)))
      ) {
        return notImplemented("Prefer: missing=default with absent keys is not supported");
      }
      status = 201;
      if (objects.length === 0) return new Response(null, { status });
      const list = columns.map(quoteIdent).join(", ");
      statement = columns.length === 0
        ? `insert into ${relation} default values`
        : `insert into ${relation} (${list}) select ${list}
             from json_populate_recordset(null::${relation}, ${
          params.add(JSON.stringify(objects))
        }::text::json)`;
    } else {
      const where = whereClause(url.searchParams, params);
      if (where === "") {
        const verb = request.method === "PATCH" ? "UPDATE" : "DELETE";
        return postgrestError(400, "21000", `${verb} requires a WHERE clause`);
      }
      status = representation ? 200 : 204;
      if (request.method === "PATCH") {
        const body = await readJsonBody(request);
        if (!body || typeof body !== "object" || Array.isArray(body)) {
          return postgrestError(400, "PGRST102", "Empty or invalid json");
        }
        const columns = Object.keys(body);
        if (columns.length === 0) return new Response(null, { status: 204 });
        const assignments = columns.map((c) => `${quoteIdent(c)} = pgrst_body.${quoteIdent(c)}`);
        statement = `update ${relation} as t set ${assignments.join(", ")}
          from json_populate_record(null::${relation}, ${
          params.add(JSON.stringify(body))
        }::text::json)
            as pgrst_body ${where}`;
      } else {
        statement = `delete from ${relation} as t ${where}`;
      }
    }

    return await transaction(request, caller, false, async (tx) => {
      if (!representation) {
        await tx.unsafe(statement, params.values as never[]);
        return new Response(null, { status });
      }
      const returning = statement.startsWith("insert") ? "returning *" : "returning t.*";
      const [agg] = await tx.unsafe<Aggregate[]>(
        `with pgrst_rows as (${statement} ${returning})
         select ${aggregate("s")} from (select ${selectList(url.searchParams.get("select"))}
           from pgrst_rows t) s`,
        params.values as never[],
      );
      return rowsResponse(request, agg, { status });
    });
  }

  /** Serves a request whose path is what follows `/rest/v1`. */
  async function handle(request: Request, path: string, caller: Caller): Promise<Response> {
    const profile = request.headers.get("accept-profile") ?? request.headers.get("content-profile");
    if (profile && profile !== schema) {
      return postgrestError(406, "PGRST106", `The schema must be one of the following: ${schema}`);
    }
    if (!acceptsJson(request)) {
      return postgrestError(
        406,
        "PGRST107",
        `None of these media types are available: ${request.headers.get("accept")}`,
      );
    }
    const segments = path.split("/").filter((s) => s !== "").map(decodeURIComponent);
    try {
      if (segments.length === 2 && segments[0] === "rpc") {
        return await rpc(request, segments[1], caller);
      }
      if (segments.length === 1) {
        if (request.method === "GET" || request.method === "HEAD") {
          return await readTable(request, segments[0], caller);
        }
        if (["POST", "PATCH", "DELETE"].includes(request.method)) {
          return await writeTable(request, segments[0], caller);
        }
        return notImplemented(`${request.method} on tables is not supported`);
      }
      if (segments.length === 0) return notImplemented("the OpenAPI root is not served");
      return postgrestError(404, "PGRST125", "Invalid path specified in request URL");
    } catch (err) {
      if (err instanceof RequestError) return err.response;
      if (err instanceof QueryError) {
        return postgrestError(400, "PGRST100", err.message, err.details);
      }
      if (err instanceof UnsupportedQuery) return notImplemented(err.message);
      return responseForDatabaseError(err, caller.role);
    }
  }

  return { handle };
}

export type Postgrest = ReturnType<typeof createPostgrest>;
