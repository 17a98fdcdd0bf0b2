// Helpers for the platform tests that run against the Postgres of a running local stack.

import postgres from "postgres";

export type Sql = ReturnType<typeof postgres>;

/** The stack's superuser connection string; fails loudly when the stack's settings are absent. */
export function stackDbUrl(): string {
  const url = Deno.env.get("HA_DB_URL");
  if (!url) {
    throw new Error(
      "HA_DB_URL is not set: these tests need a running stack. Run `local/stack up`, then " +
        '`source "$(local/stack env)"` before `deno test`.',
    );
  }
  return url;
}

export async function connectStackDb(url = stackDbUrl()): Promise<Sql> {
  const sql = postgres(url, { max: 4, onnotice: () => {}, connect_timeout: 5 });
  try {
    await sql`select 1`;
  } catch (error) {
    await sql.end({ timeout: 1 });
    throw new Error(`cannot reach the stack's Postgres (is \`local/stack up\` running?): ${error}`);
  }
  return sql;
}

/** Polls `probe` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 8000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
