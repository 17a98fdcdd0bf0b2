// One JSON object per line on stdout, the shape Supabase's log explorer parses and operators grep.

export type Level = "debug" | "info" | "warn" | "error";

export interface LogFields {
  site_id?: string;
  domain?: string;
  attempt?: number;
  step?: string;
  outcome?: string;
  code?: string;
  duration_ms?: number;
  msg?: string;
  [extra: string]: unknown;
}

export type Logger = (level: Level, event: string, fields?: LogFields) => void;

/**
 * A logger writing `{"ts","level","event",…fields}` lines through `write`, with every string
 * field passed through `redact` first: nothing logged can carry a secret.
 */
export function createLogger(
  redact: (text: string) => string,
  write: (line: string) => void = (line) => console.log(line),
  now: () => Date = () => new Date(),
): Logger {
  return (level, event, fields = {}) => {
    const record: Record<string, unknown> = { ts: now().toISOString(), level, event };
    for (const [key, value] of Object.entries(fields)) {
      if (value === undefined) continue;
      record[key] = typeof value === "string" ? redact(value) : value;
    }
    // Strings are redacted one by one above; the whole line once more catches nested values.
    write(redact(JSON.stringify(record)));
  };
}
