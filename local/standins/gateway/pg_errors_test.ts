import assert from "node:assert/strict";
import { responseForDatabaseError, statusForSqlState } from "./pg_errors.ts";

Deno.test("SQLSTATEs map to PostgREST's HTTP statuses, row by row", () => {
  const rows: [code: string, message: string, anonymous: boolean, status: number][] = [
    ["42501", "permission denied for function f", true, 401],
    ["42501", "permission denied for function f", false, 403],
    ["23505", "duplicate key value violates unique constraint", false, 409],
    ["23503", "insert or update violates foreign key constraint", false, 409],
    ["P0001", "boom", false, 400],
    ["P0002", "no data found", false, 500],
    ["42883", "function f(integer) does not exist", false, 404],
    ["42883", "function xmlagg(text) does not exist", false, 406],
    ["42P01", 'relation "x" does not exist', false, 404],
    ["57014", "canceling statement due to statement timeout", false, 500],
    ["57P01", "terminating connection due to administrator command", false, 503],
    ["08006", "connection failure", false, 503],
    ["25006", "cannot execute UPDATE in a read-only transaction", false, 405],
    ["21000", "DELETE requires a WHERE clause", false, 400],
    ["21000", "more than one row returned by a subquery", false, 500],
    ["22023", 'role "ghost" does not exist', false, 401],
    ["22023", "invalid parameter", false, 400],
    ["22P02", "invalid input syntax for type uuid", false, 400],
    ["28000", "invalid authorization specification", false, 403],
    ["53400", "configuration limit exceeded", false, 500],
    ["53300", "too many connections", false, 503],
    ["PT418", "teapot", false, 418],
    ["XX000", "internal error", false, 500],
    ["23514", "check constraint", false, 400],
  ];
  for (const [code, message, anonymous, status] of rows) {
    assert.equal(statusForSqlState(code, message, anonymous), status, `${code} ${message}`);
  }
});

Deno.test("a server error becomes PostgREST's body with nulls for missing fields", async () => {
  const response = responseForDatabaseError(
    { name: "PostgresError", code: "P0001", message: "boom", detail: "d" },
    "service_role",
  );
  assert.equal(response.status, 400);
  assert.equal(response.headers.get("content-type"), "application/json; charset=utf-8");
  assert.deepEqual(await response.json(), {
    code: "P0001",
    details: "d",
    hint: null,
    message: "boom",
  });
});

Deno.test("an anonymous permission error is 401 with WWW-Authenticate", async () => {
  const response = responseForDatabaseError(
    { name: "PostgresError", code: "42501", message: "permission denied for function f" },
    "anon",
  );
  assert.equal(response.status, 401);
  assert.equal(response.headers.get("www-authenticate"), "Bearer");
  await response.body?.cancel();
});

Deno.test("a connection failure is 503 PGRST000", async () => {
  const response = responseForDatabaseError(new Error("connect ECONNREFUSED"), "anon");
  assert.equal(response.status, 503);
  assert.deepEqual(await response.json(), {
    code: "PGRST000",
    details: "connect ECONNREFUSED",
    hint: null,
    message: "Database connection error. Retrying the connection.",
  });
});
