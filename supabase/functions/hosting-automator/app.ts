// Wires the real adapters (Supabase, SSH, Matomo) to the handler for a given environment. The
// environment is passed in, never read here: index.ts reads it, and tests hand in their own.

import { createClient } from "@supabase/supabase-js";
import { createHandler, type Handler } from "./handler.ts";
import { createMatomoClient } from "./adapters/matomo.ts";
import { createSshConnections, privateKeyProblem } from "./adapters/ssh.ts";
import { createSupabaseStore } from "./adapters/store.ts";
import { createRedactor } from "./core/redact.ts";
import { type LoadedSettings, loadSettings, secretsOf } from "./core/settings.ts";
import { generatePassword } from "./core/site_user.ts";
import { createLogger, type Logger } from "./lib/log.ts";
import { Worker } from "./run/worker.ts";

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
    problems: [`SSH_PRIVATE_KEY: ${keyProblem}`],
    callerKeys: loaded.settings.callerKeys,
  };
}

/** The function for `env`, with `waitUntil` for background work (EdgeRuntime's where present). */
export function createApp(
  env: Record<string, string | undefined>,
  waitUntil: (work: Promise<unknown>) => void,
  write: (line: string) => void = (line) => console.log(line),
): App {
  const loaded = checkedSettings(env);
  const redact = createRedactor(loaded.ok ? secretsOf(loaded.settings) : loaded.callerKeys);
  const log = createLogger(redact, write);
  // One warm SSH connection per server for the whole instance, shared by its runs.
  const ssh = createSshConnections({ log });

  const handler = createHandler({
    loaded,
    log,
    redact,
    now: () => new Date(),
    waitUntil,
    createRun(settings) {
      const database = createClient(settings.supabaseUrl, settings.databaseKey, {
        auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
      });
      const store = createSupabaseStore(database, {
        maxConcurrent: settings.run.maxConcurrent,
        leaseSeconds: settings.run.leaseSeconds,
        maxAttempts: settings.run.maxAttempts,
        analyticsLeaseSeconds: settings.run.analyticsLeaseSeconds,
      }, settings.run.databaseTimeoutMs);
      // Each run gets its own redactor: it learns the run's generated passwords.
      const runRedact = createRedactor(secretsOf(settings));
      const worker = new Worker({
        shell: ssh.shell(settings.ssh),
        analytics: createMatomoClient(settings.matomo),
        store,
        log: createLogger(runRedact, write),
        redact: runRedact,
        now: () => new Date(),
        newPassword: () => generatePassword(),
        sshUser: settings.ssh.user,
        retry: {
          maxAttempts: settings.run.maxAttempts,
          baseDelayMs: settings.run.retryBaseMs,
          maxDelayMs: settings.run.retryMaxMs,
        },
        analyticsRetryMs: settings.run.analyticsRetryMs,
        timeouts: {
          siteMs: settings.run.siteCommandTimeoutMs,
          certificateMs: settings.run.certificateTimeoutMs,
          checkMs: settings.run.checkTimeoutMs,
        },
      }, { maxConcurrent: settings.run.maxConcurrent, timeBudgetMs: settings.run.timeBudgetMs });
      return { worker, store };
    },
  });
  return { ...handler, log, closeConnections: () => ssh.close() };
}
