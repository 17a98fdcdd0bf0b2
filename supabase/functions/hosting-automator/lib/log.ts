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
    const record = { ts: now().toISOString(), level, event, ...fields };
    // Every string value, however deeply nested, is redacted before JSON escapes it (redacting the
    // serialised line could miss an escaped secret or cut the JSON open); undefined fields drop out.
    const clean = JSON.parse(
      JSON.stringify(record),
      (_key, value) => typeof value === "string" ? redact(value) : value,
    );
    write(JSON.stringify(clean));
  };
}
