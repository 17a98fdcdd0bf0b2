// Dotenv parser for `functions.env` and `stack.env` (the edge-runtime stand-in's env source).
//
// Replaces: the dotenv reading of `supabase functions serve --env-file`
// (docs/supabase.md#environment-and-secrets).
// Follows: `KEY=value`, `KEY='value'`, `KEY="value"`, blank lines, `#` comments, an optional
// `export ` prefix, and quoted values that span several lines (a PEM key pasted as is).
// Differs: escapes are NOT interpreted. `\n` inside any value stays a backslash and an `n` (the
// function decodes `\n` in SSH_PRIVATE_KEY itself); only `\"` inside double quotes becomes `"`.
// A single-quoted value cannot contain `'` (no shell-style `'\''` joining).

const KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

export class DotenvSyntaxError extends Error {
  constructor(readonly line: number, detail: string) {
    super(`dotenv line ${line}: ${detail}`);
    this.name = "DotenvSyntaxError";
  }
}

/** Parses dotenv text into an ordered record; a repeated key keeps its last value. */
export function parseDotenv(text: string): Record<string, string> {
  const result: Record<string, string> = {};
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  for (let index = 0; index < lines.length; index++) {
    const lineNumber = index + 1;
    const line = lines[index].trim();
    if (line === "" || line.startsWith("#")) continue;

    const assignment = line.startsWith("export ") ? line.slice("export ".length).trimStart() : line;
    const equals = assignment.indexOf("=");
    if (equals <= 0) throw new DotenvSyntaxError(lineNumber, "expected KEY=value");
    const key = assignment.slice(0, equals).trim();
    if (!KEY_PATTERN.test(key)) throw new DotenvSyntaxError(lineNumber, `invalid key "${key}"`);

    const rawValue = assignment.slice(equals + 1).trimStart();
    const quote = rawValue[0];
    if (quote !== "'" && quote !== '"') {
      result[key] = stripInlineComment(rawValue).trim();
      continue;
    }

    // A quoted value ends at the first unescaped matching quote, possibly on a later line.
    let body = rawValue.slice(1);
    let closing = findClosingQuote(body, quote);
    while (closing < 0) {
      index++;
      if (index >= lines.length) {
        throw new DotenvSyntaxError(lineNumber, `unterminated ${quote}-quoted value for ${key}`);
      }
      body += "\n" + lines[index];
      closing = findClosingQuote(body, quote);
    }
    const rest = body.slice(closing + 1).trim();
    if (rest !== "" && !rest.startsWith("#")) {
      throw new DotenvSyntaxError(lineNumber, `unexpected text after the quoted value of ${key}`);
    }
    const value = body.slice(0, closing);
    result[key] = quote === '"' ? value.replaceAll('\\"', '"') : value;
  }
  return result;
}

function findClosingQuote(text: string, quote: string): number {
  for (let i = 0; i < text.length; i++) {
    if (quote === '"' && text[i] === "\\" && text[i + 1] === '"') {
      i++;
      continue;
    }
    if (text[i] === quote) return i;
  }
  return -1;
}

function stripInlineComment(value: string): string {
  const hash = value.search(/\s#/);
  return hash < 0 ? value : value.slice(0, hash);
}

/** Reads and parses a dotenv file. */
export async function readDotenvFile(path: string): Promise<Record<string, string>> {
  return parseDotenv(await Deno.readTextFile(path));
}
