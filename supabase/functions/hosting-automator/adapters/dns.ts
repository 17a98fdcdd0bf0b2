// DNS over HTTPS: sends the queries core/dns.ts builds, all at once under one deadline, and hands
// each answer back to core/dns.ts to read. A resolver that cannot answer is an outcome, not a throw.

import { dnsQueries, readAnswer } from "../core/dns.ts";

export type Resolution =
  /** The addresses each name has (A and AAAA together; none for NXDOMAIN or no record). */
  | { ok: true; seen: Record<string, string[]> }
  /** The resolver did not answer usably (network, deadline, HTTP, body): nothing is known. */
  | { ok: false; reason: string };

export interface Resolver {
  /** Resolves the names the domain's certificate covers. Never throws. */
  resolve(domain: string): Promise<Resolution>;
}

export interface ResolverOptions {
  url: string;
  timeoutMs: number;
}

export function createResolver(options: ResolverOptions, fetchFn: typeof fetch = fetch): Resolver {
  return {
    async resolve(domain) {
      const queries = dnsQueries(domain, options.url);
      // One deadline for the whole check: the queries run side by side.
      const signal = AbortSignal.timeout(options.timeoutMs);
      const answers = await Promise.all(queries.map(async (query) => {
        try {
          const response = await fetchFn(query.url, {
            headers: { accept: "application/dns-json" },
            redirect: "error",
            signal,
          });
          return { query, lookup: readAnswer(query.type, response.status, await response.text()) };
        } catch (error) {
          const name = (error as Error)?.name;
          const reason = name === "TimeoutError" || name === "AbortError"
            ? `no answer within ${options.timeoutMs} ms`
            : (error as Error)?.message ?? String(error);
          return { query, lookup: { ok: false as const, reason } };
        }
      }));
      const seen: Record<string, string[]> = {};
      for (const { query, lookup } of answers) {
        if (!lookup.ok) {
          return { ok: false, reason: `${query.type} ${query.name}: ${lookup.reason}` };
        }
        seen[query.name] = [...(seen[query.name] ?? []), ...lookup.addresses];
      }
      return { ok: true, seen };
    },
  };
}
