// Database errors as PostgREST 12 answers them: SQLSTATE → HTTP status, and the error body.
//
// Replaces: PostgREST's `mapSQLtoHTTP` and its PgError body (src/PostgREST/Error.hs).
// Follows: the SQLSTATE table row by row (e.g. 42501 → 401 for anon / 403 otherwise, 23505 and
// 23503 → 409, P0001 → 400, 42883/42P01 → 404, 57014 → 500, 08xxx → 503, default 400), custom
// `PTxyz` statuses, and connection failures as 503 PGRST000.
// Differs: no `RAISE SQLSTATE 'PGRST'` response control (the migrations never raise it).

import { json, postgrestError } from "./http.ts";

/** The fields postgres.js puts on a server error (PostgresError). */
export interface ServerError {
  name?: string;
  code?: string;
  message?: string;
  detail?: string;
  hint?: string;
}

function isServerError(err: unknown): err is ServerError & { code: string } {
  return typeof err === "object" && err !== null &&
    (err as ServerError).name === "PostgresError" && typeof (err as ServerError).code === "string";
}

/** PostgREST's HTTP status for a SQLSTATE; `anonymous` decides 42501 (401 vs 403). */
export function statusForSqlState(code: string, message: string, anonymous: boolean): number {
  const exact: Record<string, number> = {
    "23503": 409,
    "23505": 409,
    "25006": 405,
    "53400": 500,
    "57P01": 503,
    "P0001": 400,
    "42P01": 404,
    "42P17": 500,
  };
  if (code in exact) return exact[code];
  if (code === "21000") return message.endsWith("requires a WHERE clause") ? 400 : 500;
  if (code === "22023") {
    return message.startsWith("role") && message.endsWith("does not exist") ? 401 : 400;
  }
  if (code === "42883") return message.startsWith("function xmlagg(") ? 406 : 404;
  if (code === "42501") return anonymous ? 401 : 403;
  if (/^PT\d{3}$/.test(code)) return Number(code.slice(2));
  const prefixes: [string, number][] = [
    ["08", 503],
    ["09", 500],
    ["0L", 403],
    ["0P", 403],
    ["25", 500],
    ["28", 403],
    ["2D", 500],
    ["38", 500],
    ["39", 500],
    ["3B", 500],
    ["40", 500],
    ["53", 503],
    ["54", 500],
    ["55", 500],
    ["57", 500],
    ["58", 500],
    ["F0", 500],
    ["HV", 500],
    ["P0", 500],
    ["XX", 500],
  ];
  for (const [prefix, status] of prefixes) if (code.startsWith(prefix)) return status;
  return 400;
}

/** The HTTP response PostgREST would give for an error raised while serving a request. */
export function responseForDatabaseError(err: unknown, role: string): Response {
  if (!isServerError(err)) {
    return postgrestError(
      503,
      "PGRST000",
      "Database connection error. Retrying the connection.",
      err instanceof Error ? err.message : String(err),
    );
  }
  const message = err.message ?? "";
  const status = statusForSqlState(err.code, message, role === "anon");
  const headers: HeadersInit = status === 401 ? { "www-authenticate": "Bearer" } : {};
  return json(
    {
      code: err.code,
      details: err.detail ?? null,
      hint: err.hint ?? null,
      message,
    },
    status,
    headers,
  );
}
