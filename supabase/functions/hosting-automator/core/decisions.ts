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

export interface AnalyticsPolicy {
  /** Wait after the first failed registration; doubles with every further one. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Failed registrations in a row before the product gives up (an operator can retry). */
  maxAttempts: number;
}

/**
 * When to try the Matomo registration of an active site again after `error`, given how many had
 * failed before it; "never" once the limit is reached. Never sooner than the code's own floor.
 */
export function analyticsRetryAt(
  error: HostingError,
  failedBefore: number,
  policy: AnalyticsPolicy,
  now: Date,
): Date | "never" {
  if (failedBefore + 1 >= policy.maxAttempts) return "never";
  const exponential = Math.min(policy.baseDelayMs * 2 ** failedBefore, policy.maxDelayMs);
  const floor = (ERROR_CODES[error.code] as { minRetryMs?: number }).minRetryMs ?? 0;
  return new Date(now.getTime() + Math.max(exponential, floor));
}

/** Why a site asked for by id was not claimed: the database's verdict (hosting_skip_reason). */
export type SkipReason =
  | "NOT_FOUND"
  | "DNS_NOT_ACTIVE"
  | "ALREADY_ACTIVE"
  | "IN_PROGRESS"
  | "NOT_DUE"
  | "FAILED"
  | "AT_CAPACITY"
  | "SERVER_PAUSED"
  | "ANALYTICS_PAUSED"
  | "ANALYTICS_GAVE_UP"
  | "REMOVED";
