// Which folders of a functions directory are Edge Functions (shared by the runtime and the gateway).
//
// Replaces: the CLI's function discovery for `supabase functions serve`
// (docs/supabase.md#function-configuration).
// Follows: one folder per function with an `index.ts`; folders starting with `_` (shared code) and
// `tests` are not functions; names match the CLI's `^[A-Za-z][A-Za-z0-9_-]*$`.
// Differs: `entrypoint` overrides in config.toml are ignored; the entry is always `<name>/index.ts`.

import { join } from "node:path";

const FUNCTION_NAME = /^[A-Za-z][A-Za-z0-9_-]*$/;

/** True when `name` could be an Edge Function folder name. */
export function isFunctionName(name: string): boolean {
  return FUNCTION_NAME.test(name) && name !== "tests";
}

/** Lists the function names under `dir`, sorted; a missing directory has none. */
export async function listFunctions(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isDirectory || !isFunctionName(entry.name)) continue;
      if (await isFile(join(dir, entry.name, "index.ts"))) names.push(entry.name);
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  return names.sort();
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}
