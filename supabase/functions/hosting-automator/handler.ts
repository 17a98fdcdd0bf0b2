// The HTTP boundary (docs/contract.md#http-interface): method, caller, body size and type,
// settings, body, then claim and answer — 202 with the work running on in the background, 200 with
// results when asked to wait, or a dry-run plan. A removal is asked for first, then claimed alike.

import { callerRole } from "./core/auth.ts";
import { toHostingError } from "./core/errors.ts";
import { planRemoval, planSite } from "./core/plan.ts";
import { parseBody, type Work } from "./core/request.ts";
import type { LoadedSettings, Settings } from "./core/settings.ts";
import type { HostingStore, SiteRow } from "./adapters/store.ts";
import type { Logger } from "./lib/log.ts";
import type { SiteRun } from "./run/site_run.ts";

/** Everything the handler needs from the outside, so tests can hand it fakes. */
export interface Runtime {
  loaded: LoadedSettings;
  /** One invocation's claims and lanes (on the instance's warm SSH connection and Matomo client). */
  createRun(settings: Settings): { run: SiteRun; store: HostingStore };
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

/** Larger bodies are refused unread: the contract's bodies are a few hundred bytes. */
export const MAX_BODY_BYTES = 64 * 1024;

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });

const problem = (status: number, code: string, message: string, extra: object = {}) =>
  json(status, { error: { code, message, ...extra } });

const UNAUTHORIZED = () =>
  problem(
    401,
    "UNAUTHORIZED",
    "present the project's service-role or secret key as 'Authorization: Bearer <key>' or 'apikey: <key>'",
  );

/** The body as text, or a Response when it is too large (read no further than the limit). */
async function readBody(request: Request): Promise<string | Response> {
  const tooLarge = () =>
    problem(413, "BODY_TOO_LARGE", `the body must be at most ${MAX_BODY_BYTES} bytes`);
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > MAX_BODY_BYTES) {
    await request.body?.cancel().catch(() => {});
    return tooLarge();
  }
  if (!request.body) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > MAX_BODY_BYTES) {
      await reader.cancel().catch(() => {});
      return tooLarge();
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return new TextDecoder().decode(bytes);
}

export function createHandler(runtime: Runtime): Handler {
  const running = new Set<SiteRun>();

  async function dryRun(settings: Settings, store: HostingStore, work: Work): Promise<Response> {
    const peek = await store.peek(work.siteId, settings.lanes.maxConcurrent);
    // A named site always gets its plan, whatever its state, with the reason a real call would
    // not take it now; without a site, the plans of what is due.
    const sites = work.siteId ? (peek.site ? [peek.site] : []) : peek.due;
    const removal = work.deprovision;
    // The site's server decides the login (sudo or not) and whether the DNS check runs.
    const loginOf = (site: SiteRow) =>
      site.server ? site.server_user ?? "root" : settings.ssh.implicit?.user ?? "root";
    const dnsCheckOf = (site: SiteRow) =>
      (site.server ? site.server_addresses?.length : settings.ssh.implicit?.addresses?.length)
        ? settings.dns.resolverUrl
        : undefined;
    const plans = sites.map((site) => ({
      server: site.server ?? null,
      ...(removal
        ? {
          ...planRemoval(site, removal.deleteAnalytics, loginOf(site), settings.matomo.url),
          // What hosting_request_removal would answer: a removed site changes nothing, and a
          // site a worker holds is refused.
          skip_reason: site.status_hosting === "removed"
            ? "REMOVED"
            : site.skip_reason === "IN_PROGRESS"
            ? "IN_PROGRESS"
            : null,
        }
        : {
          ...planSite(site, loginOf(site), settings.matomo.url, dnsCheckOf(site)),
          skip_reason: site.due ? null : site.skip_reason ?? null,
        }),
    }));
    const skipped = work.siteId && !peek.site
      ? [{ site_id: work.siteId, domain: null, status: null, reason: "NOT_FOUND" }]
      : [];
    return json(200, { dry_run: true, plans, skipped });
  }

  async function perform(settings: Settings, work: Work): Promise<Response> {
    const { run, store } = runtime.createRun(settings);
    if (work.dryRun) return await dryRun(settings, store, work);
    if (work.deprovision && work.siteId) {
      const asked = await store.requestRemoval(work.siteId, work.deprovision.deleteAnalytics);
      if (asked.outcome === "in_progress") {
        return problem(
          409,
          "IN_PROGRESS",
          `${asked.site?.domain} is being worked on until ${asked.site?.lease_until} (lease); ` +
            "nothing changed: wait for its result, then remove it",
          { site_id: work.siteId, status: asked.site?.status_hosting ?? null },
        );
      }
      runtime.log("info", "removal_requested", {
        site_id: work.siteId,
        outcome: asked.outcome,
        delete_analytics: work.deprovision.deleteAnalytics,
      });
    }

    const batch = await run.claim(work.siteId);
    runtime.log("info", "request", {
      mode: work.wait ? "wait" : "background",
      site_id: work.siteId,
      accepted: batch.accepted.length,
      skipped: batch.skipped.map((s) => s.reason).join(",") || undefined,
    });
    running.add(run);
    const done = run.run().finally(() => running.delete(run));
    if (work.wait) {
      return json(200, { results: await done, skipped: batch.skipped });
    }
    runtime.waitUntil(
      done.catch((error) =>
        runtime.log("error", "background_run_failed", {
          msg: runtime.redact((error as Error).message),
        })
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
      // Who calls comes first: an unauthenticated caller learns nothing about the settings.
      const loaded = runtime.loaded;
      const callerKeys = loaded.ok ? loaded.settings.callerKeys : loaded.callerKeys;
      const dispatchToken = loaded.ok ? loaded.settings.dispatchToken : loaded.dispatchToken;
      const role = callerRole(request.headers, callerKeys, dispatchToken);
      if (role === null) {
        if (callerKeys.length === 0) {
          runtime.log("error", "configuration", {
            msg:
              "SUPABASE_SERVICE_ROLE_KEY or SUPABASE_SECRET_KEYS: missing; every call is refused",
          });
        }
        await request.body?.cancel().catch(() => {});
        return UNAUTHORIZED();
      }
      const type = request.headers.get("content-type") ?? "";
      const text = await readBody(request);
      if (text instanceof Response) return text;
      // A body must be JSON; a caller that names another type is told so (none: read as JSON).
      if (text.trim() !== "" && type !== "" && !/^application\/json\s*(;|$)/i.test(type)) {
        return problem(
          415,
          "UNSUPPORTED_MEDIA_TYPE",
          "send the body as JSON with 'Content-Type: application/json'",
        );
      }
      if (!loaded.ok) {
        runtime.log("error", "configuration", {
          msg: loaded.problems.map((p) => `${p.setting}: ${p.message}`).join("; "),
        });
        return problem(
          500,
          "CONFIGURATION",
          `missing or invalid settings: ${loaded.problems.map((p) => p.setting).join(", ")}`,
          { settings: loaded.problems },
        );
      }
      const parsed = parseBody(text);
      if (!parsed.ok) {
        return problem(400, "INVALID_BODY", "the request body does not match the contract", {
          issues: parsed.issues,
        });
      }
      if (role === "dispatch" && parsed.work.deprovision) {
        return problem(
          403,
          "FORBIDDEN",
          "the dispatch token cannot remove a site; use the service-role or secret key",
        );
      }
      if (role === "dispatch" && (parsed.work.dryRun || parsed.work.wait)) {
        return problem(
          403,
          "FORBIDDEN",
          "the dispatch token only starts due work; use the service-role or secret key for dry_run or wait",
        );
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
      await Promise.allSettled([...running].map((run) => run.interrupt(reason)));
    },
  };
}
