// Helpers for the end-to-end tests: the running local stack (local/stack up), seen the way an
// operator sees it — the database, the function's HTTP route, the CloudPanel server's files and
// the Matomo stand-in's control API. Every setting comes from the stack's env files.

import postgres from "postgres";
import { deleteSite, INVENTORY_PATH } from "../../functions/hosting-automator/core/cloudpanel.ts";
import { siteUrl } from "../../functions/hosting-automator/core/matomo.ts";
import { stackSetting, stackTest } from "../stack_env.ts";

export const setting = stackSetting;

export type Sql = ReturnType<typeof postgres>;

/**
 * A CloudPanel stand-in of the stack (local/standins/cloudpanel): "a" is the function's server (its
 * SSH_* settings), "b" a second server of its own (`up b`) that only tests reach for now.
 */
export type Server = "a" | "b";

interface ServerSettings {
  /** its sshd's log, logs/<log>.log (every other field names a setting) */
  log: string;
  dir: string;
  port: string;
  keyFile: string;
  knownHosts: string;
  privateKey: string;
  fingerprint: string;
}

/** The names each server's settings have in env.d/cloudpanel.env and env.d/cloudpanel-b.env. */
const SERVERS: Record<Server, ServerSettings> = {
  a: {
    log: "cloudpanel",
    dir: "HA_CLOUDPANEL_DIR",
    port: "SSH_PORT",
    keyFile: "HA_SSH_KEY_FILE",
    knownHosts: "HA_SSH_KNOWN_HOSTS_FILE",
    privateKey: "SSH_PRIVATE_KEY",
    fingerprint: "SSH_HOST_KEY_FINGERPRINT",
  },
  b: {
    log: "cloudpanel-b",
    dir: "HA_CLOUDPANEL_B_DIR",
    port: "HA_SSH_B_PORT",
    keyFile: "HA_SSH_B_KEY_FILE",
    knownHosts: "HA_SSH_B_KNOWN_HOSTS_FILE",
    privateKey: "HA_SSH_B_PRIVATE_KEY",
    fingerprint: "HA_SSH_B_HOST_KEY_FINGERPRINT",
  },
};

/** Every setting the end-to-end tests read: the stack's stack.env and env.d/*.env. */
const STACK_SETTINGS = [
  "HA_STACK_DIR",
  "HA_DB_URL",
  "SUPABASE_URL",
  "SUPABASE_ANON_KEY",
  "SUPABASE_SERVICE_ROLE_KEY",
  "SUPABASE_SECRET_KEYS",
  ...Object.values(SERVERS).flatMap(({ log: _, ...settings }) => Object.values(settings)),
  "HA_MATOMO_CONTROL_URL",
  "HA_DNS_CONTROL_URL",
  "HA_DISPATCH_TOKEN",
];

/**
 * A Deno test with its own database connection; resources are checked by the stack, not per test.
 * Skipped, with one line of reason, when the stack's settings are absent.
 */
export function e2e(name: string, fn: (sql: Sql) => Promise<void>) {
  stackTest({
    name,
    needs: STACK_SETTINGS,
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      const sql = postgres(setting("HA_DB_URL"), { max: 2, onnotice: () => {} });
      try {
        await fn(sql);
      } finally {
        await sql.end({ timeout: 5 });
      }
    },
  });
}

/** A domain no other test or run uses. */
export function uniqueDomain(label: string): string {
  return `${label}-${crypto.randomUUID().slice(0, 8)}.e2e-test.org`;
}

export interface SiteState {
  id: string;
  domain: string;
  status_dns: string | null;
  status_hosting: string;
  hosting_doc_root: string | null;
  hosting_site_user: string | null;
  matomo_site_id: number | null;
  hosting_error: string | null;
  hosting_attempts: number;
  hosting_next_attempt_at: Date | null;
  hosting_lease_until: Date | null;
}

export async function site(sql: Sql, id: string): Promise<SiteState> {
  const [row] = await sql<SiteState[]>`
    select id, domain, status_dns, status_hosting, hosting_doc_root, hosting_site_user,
           matomo_site_id, hosting_error, hosting_attempts, hosting_next_attempt_at,
           hosting_lease_until
    from public.sites where id = ${id}`;
  if (!row) throw new Error(`no site ${id}`);
  return row;
}

/** Polls the row until `done` holds; fails with the row and its events if it never does. */
export async function waitFor(
  sql: Sql,
  id: string,
  done: (row: SiteState) => boolean,
  timeoutMs = 45_000,
): Promise<SiteState> {
  const until = Date.now() + timeoutMs;
  let row = await site(sql, id);
  while (!done(row)) {
    if (Date.now() > until) {
      throw new Error(
        `site ${row.domain} never reached the expected state: ${JSON.stringify(row)}\nevents: ${
          (await events(sql, id)).join(", ")
        }`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 150));
    row = await site(sql, id);
  }
  return row;
}

/** "step:outcome:code" for each event of the site, oldest first. */
export async function events(sql: Sql, id: string): Promise<string[]> {
  const rows = await sql<{ step: string; outcome: string; code: string | null }[]>`
    select step, outcome, code from public.hosting_events where site_id = ${id} order by id`;
  return rows.map((e) => `${e.step}:${e.outcome}:${e.code}`);
}

export async function removeSite(sql: Sql, id: string): Promise<void> {
  await sql`delete from public.sites where id = ${id}`;
}

/** POST to the function through the gateway, as curl or supabase-js would. */
export async function callFunction(
  body: unknown,
  headers: Record<string, string> = { apikey: secretKey() },
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${setting("SUPABASE_URL")}/functions/v1/hosting-automator`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

export function secretKey(): string {
  return JSON.parse(setting("SUPABASE_SECRET_KEYS")).default;
}

// --- the CloudPanel servers (local/standins/cloudpanel); server A unless a test names another ---

/** The server's folder on the host: control/ (faults, calls.log) and home/ (its /home). */
const cloudpanel = (server: Server) => setting(SERVERS[server].dir);

/** The settings that point a function instance (functionWith) at the server. */
export function sshSettings(server: Server = "a"): Record<string, string> {
  const names = SERVERS[server];
  return {
    SSH_HOST: "127.0.0.1",
    SSH_PORT: setting(names.port),
    SSH_USER: "root",
    SSH_PRIVATE_KEY: setting(names.privateKey),
    SSH_HOST_KEY_FINGERPRINT: setting(names.fingerprint),
  };
}

/** Switches a clpctl fault on for one domain (see the stand-in's header for names and words). */
export async function cloudpanelFault(
  domain: string,
  fault: string,
  words = "",
  server: Server = "a",
): Promise<void> {
  const dir = `${cloudpanel(server)}/control/domains/${domain}`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/${fault}`, `${words}\n`);
}

export async function clearCloudpanelFaults(domain: string, server: Server = "a"): Promise<void> {
  await Deno.remove(`${cloudpanel(server)}/control/domains/${domain}`, { recursive: true }).catch(
    () => {},
  );
}

/** clpctl calls for the domain: "verb exit-code" each, from the server's calls.log. */
export async function clpctlCalls(domain: string, server: Server = "a"): Promise<string[]> {
  const log = await Deno.readTextFile(`${cloudpanel(server)}/control/calls.log`).catch(() => "");
  return log.split("\n").map((line) => line.split("\t"))
    .filter((fields) => fields[2] === domain)
    .map((fields) => `${fields[1]} ${fields[3]}`);
}

/** CloudPanel's own inventory rows for the domain (read from the server's disk). */
export async function inventory(domain: string, server: Server = "a"): Promise<string[]> {
  const output = await new Deno.Command("sqlite3", {
    args: [
      "-readonly",
      `${cloudpanel(server)}${INVENTORY_PATH}`,
      `select domain_name || ' ' || user from site where domain_name = '${domain}'`,
    ],
  }).output();
  return new TextDecoder().decode(output.stdout).split("\n").filter((line) => line !== "");
}

/** A directory on the server's disk (its /home lives in the stand-in's state folder). */
export async function serverHasDirectory(path: string, server: Server = "a"): Promise<boolean> {
  const stat = await Deno.stat(`${cloudpanel(server)}${path}`).catch(() => undefined);
  return stat?.isDirectory ?? false;
}

/** Runs a command on the CloudPanel server as root, over the real SSH server. */
export async function onServer(
  command: string,
  server: Server = "a",
): Promise<{ code: number; stdout: string }> {
  const names = SERVERS[server];
  const output = await new Deno.Command("ssh", {
    args: [
      "-T",
      "-i",
      setting(names.keyFile),
      "-p",
      setting(names.port),
      "-o",
      `UserKnownHostsFile=${setting(names.knownHosts)}`,
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      "BatchMode=yes",
      "root@127.0.0.1",
      command,
    ],
    stdin: "null",
  }).output();
  return { code: output.code, stdout: new TextDecoder().decode(output.stdout) };
}

/** The lines of the server's sshd log (logs/cloudpanel.log, logs/cloudpanel-b.log). */
async function sshdLog(server: Server): Promise<string[]> {
  const log = await Deno.readTextFile(`${setting("HA_STACK_DIR")}/logs/${SERVERS[server].log}.log`)
    .catch(() => "");
  return log.split("\n");
}

/** Successful SSH logins so far, from the server's log. */
export async function sshLogins(server: Server = "a"): Promise<number> {
  return (await sshdLog(server)).filter((line) => line.includes("Accepted publickey")).length;
}

// --- the Matomo stand-in ---------------------------------------------------------------------

async function matomoControl(route: string, body?: unknown): Promise<unknown> {
  const response = await fetch(`${setting("HA_MATOMO_CONTROL_URL")}/${route}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`Matomo stand-in ${route}: HTTP ${response.status}`);
  return await response.json();
}

export async function matomoSitesFor(domain: string): Promise<number[]> {
  const sites = await matomoControl("sites") as Array<{ idsite: number; main_url: string }>;
  return sites.filter((s) => s.main_url === siteUrl(domain)).map((s) => s.idsite);
}

export function matomoFault(mode: string, extra: Record<string, unknown> = {}) {
  return matomoControl("fault", { mode, ...extra });
}

// --- the resolver (local/standins/dns) ----------------------------------------------------------

/** What the DNS stand-in answers for one name: its addresses, NXDOMAIN, or a fault. */
export async function dnsRecords(
  name: string,
  config: { addresses?: string[]; absent?: boolean; fault?: "unavailable" | "hang" },
): Promise<void> {
  const response = await fetch(`${setting("HA_DNS_CONTROL_URL")}/records`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name, ...config }),
  });
  if (!response.ok) throw new Error(`DNS stand-in records: HTTP ${response.status}`);
  await response.body?.cancel();
}

/** The queries the DNS stand-in received for `name`: "name type answer" each, oldest first. */
export async function dnsQueriesFor(name: string): Promise<string[]> {
  const response = await fetch(`${setting("HA_DNS_CONTROL_URL")}/queries`);
  const all = await response.json() as string[];
  return all.filter((line) => line.startsWith(`${name} `));
}

// --- the function in-process, with changed settings ------------------------------------------

/** The deployed function's own settings (the stack's functions.env), as a record. */
export async function functionEnv(): Promise<Record<string, string>> {
  const { readDotenvFile } = await import("../../../local/standins/edge-runtime/dotenv.ts");
  return await readDotenvFile(`${setting("HA_STACK_DIR")}/functions.env`);
}

/**
 * Runs `fn` while the trigger and the sweeper cannot reach the served function (its Vault URL is
 * removed, then put back), so a test can hand a site to a function instance of its own.
 */
export async function withoutDispatch<T>(sql: Sql, fn: () => Promise<T>): Promise<T> {
  const [saved] = await sql<{ secret: string }[]>`
    select decrypted_secret as secret from vault.decrypted_secrets where name = 'hosting_automator_url'`;
  if (!saved) throw new Error("the stack's Vault has no hosting_automator_url");
  await sql`delete from vault.secrets where name = 'hosting_automator_url'`;
  try {
    return await fn();
  } finally {
    await sql`select vault.create_secret(${saved.secret}, 'hosting_automator_url')`;
  }
}

// --- counting what reached the servers, and breaking the stack on purpose ----------------------

/** TCP connections the SSH server accepted so far (its LogLevel VERBOSE "Connection from"). */
export async function sshConnections(server: Server = "a"): Promise<number> {
  return (await sshdLog(server)).filter((line) => line.startsWith("Connection from ")).length;
}

export interface MatomoRequest {
  apiMethod: string | null;
  tokenIn: string;
  status: number | null;
}

/** Every request the Matomo stand-in received (its own log: method, where the token was, status). */
export async function matomoRequests(): Promise<MatomoRequest[]> {
  return await matomoControl("requests") as MatomoRequest[];
}

/** The function's worker process under the edge-runtime stand-in, if one is running. */
async function functionWorkerPids(): Promise<number[]> {
  // The supervisor's pid file holds "pid start-time".
  const runtime = (await Deno.readTextFile(`${setting("HA_STACK_DIR")}/pids/edge-runtime.pid`))
    .trim().split(/\s+/)[0];
  const output = await new Deno.Command("pgrep", { args: ["-P", runtime] }).output();
  return new TextDecoder().decode(output.stdout).split("\n").filter((p) => p !== "").map(Number);
}

/** SIGKILLs the function's process, as a crash or an OOM kill would (no beforeunload). */
export async function killFunction(): Promise<number> {
  const pids = await functionWorkerPids();
  for (const pid of pids) Deno.kill(pid, "SIGKILL");
  return pids.length;
}

/** Stops or starts the whole edge-runtime stand-in (the function unreachable, then back). */
export async function edgeRuntime(action: "up" | "down"): Promise<void> {
  const script = new URL(`../../../local/standins/edge-runtime/${action}`, import.meta.url)
    .pathname;
  const output = await new Deno.Command("bash", { args: [script], stdout: "null" }).output();
  if (!output.success) {
    throw new Error(`edge-runtime ${action}: ${new TextDecoder().decode(output.stderr)}`);
  }
}

/** A function instance in this process with changed settings; `call` posts a JSON body to it. */
export async function functionWith(overrides: Record<string, string>) {
  const { createApp } = await import("../../functions/hosting-automator/app.ts");
  const lines: string[] = [];
  const background: Promise<unknown>[] = [];
  // No dispatch token: an instance of a test never hands left-over work to the served function.
  const { HOSTING_DISPATCH_TOKEN: _served, ...env } = await functionEnv();
  const app = createApp(
    { ...env, ...overrides },
    (work) => background.push(work),
    (line) => lines.push(line),
  );
  return {
    app,
    lines,
    async call(body: unknown, headers: Record<string, string> = { apikey: secretKey() }) {
      const response = await app.fetch(
        new Request("http://localhost/hosting-automator", {
          method: "POST",
          headers: { "content-type": "application/json", ...headers },
          body: JSON.stringify(body),
        }),
      );
      return { status: response.status, body: await response.json() };
    },
    /** Waits for the work the instance started in the background. */
    settle: () => Promise.allSettled(background),
  };
}

// --- the sites a test makes, and their removal -------------------------------------------------

/** Inserts a site row (DNS active unless said otherwise); the trigger fires as in production. */
export async function insertSite(
  sql: Sql,
  domain: string,
  statusDns: string | null = "active",
): Promise<string> {
  const [row] = await sql<{ id: string }[]>`
    insert into public.sites (domain, status_dns) values (${domain}, ${statusDns}) returning id`;
  return row.id;
}

/**
 * Removes test sites whatever state they are in: the faults, the CloudPanel site on `server` (with
 * the product's own delete command, as an operator would), the row with its events, and any pause.
 */
export async function cleanUp(
  sql: Sql,
  sites: Array<{ id: string; domain: string }>,
  server: Server = "a",
) {
  for (const { id, domain } of sites) {
    await clearCloudpanelFaults(domain, server);
    await onServer(deleteSite(domain, "root").line, server);
    if (id) await removeSite(sql, id);
  }
  await sql`delete from public.hosting_health`;
}

/**
 * Waits until every site is final, sampling meanwhile how many were provisioning under a valid
 * lease at once (the database's own count, as the claim sees it); returns that peak. (Event
 * timestamps cannot tell: `now()` is a transaction's start, not its commit.)
 */
export async function peakWhileDraining(sql: Sql, ids: string[], timeoutMs: number) {
  let peak = 0;
  const until = Date.now() + timeoutMs;
  while (true) {
    const [{ busy, open }] = await sql<{ busy: number; open: number }[]>`
      select count(*) filter (where status_hosting = 'provisioning'
                              and hosting_lease_until > now())::int as busy,
             count(*) filter (where status_hosting not in ('active', 'failed'))::int as open
      from public.sites where id = any(${ids}::uuid[])`;
    peak = Math.max(peak, busy);
    if (open === 0) return peak;
    if (Date.now() > until) throw new Error(`${open} sites still open after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
