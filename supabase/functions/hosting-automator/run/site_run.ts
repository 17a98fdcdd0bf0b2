// One invocation's work: the first claim (what the caller is told was accepted), then the jobs run
// side by side; each lane that finishes claims the next due site while the time budget lasts. A
// server failure stops the run from claiming and hands back what it had not started.

import type { SkipReason } from "../core/decisions.ts";
import { ERROR_CODES, type ErrorCode, toHostingError } from "../core/errors.ts";
import type { Job } from "../adapters/store.ts";
import {
  completeAnalytics,
  type JobContext,
  provisionSite,
  releaseInterrupted,
  type SiteResult,
} from "./provision.ts";
import { releaseInterruptedRemoval, removeSite } from "./remove.ts";

export interface Skipped {
  site_id: string;
  domain: string | null;
  status: string | null;
  reason: SkipReason;
}

export interface Accepted {
  site_id: string;
  domain: string;
  attempt: number;
  kind: Job["kind"];
}

export interface Batch {
  accepted: Accepted[];
  skipped: Skipped[];
}

export interface RunOptions {
  maxConcurrent: number;
  timeBudgetMs: number;
  /**
   * Asks a fresh invocation (a fresh wall clock) to go on with what is still due, when this one's
   * budget ran out with work left: a burst drains without waiting for the next sweep.
   */
  continueElsewhere?: () => Promise<void>;
}

const isServerFailure = (code: string) =>
  (ERROR_CODES[code as ErrorCode] as { server?: boolean } | undefined)?.server === true;

/** The claims and lanes of one invocation (not a web Worker: plain promises on one thread). */
export class SiteRun {
  readonly #ctx: JobContext;
  readonly #options: RunOptions;
  readonly #started: number;
  readonly #queue: Job[] = [];
  readonly #inFlight = new Map<string, { job: Job; claimedAt: number }>();
  #initial = 0;
  #stopped: string | undefined;
  /** A lane stopped at the end of the time budget, so due work may be left. */
  #budgetSpent = false;

  constructor(ctx: JobContext, options: RunOptions) {
    this.#ctx = ctx;
    this.#options = options;
    this.#started = ctx.now().getTime();
  }

  async #claim(siteId: string | undefined, limit: number) {
    const answer = await this.#ctx.store.claim(siteId, limit);
    // Another instance saw Matomo refuse this token: do not call it either.
    if (answer.paused.matomo) this.#ctx.analytics.pauseUntil(new Date(answer.paused.matomo));
    return answer;
  }

  /** Claims the requested site, or up to the concurrency limit of due sites. Changes only the rows
   * it claims; a site that could not be claimed is reported with the database's reason. */
  async claim(siteId?: string): Promise<Batch> {
    const answer = await this.#claim(siteId, siteId ? 1 : this.#options.maxConcurrent);
    this.#queue.push(...answer.claimed);
    this.#initial = answer.claimed.length;
    const skipped: Skipped[] = [];
    if (siteId && answer.claimed.length === 0) {
      skipped.push({
        site_id: siteId,
        domain: answer.site?.domain ?? null,
        status: answer.site?.status_hosting ?? null,
        // Found but not claimed, with no other reason: it was due, and every slot was taken.
        reason:
          (answer.site ? answer.site.skip_reason ?? "AT_CAPACITY" : "NOT_FOUND") as SkipReason,
      });
    }
    return {
      accepted: answer.claimed.map((job) => ({
        site_id: job.site_id,
        domain: job.domain,
        attempt: job.attempt,
        kind: job.kind,
      })),
      skipped,
    };
  }

  /** Runs what was claimed, then drains due sites while the budget lasts; hands the shell back. */
  async run(): Promise<SiteResult[]> {
    const results: SiteResult[] = [];
    const lanes = Array.from({ length: this.#initial }, () => this.#lane(results));
    try {
      await Promise.all(lanes);
    } finally {
      await this.#ctx.shell.close().catch(() => {});
    }
    if (this.#budgetSpent && this.#stopped === undefined && this.#options.continueElsewhere) {
      try {
        await this.#options.continueElsewhere();
        this.#ctx.log("info", "continued", {
          msg: "time budget spent; a fresh invocation goes on",
        });
      } catch (error) {
        // The sweeper goes on within a minute instead.
        this.#ctx.log("warn", "continue_failed", {
          msg: this.#ctx.redact((error as Error).message),
        });
      }
    }
    return results;
  }

  async #lane(results: SiteResult[]): Promise<void> {
    while (this.#stopped === undefined) {
      let job = this.#queue.shift();
      if (!job) {
        if (this.#ctx.now().getTime() - this.#started >= this.#options.timeBudgetMs) {
          this.#budgetSpent = true;
          return;
        }
        try {
          const next = await this.#claim(undefined, 1);
          job = next.claimed.shift();
          this.#queue.push(...next.claimed);
        } catch (error) {
          this.#ctx.log("error", "claim_failed", {
            code: toHostingError(error).code,
            msg: this.#ctx.redact((error as Error).message),
          });
          return;
        }
        if (!job) return;
      }
      const result = await this.#runJob(job);
      results.push(result);
      if (result.error && isServerFailure(result.error.code)) {
        await this.#stop(`the run stopped: ${result.error.code} on the server`);
      }
    }
  }

  async #runJob(job: Job): Promise<SiteResult> {
    const claimedAt = this.#ctx.now().getTime();
    this.#inFlight.set(job.claim_token, { job, claimedAt });
    try {
      return job.kind === "analytics"
        ? await completeAnalytics(job, this.#ctx, claimedAt)
        : job.kind === "remove"
        ? await removeSite(job, this.#ctx, claimedAt)
        : await provisionSite(job, this.#ctx, claimedAt);
    } finally {
      this.#inFlight.delete(job.claim_token);
    }
  }

  /** Takes no more work and gives back, unchanged, the claims not started yet. */
  async #stop(reason: string): Promise<void> {
    if (this.#stopped !== undefined) return;
    this.#stopped = reason;
    const unstarted = this.#queue.splice(0);
    if (unstarted.length === 0) return;
    try {
      await this.#ctx.store.release(unstarted.map((job) => job.claim_token), reason);
    } catch (error) {
      // Their leases end on their own; the sweeper hands them out again then.
      this.#ctx.log("error", "release_failed", {
        code: "DATABASE_ERROR",
        msg: this.#ctx.redact((error as Error).message),
      });
    }
  }

  /** The runtime is about to stop this instance: take no more work, give back what runs now and
   * what waits, so the sites are retried at once instead of when their leases run out. */
  async interrupt(reason: string): Promise<void> {
    const running = [...this.#inFlight.values()];
    this.#ctx.log("warn", "interrupted", { msg: reason, in_flight: running.length });
    await Promise.allSettled([
      this.#stop(`the edge runtime is shutting down (${reason})`),
      ...running.map(({ job, claimedAt }) =>
        job.kind === "remove"
          ? releaseInterruptedRemoval(job, this.#ctx, claimedAt, reason)
          : releaseInterrupted(job, this.#ctx, claimedAt, reason)
      ),
    ]);
  }
}
