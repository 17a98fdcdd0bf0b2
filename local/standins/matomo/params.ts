// Matomo stand-in, part 1 of 4: request parameters the way PHP builds $_GET and $_POST for Matomo.
//
// Replaces: PHP's request-variable registration (php_register_variable_ex) and Matomo's
// `$_GET + $_POST` merge in core/Common.php::getRequestVar, where the GET value wins
// (docs/matomo.md). Follows: `urls[0]=`, `urls[]=` and nested `a[b][c]=` become ordered
// arrays; a plain `urls=` stays a string; `.` and space in a top-level name become `_`; the body is
// read only for POST with `application/x-www-form-urlencoded`, the product's form (PHP ignores
// other bodies). Differs: no `multipart/form-data` bodies (the product never sends one); PHP keeps
// raw bytes where URLSearchParams substitutes U+FFFD for invalid UTF-8; max_input_vars and
// max_input_nesting_level are not modelled.

/** A PHP request value: a string, or an array whose keys keep their insertion order, as in PHP. */
export type PhpValue = string | PhpArray;
export type PhpArray = Map<string, PhpValue>;

/** What PHP would see of one request, plus the raw parameter names for the request log. */
export interface PhpRequest {
  /** `$_GET`, from the query string. */
  get: PhpArray;
  /** `$_POST`, from a form body of a POST. */
  post: PhpArray;
  /** Parameter names as sent in the query string, decoded, in order (e.g. `urls[0]`). */
  queryKeys: string[];
  /** Parameter names as sent in the body, decoded, in order. */
  bodyKeys: string[];
}

const CANONICAL_INT = /^(0|-?[1-9][0-9]*)$/;

/** Splits `urls[0][x]` into the base name `urls` and the index path `["0", "x"]`, as PHP does. */
export function splitPhpName(rawName: string): { base: string; path: string[] } | null {
  const name = rawName.replace(/^ +/, "");
  const open = name.indexOf("[");
  const close = open === -1 ? -1 : name.indexOf("]", open);
  if (open === -1 || close === -1) {
    // No complete `[...]`: PHP treats the whole name as a plain variable; an unmatched `[` becomes `_`.
    const base = name.replace(/[. []/g, "_");
    return base === "" ? null : { base, path: [] };
  }
  const base = name.slice(0, open).replace(/[. ]/g, "_");
  if (base === "") return null;
  const path: string[] = [];
  let rest = name.slice(open);
  // Each `[index]` in turn; PHP ignores anything after the last `]` that does not open a new `[`.
  while (rest.startsWith("[")) {
    const end = rest.indexOf("]");
    if (end === -1) break;
    path.push(rest.slice(1, end));
    rest = rest.slice(end + 1);
  }
  return { base, path };
}

function nextIndex(array: PhpArray): string {
  let max = -1;
  for (const key of array.keys()) {
    if (CANONICAL_INT.test(key)) max = Math.max(max, Number(key));
  }
  return String(max + 1);
}

/** Registers `name=value` into `target` with PHP's rules for `[]` and `[index]`. */
function register(target: PhpArray, rawName: string, value: string): void {
  const split = splitPhpName(rawName);
  if (split === null) return;
  const { base, path } = split;
  if (path.length === 0) {
    target.set(base, value);
    return;
  }
  let current = target.get(base);
  if (!(current instanceof Map)) {
    current = new Map();
    target.set(base, current);
  }
  for (let i = 0; i < path.length; i++) {
    const key = path[i] === "" ? nextIndex(current) : path[i];
    if (i === path.length - 1) {
      current.set(key, value);
      return;
    }
    let child: PhpValue | undefined = current.get(key);
    if (!(child instanceof Map)) {
      child = new Map();
      current.set(key, child);
    }
    current = child;
  }
}

/** Builds a PHP superglobal from decoded `[name, value]` pairs, in order. */
export function phpArrayFromPairs(pairs: Iterable<[string, string]>): PhpArray {
  const target: PhpArray = new Map();
  for (const [name, value] of pairs) register(target, name, value);
  return target;
}

/** `$_GET + $_POST`: every top-level key of GET wins over the same key of POST. */
export function mergeGetWins(get: PhpArray, post: PhpArray): PhpArray {
  const merged: PhpArray = new Map(get);
  for (const [key, value] of post) {
    if (!merged.has(key)) merged.set(key, value);
  }
  return merged;
}

/** The values of a PHP array in order, or a scalar as a one-element list. */
export function phpValues(value: PhpValue): string[] {
  if (typeof value === "string") return [value];
  const out: string[] = [];
  for (const item of value.values()) out.push(...phpValues(item));
  return out;
}

async function bodyPairs(req: Request): Promise<[string, string][]> {
  if (req.method !== "POST" || req.body === null) return [];
  const type = (req.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
  if (type === "application/x-www-form-urlencoded") {
    return [...new URLSearchParams(await req.text())];
  }
  return [];
}

/** Reads a request into what PHP would hand Matomo. Consumes the body. */
export async function readPhpRequest(req: Request): Promise<PhpRequest> {
  const queryPairs = [...new URL(req.url).searchParams];
  const formPairs = await bodyPairs(req);
  return {
    get: phpArrayFromPairs(queryPairs),
    post: phpArrayFromPairs(formPairs),
    queryKeys: queryPairs.map(([name]) => name),
    bodyKeys: formPairs.map(([name]) => name),
  };
}
