// State decisions: what a failed attempt leads to, how long to wait, and why a site was not taken.

import { ERROR_CODES, type HostingError } from "./errors.ts";

export interface RetryPolicy {
  maxAttempts: number;
  /** Wait after the first failed attempt; doubles with every further one. */
  baseDelayMs: number;
  maxDelayMs: number;
}

/** Exponential backoff by attempt (1-based), capped, never below the code's own floor. */
export function retryDelayMs(error: HostingError, attempt: number, policy: RetryPolicy): number {
  const exponential = policy.baseDelayMs * 2 ** Math.max(0, attempt - 1);
  const floor = (ERROR_CODES[error.code] as { minRetryMs?: number }).minRetryMs ?? 0;
  return Math.max(Math.min(exponential, policy.maxDelayMs), floor);
}

export type AfterFailure =
  | { status: "pending"; nextAttemptAt: Date; delayMs: number }
  | { status: "failed" };

/** A retryable failure before the last allowed attempt waits and tries again; anything else fails. */
export function afterFailure(
  error: HostingError,
  attempt: number,
  policy: RetryPolicy,
  now: Date,
): AfterFailure {
  if (!error.retryable || attempt >= policy.maxAttempts) return { status: "failed" };
  const delayMs = retryDelayMs(error, attempt, policy);
  return { status: "pending", nextAttemptAt: new Date(now.getTime() + delayMs), delayMs };
}

/** When to try the Matomo registration of an active site again after `error`. */
export function analyticsRetryAt(error: HostingError, retryMs: number, now: Date): Date {
  const floor = (ERROR_CODES[error.code] as { minRetryMs?: number }).minRetryMs ?? 0;
  return new Date(now.getTime() + Math.max(retryMs, floor));
}

/** The row fields that explain a claim that did not happen. */
export interface SiteState {
  status_dns: string | null;
  status_hosting: string;
  matomo_site_id: number | null;
  lease_until: string | null;
  next_attempt_at: string | null;
  due: string | null;
}

export type SkipReason =
  | "NOT_FOUND"
  | "DNS_NOT_ACTIVE"
  | "ALREADY_ACTIVE"
  | "IN_PROGRESS"
  | "NOT_DUE"
  | "FAILED"
  | "AT_CAPACITY";

/** Why a site asked for by id was not claimed. `due` is the database's own verdict. */
export function skipReason(site: SiteState | null, now: Date): SkipReason {
  if (site === null) return "NOT_FOUND";
  if (site.status_dns !== "active") return "DNS_NOT_ACTIVE";
  const leased = site.lease_until !== null && new Date(site.lease_until) > now;
  const waiting = site.next_attempt_at !== null && new Date(site.next_attempt_at) > now;
  switch (site.status_hosting) {
    case "active":
      if (site.matomo_site_id !== null) return "ALREADY_ACTIVE";
      return leased ? "IN_PROGRESS" : waiting ? "NOT_DUE" : "ALREADY_ACTIVE";
    case "provisioning":
      return leased ? "IN_PROGRESS" : "AT_CAPACITY";
    case "failed":
      return "FAILED";
    default:
      // pending: not due yet, or due but every provisioning slot is taken
      return waiting ? "NOT_DUE" : site.due ? "AT_CAPACITY" : "NOT_DUE";
  }
}
