// Wires the real adapters (Supabase, SSH, Matomo) to the handler for a given environment. The
// environment is passed in, never read here: index.ts reads it, and tests hand in their own.
// Settings are checked and clients built once per instance, not per request.

import { createClient } from "@supabase/supabase-js";
import { createHandler, type Handler } from "./handler.ts";
import { createResolver, type Resolver } from "./adapters/dns.ts";
import { type Analytics, createMatomoClient } from "./adapters/matomo.ts";
import { createSshConnections, privateKeyProblem } from "./adapters/ssh.ts";
import { createSupabaseStore, type HostingStore, type Targets } from "./adapters/store.ts";
import { createRedactor } from "./core/redact.ts";
import { digest, implicitHealth, jobServer, keyDigests, keySetting } from "./core/servers.ts";
import { type LoadedSettings, loadSettings, secretsOf, type Settings } from "./core/settings.ts";
import { generatePassword } from "./core/site_user.ts";
import { createLogger, type Logger } from "./lib/log.ts";
import { SiteRun } from "./run/site_run.ts";

export interface App extends Handler {
  log: Logger;
  /** Closes the instance's SSH connections (beforeunload): idle ones now, busy ones when done. */
  closeConnections(): Promise<void>;
}

function checkedSettings(env: Record<string, string | undefined>): LoadedSettings {
  const loaded = loadSettings(env);
  if (!loaded.ok) return loaded;
  const { ssh } = loaded.settings;
  const problems = [
    { setting: "SSH_PRIVATE_KEY", message: privateKeyProblem(ssh.privateKey, ssh.passphrase) },
    ...Object.entries(ssh.keys).map(([server, key]) => ({
      setting: keySetting(server),
      message: privateKeyProblem(key.privateKey, key.passphrase),
    })),
  ].filter((p): p is { setting: string; message: string } => p.message !== undefined);
  if (problems.length === 0) return loaded;
  return {
    ok: false,
    problems,
    callerKeys: loaded.settings.callerKeys,
    dispatchToken: loaded.settings.dispatchToken,
  };
}

/** What this instance claims with: its implicit server, its keys and its Matomo, as digests. */
export function targetsOf(settings: Settings): Targets {
  const { ssh, matomo } = settings;
  const implicit = implicitHealth(ssh);
  return {
    ...(implicit ? { ssh: implicit } : {}),
    sshKeys: keyDigests(ssh),
    matomo: { target: `matomo:${matomo.url}`, credential: digest(matomo.token) },
  };
}

/**
 * When an invocation's time budget runs out with work left, it POSTs {} to the function itself
 * with the dispatch token — what the trigger would send — so a fresh invocation goes on at once.
 * Without a dispatch token there is no continuation; the sweeper goes on within a minute.
 */
function continuation(settings: Settings): (() => Promise<void>) | undefined {
  const token = settings.dispatchToken;
  if (!token) return undefined;
  const url = `${settings.supabaseUrl.replace(/\/+$/, "")}/functions/v1/hosting-automator`;
  return async () => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", apikey: token },
      body: "{}",
      signal: AbortSignal.timeout(settings.databaseTimeoutMs),
    });
    await response.body?.cancel();
    if (response.status !== 202) throw new Error(`continuation answered ${response.status}`);
  };
}

/** The function for `env`, with `waitUntil` for background work (EdgeRuntime's where present). */
export function createApp(
  env: Record<string, string | undefined>,
  waitUntil: (work: Promise<unknown>) => void,
  write: (line: string) => void = (line) => console.log(line),
): App {
  const loaded = checkedSettings(env);
  const redact = createRedactor(
    loaded.ok ? secretsOf(loaded.settings) : [...loaded.callerKeys, loaded.dispatchToken],
  );
  const log = createLogger(redact, write);
  // Clients once per instance (settings do not change within one): the database client, and the
  // Matomo client, whose pause after a refused token must outlive a single request.
  let store: HostingStore | undefined;
  let analytics: Analytics | undefined;
  let resolver: Resolver | undefined;
  // One warm SSH connection per server for the whole instance, shared by its runs.
  const ssh = createSshConnections({ log });

  const handler = createHandler({
    loaded,
    log,
    redact,
    now: () => new Date(),
    waitUntil,
    createRun(settings) {
      store ??= createSupabaseStore(
        createClient(settings.supabaseUrl, settings.databaseKey, {
          auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
        }),
        settings.claim,
        settings.databaseTimeoutMs,
        targetsOf(settings),
      );
      analytics ??= createMatomoClient(settings.matomo);
      resolver ??= createResolver({ url: settings.dns.resolverUrl, ...settings.dns });
      // Each run gets its own redactor: it learns the run's generated passwords.
      const runRedact = createRedactor(secretsOf(settings));
      const targets = targetsOf(settings);
      const run = new SiteRun({
        servers: {
          serverOf: (job) => jobServer(job.server, settings.ssh),
          shell: (server) => ssh.shell(server.ssh),
        },
        matomoTarget: targets.matomo,
        resolver,
        analytics,
        store,
        log: createLogger(runRedact, write),
        redact: runRedact,
        now: () => new Date(),
        newPassword: () => generatePassword(),
        retry: settings.retry,
        analyticsRetry: settings.analyticsRetry,
        serverRetry: settings.serverRetry,
        timeouts: settings.timeouts,
      }, { ...settings.lanes, continueElsewhere: continuation(settings) });
      return { run, store };
    },
  });
  return { ...handler, log, closeConnections: () => ssh.close() };
}
