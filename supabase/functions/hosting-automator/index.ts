// Entry point of the Edge Function: the only place that reads the environment. It checks the
// settings once, wires the real adapters and serves the handler.

import { createClient } from "@supabase/supabase-js";
import { createHandler } from "./handler.ts";
import { createMatomoClient } from "./adapters/matomo.ts";
import { createSshShell, privateKeyProblem } from "./adapters/ssh.ts";
import { createSupabaseStore } from "./adapters/store.ts";
import { createRedactor } from "./core/redact.ts";
import { type LoadedSettings, loadSettings, secretsOf } from "./core/settings.ts";
import { generatePassword } from "./core/site_user.ts";
import { createLogger } from "./lib/log.ts";
import { Worker } from "./run/worker.ts";

function checkedSettings(env: Record<string, string>): LoadedSettings {
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

const loaded = checkedSettings(Deno.env.toObject());
const redact = createRedactor(
  loaded.ok ? secretsOf(loaded.settings) : Object.values(loaded.callerKeys),
);
const log = createLogger(redact);

type EdgeRuntimeGlobal = { EdgeRuntime?: { waitUntil(work: Promise<unknown>): void } };
const edgeRuntime = (globalThis as EdgeRuntimeGlobal).EdgeRuntime;

const handler = createHandler({
  loaded,
  log,
  redact,
  now: () => new Date(),
  waitUntil: (work) => edgeRuntime?.waitUntil(work),
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
      shell: createSshShell(settings.ssh),
      analytics: createMatomoClient(settings.matomo),
      store,
      log: createLogger(runRedact),
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

// The platform announces the end of this instance (wall clock, CPU, memory, termination): record
// it and give the running sites back instead of leaving them to their leases.
addEventListener("beforeunload", (event) => {
  const reason = (event as CustomEvent<{ reason?: string }>).detail?.reason ?? "unknown";
  log("warn", "beforeunload", { msg: reason });
  const released = handler.interrupt(reason);
  edgeRuntime?.waitUntil(released);
});

Deno.serve(handler.fetch);
