import assert from "node:assert/strict";
import {
  columnsParam,
  filterCondition,
  limitClause,
  orderClause,
  Params,
  QueryError,
  selectList,
  UnsupportedQuery,
  whereClause,
} from "./query_params.ts";

Deno.test("select= lists columns with aliases and casts, or everything", () => {
  assert.equal(selectList(null), "t.*");
  assert.equal(selectList("*"), "t.*");
  assert.equal(
    selectList("id,name:domain,n::text"),
    't."id" as "id", t."domain" as "name", t."n"::text as "n"',
  );
  assert.equal(selectList('we"ird'), 't."we""ird" as "we""ird"');
});

Deno.test("select= embedding and JSON paths are not implemented", () => {
  assert.throws(() => selectList("id,owner(name)"), UnsupportedQuery);
  assert.throws(() => selectList("data->>x"), UnsupportedQuery);
  assert.throws(() => selectList("n::text;drop"), QueryError);
});

Deno.test("filters become conditions with bound values", () => {
  const params = new Params();
  assert.equal(filterCondition("domain", "eq.a.example", params), 't."domain" = $1');
  assert.equal(filterCondition("n", "not.gte.5", params), 'not (t."n" >= $2)');
  assert.equal(filterCondition("domain", "like.*.example", params), 't."domain" like $3');
  assert.equal(filterCondition("id", 'in.(1,"2,3",4)', params), 't."id" in ($4, $5, $6)');
  assert.equal(filterCondition("id", "in.()", params), "false");
  assert.equal(filterCondition("x", "is.null", params), 't."x" is null');
  assert.equal(filterCondition("x", "not.is.null", params), 'not (t."x" is null)');
  assert.deepEqual(params.values, ["a.example", "5", "%.example", "1", "2,3", "4"]);
});

Deno.test("unknown filters are 400s and known-but-unsupported ones are 501s", () => {
  const params = new Params();
  assert.throws(() => filterCondition("x", "nope.1", params), QueryError);
  assert.throws(() => filterCondition("x", "is.maybe", params), QueryError);
  assert.throws(() => filterCondition("x", "eq", params), QueryError);
  assert.throws(() => filterCondition("tags", "cs.{a}", params), UnsupportedQuery);
  assert.throws(() => filterCondition("x", "eq(any).{1,2}", params), UnsupportedQuery);
  assert.throws(() => filterCondition("or", "(a.eq.1,b.eq.2)", params), UnsupportedQuery);
});

Deno.test("every non-reserved parameter is a filter, ANDed", () => {
  const params = new Params();
  const search = new URLSearchParams("select=id&a=eq.1&b=neq.2&order=a&limit=3&apikey=k&a=lt.9");
  assert.equal(whereClause(search, params), 'where t."a" = $1 and t."b" <> $2 and t."a" < $3');
  assert.equal(whereClause(new URLSearchParams("select=*"), new Params()), "");
});

Deno.test("order= and limit=/offset= are parsed like PostgREST's", () => {
  assert.equal(
    orderClause("created_at.desc.nullslast,id"),
    'order by t."created_at" desc nulls last, t."id"',
  );
  assert.equal(orderClause(null), "");
  assert.throws(() => orderClause("a.sideways"), QueryError);
  const params = new Params();
  assert.equal(
    limitClause(new URLSearchParams("limit=10&offset=20"), params),
    "limit $1 offset $2",
  );
  assert.deepEqual(params.values, [10, 20]);
  assert.throws(() => limitClause(new URLSearchParams("limit=-1"), new Params()), QueryError);
});

Deno.test("columns= from supabase-js bulk inserts is a list of names", () => {
  assert.deepEqual(columnsParam('"domain","status_dns"'), ["domain", "status_dns"]);
  assert.equal(columnsParam(null), undefined);
});
