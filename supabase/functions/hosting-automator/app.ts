// Wires the real adapters (Supabase, SSH, Matomo) to the handler for a given environment. The
// environment is passed in, never read here: index.ts reads it, and tests hand in their own.
// Settings are checked and clients built once per instance, not per request.

import { createHash } from "node:crypto";
import { createClient } from "@supabase/supabase-js";
import { createHandler, type Handler } from "./handler.ts";
import { createResolver, type Resolver } from "./adapters/dns.ts";
import { type Analytics, createMatomoClient } from "./adapters/matomo.ts";
import { createSshConnections, privateKeyProblem } from "./adapters/ssh.ts";
import { createSupabaseStore, type HostingStore, type Targets } from "./adapters/store.ts";
import { createRedactor } from "./core/redact.ts";
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
  const keyProblem = privateKeyProblem(
    loaded.settings.ssh.privateKey,
    loaded.settings.ssh.passphrase,
  );
  if (keyProblem === undefined) return loaded;
  return {
    ok: false,
    problems: [{ setting: "SSH_PRIVATE_KEY", message: keyProblem }],
    callerKeys: loaded.settings.callerKeys,
    dispatchToken: loaded.settings.dispatchToken,
  };
}

/** A short digest of settings, never the settings: a corrected value gives another digest. */
const digest = (...parts: Array<string | undefined>) =>
  `sha256:${
    createHash("sha256").update(parts.map((p) => p ?? "").join("\n")).digest("hex")
      .slice(0, 16)
  }`;

/** Which server and Matomo this instance talks to, and with which settings (as digests). */
export function targetsOf(settings: Settings): Targets {
  const { ssh, matomo } = settings;
  return {
    ssh: {
      target: `ssh:${ssh.user}@${ssh.host}:${ssh.port}`,
      credential: digest(ssh.hostKeyFingerprint, ssh.privateKey, ssh.passphrase),
    },
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
      if (settings.dns) {
        resolver ??= createResolver({ url: settings.dns.resolverUrl, ...settings.dns });
      }
      // Each run gets its own redactor: it learns the run's generated passwords.
      const runRedact = createRedactor(secretsOf(settings));
      const run = new SiteRun({
        shell: ssh.shell(settings.ssh),
        analytics,
        store,
        log: createLogger(runRedact, write),
        redact: runRedact,
        now: () => new Date(),
        newPassword: () => generatePassword(),
        sshUser: settings.ssh.user,
        retry: settings.retry,
        analyticsRetry: settings.analyticsRetry,
        serverRetry: settings.serverRetry,
        targets: targetsOf(settings),
        timeouts: settings.timeouts,
        ...(settings.dns && resolver
          ? { dns: { resolver, serverAddresses: settings.dns.serverAddresses } }
          : {}),
      }, { ...settings.lanes, continueElsewhere: continuation(settings) });
      return { run, store };
    },
  });
  return { ...handler, log, closeConnections: () => ssh.close() };
}
