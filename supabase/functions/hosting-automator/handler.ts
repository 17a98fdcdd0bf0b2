// The HTTP boundary (docs/contract.md#http-interface): method, key, settings, body, then claim and
// answer — 202 with the work running on in the background, 200 with results when asked to wait, or
// a dry-run plan.

import { isAuthorized } from "./core/auth.ts";
import { skipReason } from "./core/decisions.ts";
import { toHostingError } from "./core/errors.ts";
import { planSite } from "./core/plan.ts";
import { parseBody, type Work } from "./core/request.ts";
import type { LoadedSettings, Settings } from "./core/settings.ts";
import type { HostingStore } from "./adapters/store.ts";
import type { Logger } from "./lib/log.ts";
import type { Skipped, Worker } from "./run/worker.ts";

/** Everything the handler needs from the outside, so tests can hand it fakes. */
export interface Runtime {
  loaded: LoadedSettings;
  /** Fresh adapters for one invocation (one SSH connection, one Matomo client). */
  createRun(settings: Settings): { worker: Worker; store: HostingStore };
  /** EdgeRuntime.waitUntil where present; otherwise the promise simply runs on. */
  waitUntil(work: Promise<unknown>): void;
  log: Logger;
  /** Masks every configured secret in text that leaves the function. */
  redact(text: string): string;
  now(): Date;
}

export interface Handler {
  fetch(request: Request): Promise<Response>;
  /** Called on the runtime's beforeunload: hands running sites back for a prompt retry. */
  interrupt(reason: string): Promise<void>;
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });

const problem = (status: number, code: string, message: string, extra: object = {}) =>
  json(status, { error: { code, message, ...extra } });

export function createHandler(runtime: Runtime): Handler {
  const running = new Set<Worker>();

  async function dryRun(settings: Settings, store: HostingStore, work: Work): Promise<Response> {
    const peek = await store.peek(work.siteId, settings.run.maxConcurrent);
    const skipped: Skipped[] = [];
    if (work.siteId && peek.due.length === 0) {
      skipped.push({
        site_id: work.siteId,
        domain: peek.site?.domain ?? null,
        status: peek.site?.status_hosting ?? null,
        reason: skipReason(peek.site, runtime.now()),
      });
    }
    const plans = peek.due.map((site) => planSite(site, settings.ssh.user, settings.matomo.url));
    return json(200, { dry_run: true, plans, skipped });
  }

  async function perform(settings: Settings, work: Work): Promise<Response> {
    const { worker, store } = runtime.createRun(settings);
    if (work.dryRun) return await dryRun(settings, store, work);

    const batch = await worker.claim(work.siteId);
    runtime.log("info", "request", {
      mode: work.wait ? "wait" : "background",
      site_id: work.siteId,
      accepted: batch.accepted.length,
      skipped: batch.skipped.map((s) => s.reason).join(",") || undefined,
    });
    running.add(worker);
    const done = worker.run().finally(() => running.delete(worker));
    if (work.wait) {
      return json(200, { results: await done, skipped: batch.skipped });
    }
    runtime.waitUntil(
      done.catch((error) =>
        runtime.log("error", "background_run_failed", { msg: (error as Error).message })
      ),
    );
    return json(202, batch);
  }

  return {
    async fetch(request) {
      if (request.method !== "POST") {
        return json(405, { error: { code: "METHOD_NOT_ALLOWED", message: "use POST" } }, {
          allow: "POST",
        });
      }
      const loaded = runtime.loaded;
      const callerKeys = loaded.ok ? loaded.settings.callerKeys : loaded.callerKeys;
      if (callerKeys.length === 0) {
        return problem(500, "CONFIGURATION", "the function has no key to check callers against", {
          settings: ["SUPABASE_SERVICE_ROLE_KEY or SUPABASE_SECRET_KEYS: missing"],
        });
      }
      if (!isAuthorized(request.headers, callerKeys)) {
        return problem(
          401,
          "UNAUTHORIZED",
          "present the project's service-role or secret key as 'Authorization: Bearer <key>' or 'apikey: <key>'",
        );
      }
      if (!loaded.ok) {
        runtime.log("error", "configuration", { msg: loaded.problems.join("; ") });
        return problem(
          500,
          "CONFIGURATION",
          `missing or invalid settings: ${loaded.problems.map((p) => p.split(":")[0]).join(", ")}`,
          { settings: loaded.problems },
        );
      }
      const parsed = parseBody(await request.text());
      if (!parsed.ok) {
        return problem(400, "INVALID_BODY", "the request body does not match the contract", {
          issues: parsed.issues,
        });
      }
      try {
        return await perform(loaded.settings, parsed.work);
      } catch (thrown) {
        const error = toHostingError(thrown);
        runtime.log("error", "request_failed", { code: error.code, msg: error.message });
        return problem(
          error.code === "DATABASE_ERROR" ? 503 : 500,
          error.code,
          runtime.redact(error.message),
        );
      }
    },

    async interrupt(reason) {
      await Promise.allSettled([...running].map((worker) => worker.interrupt(reason)));
    },
  };
}
