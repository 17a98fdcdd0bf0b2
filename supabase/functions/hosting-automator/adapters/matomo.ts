// Matomo over HTTP: sends the requests core/matomo.ts builds, with a deadline, and hands the
// answers back to core/matomo.ts to read. One client per run.

import { HostingError } from "../core/errors.ts";
import { withDeadline } from "../lib/deadline.ts";
import {
  addSiteRequest,
  deleteSiteRequest,
  type HttpAnswer,
  type Interpreted,
  lookupRequest,
  type MatomoRequest,
  readAddSite,
  readDeleteSite,
  readLookup,
} from "../core/matomo.ts";

export interface Analytics {
  /** Matomo site ids registered for the domain's URL, lowest first; [] when none. */
  findSiteIds(domain: string): Promise<number[]>;
  /** Registers the domain; returns the new idsite. */
  addSite(domain: string): Promise<number>;
  /** Deletes the site with this idsite (removal only); "not_found" when Matomo has no such id. */
  deleteSite(idSite: number): Promise<"deleted" | "not_found">;
  /** Until when no call is made (after an authentication failure or a block), or null. */
  pausedUntil(): Date | null;
  /** Pause calls until `until` (learnt from the database: another instance saw the failure). */
  pauseUntil(until: Date): void;
}

export interface MatomoOptions {
  url: string;
  token: string;
  timeoutMs: number;
}

/** How long calls stop after Matomo refused the token: its brute-force window
 * (docs/matomo.md#brute-force-lockout). */
export const AUTH_PAUSE_MS = 3_600_000;

/**
 * One client per function instance. Every wrong token counts towards Matomo's per-IP brute-force
 * limit (20 failed logins block the IP), so: until one call has succeeded, calls go one at a time
 * (concurrent lanes cannot send several wrong tokens at once), and after an authentication failure
 * or a block no call is made for AUTH_PAUSE_MS.
 */
export function createMatomoClient(
  options: MatomoOptions,
  fetchFn: typeof fetch = fetch,
  now: () => number = Date.now,
): Analytics {
  let pausedUntil = 0;
  let verified = false;
  let probe: Promise<unknown> = Promise.resolve();

  async function send<T>(
    request: MatomoRequest,
    read: (answer: HttpAnswer) => Interpreted<T>,
  ): Promise<T> {
    if (verified) return await call(request, read, options.timeoutMs);
    // One call at a time until the token has worked once. The deadline of a call includes its
    // wait for the call before it, so a lane never waits longer than one Matomo timeout.
    const started = performance.now();
    const previous = probe;
    let done!: () => void;
    probe = new Promise<void>((resolve) => (done = resolve));
    try {
      await withDeadline(previous, options.timeoutMs, () =>
        new HostingError(
          "MATOMO_TIMEOUT",
          `${request.method}: waited ${options.timeoutMs} ms for an earlier call to Matomo`,
          { step: "analytics" },
        ));
      const left = Math.max(1, options.timeoutMs - (performance.now() - started));
      return await call(request, read, left);
    } finally {
      done();
    }
  }

  async function call<T>(
    request: MatomoRequest,
    read: (answer: HttpAnswer) => Interpreted<T>,
    timeoutMs: number,
  ): Promise<T> {
    if (pausedUntil > now()) {
      // Not a new failure: no request was made.
      throw new HostingError(
        "MATOMO_PAUSED",
        `Matomo is not called until ${new Date(pausedUntil).toISOString()} (it refused the token)`,
        { step: "analytics" },
      );
    }
    let answer: HttpAnswer;
    try {
      const response = await fetchFn(request.url, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          accept: "application/json",
        },
        body: request.body.toString(),
        redirect: "manual", // a redirect would turn the POST into a GET and drop the token
        signal: AbortSignal.timeout(timeoutMs),
      });
      answer = {
        status: response.status,
        contentType: response.headers.get("content-type") ?? "",
        body: await response.text(),
      };
    } catch (error) {
      const name = (error as Error)?.name;
      if (name === "TimeoutError" || name === "AbortError") {
        throw new HostingError(
          "MATOMO_TIMEOUT",
          `${request.method}: no answer within ${options.timeoutMs} ms`,
          { step: "analytics", cause: error },
        );
      }
      throw new HostingError(
        "MATOMO_UNREACHABLE",
        `${request.method}: ${(error as Error)?.message ?? String(error)}`,
        { step: "analytics", cause: error },
      );
    }
    const result = read(answer);
    if (result.ok) {
      verified = true;
      return result.value;
    }
    if (result.error.code === "MATOMO_AUTH" || result.error.code === "MATOMO_BLOCKED") {
      verified = false;
      pausedUntil = Math.max(pausedUntil, now() + AUTH_PAUSE_MS);
    }
    throw result.error;
  }

  return {
    findSiteIds: (domain) => send(lookupRequest(options.url, options.token, domain), readLookup),
    addSite: (domain) => send(addSiteRequest(options.url, options.token, domain), readAddSite),
    deleteSite: (idSite) =>
      send(deleteSiteRequest(options.url, options.token, idSite), readDeleteSite),
    pausedUntil: () => (pausedUntil > now() ? new Date(pausedUntil) : null),
    pauseUntil: (until) => {
      pausedUntil = Math.max(pausedUntil, until.getTime());
    },
  };
}
