// Which functions the gateway routes, and whether each needs a JWT (`verify_jwt`).
//
// Replaces: the Supabase CLI's reading of `[functions.<name>]` in supabase/config.toml
// (docs/supabase.md#function-configuration).
// Follows: `enabled` (default true) and `verify_jwt` (default true) per function; the functions
// are the folders the edge runtime serves (edge-runtime/functions_dir.ts).
// Differs: only those two keys are read, with a line-based reader for `key = true|false` under
// `[functions.<name>]` / `[functions."<name>"]` headers, not a full TOML parser.

import { listFunctions } from "../edge-runtime/functions_dir.ts";

export interface FunctionSettings {
  enabled: boolean;
  verifyJwt: boolean;
}

/** `[functions.<name>]` settings from config.toml text (only what is written there). */
export function parseFunctionSettings(toml: string): Map<string, Partial<FunctionSettings>> {
  const settings = new Map<string, Partial<FunctionSettings>>();
  let current: Partial<FunctionSettings> | undefined;
  for (const rawLine of toml.split(/\r?\n/)) {
    const line = rawLine.replace(/\s+#.*$/, "").trim();
    if (line === "" || line.startsWith("#")) continue;
    const header = line.match(/^\[\s*([^\]]+?)\s*\]$/);
    if (header) {
      const section = header[1].match(/^functions\.(?:"([^"]+)"|([A-Za-z0-9_-]+))$/);
      const name = section ? section[1] ?? section[2] : undefined;
      current = name === undefined ? undefined : settings.get(name) ?? {};
      if (name !== undefined && current) settings.set(name, current);
      continue;
    }
    if (!current) continue;
    const pair = line.match(/^(enabled|verify_jwt)\s*=\s*(true|false)$/);
    if (!pair) continue;
    const value = pair[2] === "true";
    if (pair[1] === "enabled") current.enabled = value;
    else current.verifyJwt = value;
  }
  return settings;
}

/** The routable functions: served folders that config.toml does not disable. */
export async function loadFunctionRoutes(
  functionsDir: string,
  configPath: string,
): Promise<Map<string, FunctionSettings>> {
  const toml = await Deno.readTextFile(configPath).catch((err) => {
    if (err instanceof Deno.errors.NotFound) return "";
    throw err;
  });
  const configured = parseFunctionSettings(toml);
  const routes = new Map<string, FunctionSettings>();
  for (const name of await listFunctions(functionsDir)) {
    const settings = { enabled: true, verifyJwt: true, ...configured.get(name) };
    if (settings.enabled) routes.set(name, settings);
  }
  return routes;
}
