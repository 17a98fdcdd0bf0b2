// PostgREST query-string features the local stand-in supports: select=, filters, order=, limit=.
//
// Replaces: PostgREST's query-string parser (reference/supabase.md §7; PostgREST 12 API docs).
// Follows: `select=*` or plain columns with optional `alias:col` and `col::type`; filters
// `col=[not.]op.value` with eq, neq, gt, gte, lt, lte, like, ilike (`*` → `%`), match, imatch,
// isdistinct, in.(a,"b,c") and is.null|not_null|true|false|unknown, several filters ANDed;
// `order=col[.asc|.desc][.nullsfirst|.nullslast],…`; `limit=`, `offset=`. Values are bound
// parameters of unknown type, so PostgreSQL casts them to the column's type as PostgREST does.
// Differs: embedding, JSON paths (`->`), aggregates, `or=`/`and=` and the array/range/full-text
// operators are answered with 501 (UnsupportedQuery), not implemented.

export class QueryError extends Error {
  constructor(readonly details: string, message: string) {
    super(message);
    this.name = "QueryError";
  }
}

/** A PostgREST feature that this stand-in does not implement (answered with 501). */
export class UnsupportedQuery extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnsupportedQuery";
  }
}

/** Query parameters that are never filters or function arguments. */
export const RESERVED_PARAMS = new Set([
  "select",
  "order",
  "limit",
  "offset",
  "columns",
  "on_conflict",
  "apikey",
]);

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Collects bound values and hands out their `$n` placeholders. */
export class Params {
  readonly values: unknown[] = [];
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

const CAST = /^[A-Za-z_][A-Za-z0-9_ ]*(\[\])?$/;

function checkColumnName(name: string, where: string): string {
  if (name === "") {
    throw new QueryError(`empty column name in ${where}`, `failed to parse ${where}`);
  }
  if (/->|[()!]|^\.\.\./.test(name)) {
    throw new UnsupportedQuery(
      `embedding, spreads and JSON paths in ${where} are not supported (got "${name}")`,
    );
  }
  return name;
}

/** The select list over table alias `t` (`t.*` for `*` or no select=). */
export function selectList(select: string | null, alias = "t"): string {
  if (select === null || select.trim() === "" || select.trim() === "*") return `${alias}.*`;
  return select.split(",").map((raw) => {
    const item = raw.trim();
    if (item === "*") return `${alias}.*`;
    let rest = item;
    let label: string | undefined;
    const colon = rest.match(/^([^:]+):(?!:)(.+)$/);
    if (colon) {
      label = colon[1];
      rest = colon[2];
    }
    let cast: string | undefined;
    const castAt = rest.indexOf("::");
    if (castAt >= 0) {
      cast = rest.slice(castAt + 2);
      rest = rest.slice(0, castAt);
      if (!CAST.test(cast)) {
        throw new QueryError(
          `invalid cast "${cast}"`,
          `failed to parse select parameter (${select})`,
        );
      }
    }
    const column = `${alias}.${quoteIdent(checkColumnName(rest, "select"))}`;
    const expression = cast ? `${column}::${cast}` : column;
    return `${expression} as ${quoteIdent(label ?? rest)}`;
  }).join(", ");
}

/** Splits `(a,"b,c",d)` into its items. */
function listItems(value: string, filter: string): string[] {
  if (!value.startsWith("(") || !value.endsWith(")")) {
    throw new QueryError(`expected a list in parentheses`, `failed to parse filter (${filter})`);
  }
  const inner = value.slice(1, -1);
  if (inner === "") return [];
  const items: string[] = [];
  let current = "";
  let quoted = false;
  for (let i = 0; i < inner.length; i++) {
    const ch = inner[i];
    if (quoted && ch === "\\" && i + 1 < inner.length) {
      current += inner[++i];
    } else if (ch === '"') {
      quoted = !quoted;
    } else if (ch === "," && !quoted) {
      items.push(current);
      current = "";
    } else {
      current += ch;
    }
  }
  items.push(current);
  return items;
}

const COMPARISONS: Record<string, string> = {
  eq: "=",
  neq: "<>",
  gt: ">",
  gte: ">=",
  lt: "<",
  lte: "<=",
  like: "like",
  ilike: "ilike",
  match: "~",
  imatch: "~*",
  isdistinct: "is distinct from",
};
const IS_VALUES: Record<string, string> = {
  null: "is null",
  not_null: "is not null",
  true: "is true",
  false: "is false",
  unknown: "is unknown",
};
const UNSUPPORTED_OPERATORS = new Set([
  "cs",
  "cd",
  "ov",
  "sl",
  "sr",
  "nxr",
  "nxl",
  "adj",
  "fts",
  "plfts",
  "phfts",
  "wfts",
]);

/** One `column=[not.]op.value` filter as a SQL condition over alias `t`. */
export function filterCondition(column: string, raw: string, params: Params, alias = "t"): string {
  if (column === "or" || column === "and" || column === "not.or" || column === "not.and") {
    throw new UnsupportedQuery("or=/and= logical filters are not supported");
  }
  const target = `${alias}.${quoteIdent(checkColumnName(column, "filter"))}`;
  let rest = raw;
  let negate = false;
  if (rest.startsWith("not.")) {
    negate = true;
    rest = rest.slice(4);
  }
  const dot = rest.indexOf(".");
  const operator = dot < 0 ? rest : rest.slice(0, dot);
  const value = dot < 0 ? "" : rest.slice(dot + 1);
  let condition: string;
  if (operator in COMPARISONS) {
    if (dot < 0) {
      throw new QueryError(`missing value after "${operator}"`, `failed to parse filter (${raw})`);
    }
    const bound = operator === "like" || operator === "ilike" ? value.replaceAll("*", "%") : value;
    condition = `${target} ${COMPARISONS[operator]} ${params.add(bound)}`;
  } else if (operator === "is") {
    const test = IS_VALUES[value];
    if (!test) {
      throw new QueryError(
        `unexpected "${value}" expecting null, not_null, true, false or unknown`,
        `failed to parse filter (${raw})`,
      );
    }
    condition = `${target} ${test}`;
  } else if (operator === "in") {
    const items = listItems(value, raw);
    condition = items.length === 0
      ? "false"
      : `${target} in (${items.map((item) => params.add(item)).join(", ")})`;
  } else if (UNSUPPORTED_OPERATORS.has(operator) || /^\w+\((any|all)\)$/.test(operator)) {
    throw new UnsupportedQuery(`the "${operator}" filter operator is not supported`);
  } else {
    throw new QueryError(
      `unexpected "${operator}" expecting an operator (eq, gt, ...)`,
      `failed to parse filter (${raw})`,
    );
  }
  return negate ? `not (${condition})` : condition;
}

/** The conditions of every non-reserved parameter, ANDed; "" when there are none. */
export function whereClause(search: URLSearchParams, params: Params, alias = "t"): string {
  const conditions: string[] = [];
  for (const [key, value] of search) {
    if (!RESERVED_PARAMS.has(key)) conditions.push(filterCondition(key, value, params, alias));
  }
  return conditions.length === 0 ? "" : `where ${conditions.join(" and ")}`;
}

/** `order=a.desc.nullslast,b` as an ORDER BY clause; "" when absent. */
export function orderClause(order: string | null, alias = "t"): string {
  if (order === null || order.trim() === "") return "";
  const terms = order.split(",").map((term) => {
    const [column, ...modifiers] = term.trim().split(".");
    const parts = [`${alias}.${quoteIdent(checkColumnName(column, "order"))}`];
    for (const modifier of modifiers) {
      const sql = {
        asc: "asc",
        desc: "desc",
        nullsfirst: "nulls first",
        nullslast: "nulls last",
      }[modifier];
      if (!sql) {
        throw new QueryError(`unexpected "${modifier}"`, `failed to parse order (${order})`);
      }
      parts.push(sql);
    }
    return parts.join(" ");
  });
  return `order by ${terms.join(", ")}`;
}

/** `limit=`/`offset=` as LIMIT/OFFSET with bound values; "" when absent. */
export function limitClause(search: URLSearchParams, params: Params): string {
  const parts: string[] = [];
  for (const key of ["limit", "offset"] as const) {
    const raw = search.get(key);
    if (raw === null) continue;
    if (!/^\d+$/.test(raw)) {
      throw new QueryError(`"${raw}" is not a non-negative integer`, `failed to parse ${key}`);
    }
    parts.push(`${key} ${params.add(Number(raw))}`);
  }
  return parts.join(" ");
}

/** `columns="a","b"` (what supabase-js sends with bulk inserts). */
export function columnsParam(columns: string | null): string[] | undefined {
  if (columns === null) return undefined;
  return columns.split(",").map((c) => c.trim().replace(/^"(.*)"$/, "$1")).filter((c) => c !== "");
}
