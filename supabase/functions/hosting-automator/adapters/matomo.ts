// Matomo over HTTP: sends the requests core/matomo.ts builds, with a deadline, and hands the
// answers back to core/matomo.ts to read. One client per run.

import { HostingError } from "../core/errors.ts";
import {
  addSiteRequest,
  type HttpAnswer,
  type Interpreted,
  lookupRequest,
  type MatomoRequest,
  readAddSite,
  readLookup,
} from "../core/matomo.ts";

export interface Analytics {
  /** Matomo site ids registered for the domain's URL, lowest first; [] when none. */
  findSiteIds(domain: string): Promise<number[]>;
  /** Registers the domain; returns the new idsite. */
  addSite(domain: string): Promise<number>;
}

export interface MatomoOptions {
  url: string;
  token: string;
  timeoutMs: number;
}

export function createMatomoClient(
  options: MatomoOptions,
  fetchFn: typeof fetch = fetch,
): Analytics {
  // After an authentication failure or a block, stop calling for the rest of the run: every wrong
  // token counts towards Matomo's per-IP brute-force limit (docs/matomo.md#brute-force-lockout).
  let stopped: HostingError | undefined;

  async function send<T>(
    request: MatomoRequest,
    read: (answer: HttpAnswer) => Interpreted<T>,
  ): Promise<T> {
    if (stopped) {
      throw new HostingError(stopped.code, `${stopped.message} (not called again in this run)`, {
        step: "analytics",
      });
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
        signal: AbortSignal.timeout(options.timeoutMs),
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
    if (result.ok) return result.value;
    if (result.error.code === "MATOMO_AUTH" || result.error.code === "MATOMO_BLOCKED") {
      stopped = result.error;
    }
    throw result.error;
  }

  return {
    findSiteIds: (domain) => send(lookupRequest(options.url, options.token, domain), readLookup),
    addSite: (domain) => send(addSiteRequest(options.url, options.token, domain), readAddSite),
  };
}
