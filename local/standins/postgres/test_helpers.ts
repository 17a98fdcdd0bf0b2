// Helpers for the postgres stand-ins' tests that run against the Postgres of a running local stack.

import postgres from "postgres";
import { stackSetting, stackTest } from "../../../supabase/tests/stack_env.ts";

export type Sql = ReturnType<typeof postgres>;

/** A test that needs the stack's database: skipped with one line of reason without HA_DB_URL. */
export function dbTest(name: string, fn: (t: Deno.TestContext) => Promise<void>): void {
  stackTest({ name, needs: ["HA_DB_URL"], fn });
}

/** The stack's superuser connection string. */
export function stackDbUrl(): string {
  return stackSetting("HA_DB_URL");
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
