// One invocation's work: the first claim (what the caller is told was accepted), then the jobs run
// side by side; each lane that finishes claims the next due site while the time budget lasts.

import { type SkipReason, skipReason } from "../core/decisions.ts";
import { toHostingError } from "../core/errors.ts";
import type { Job } from "../adapters/store.ts";
import {
  completeAnalytics,
  type JobContext,
  provisionSite,
  releaseInterrupted,
  type SiteResult,
} from "./provision.ts";

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

export interface WorkerOptions {
  maxConcurrent: number;
  timeBudgetMs: number;
}

export class Worker {
  readonly #ctx: JobContext;
  readonly #options: WorkerOptions;
  readonly #started: number;
  readonly #queue: Job[] = [];
  readonly #inFlight = new Map<string, { job: Job; claimedAt: number }>();
  #initial = 0;
  #interrupted = false;

  constructor(ctx: JobContext, options: WorkerOptions) {
    this.#ctx = ctx;
    this.#options = options;
    this.#started = ctx.now().getTime();
  }

  /** Claims the requested site, or up to the concurrency limit of due sites. Changes only the rows
   * it claims; a site that could not be claimed is reported with the reason. */
  async claim(siteId?: string): Promise<Batch> {
    const answer = await this.#ctx.store.claim(siteId, siteId ? 1 : this.#options.maxConcurrent);
    this.#queue.push(...answer.claimed);
    this.#initial = answer.claimed.length;
    const skipped: Skipped[] = [];
    if (siteId && answer.claimed.length === 0) {
      skipped.push({
        site_id: siteId,
        domain: answer.site?.domain ?? null,
        status: answer.site?.status_hosting ?? null,
        reason: skipReason(answer.site, this.#ctx.now()),
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
    return results;
  }

  async #lane(results: SiteResult[]): Promise<void> {
    while (!this.#interrupted) {
      let job = this.#queue.shift();
      if (!job) {
        if (this.#ctx.now().getTime() - this.#started >= this.#options.timeBudgetMs) return;
        try {
          const next = await this.#ctx.store.claim(undefined, 1);
          job = next.claimed.shift();
          this.#queue.push(...next.claimed);
        } catch (error) {
          this.#ctx.log("error", "claim_failed", {
            code: toHostingError(error).code,
            msg: (error as Error).message,
          });
          return;
        }
        if (!job) return;
      }
      results.push(await this.#runJob(job));
    }
  }

  async #runJob(job: Job): Promise<SiteResult> {
    const claimedAt = this.#ctx.now().getTime();
    this.#inFlight.set(job.claim_token, { job, claimedAt });
    try {
      return job.kind === "analytics"
        ? await completeAnalytics(job, this.#ctx, claimedAt)
        : await provisionSite(job, this.#ctx, claimedAt);
    } finally {
      this.#inFlight.delete(job.claim_token);
    }
  }

  /** The runtime is about to stop this instance: take no more work and give back what runs now,
   * so the sites are retried soon instead of when their leases run out. */
  async interrupt(reason: string): Promise<void> {
    this.#interrupted = true;
    const running = [...this.#inFlight.values()];
    this.#ctx.log("warn", "interrupted", { msg: reason, in_flight: running.length });
    await Promise.allSettled(
      running.map(({ job, claimedAt }) => releaseInterrupted(job, this.#ctx, claimedAt, reason)),
    );
  }
}
