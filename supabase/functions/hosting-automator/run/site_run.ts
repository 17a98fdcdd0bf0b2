// One invocation's work: the first claim (what the caller is told was accepted), then the jobs run
// side by side; each lane that finishes claims the next due site while the time budget lasts. A
// server failure stops the run's work on that server only: what it had not started there is
// handed back (the database pauses the server for every instance), other servers go on.

import type { SkipReason } from "../core/decisions.ts";
import { ERROR_CODES, type ErrorCode, HostingError, toHostingError } from "../core/errors.ts";
import type { HealthTarget, JobServer } from "../core/servers.ts";
import type { Resolver } from "../adapters/dns.ts";
import type { RemoteShell } from "../adapters/ssh.ts";
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

/** Where a job's server is and how to reach it (app.ts wires core/servers.ts and adapters/ssh.ts). */
export interface ServerRouter {
  /** The job's server; undefined when it has none (no listed server and no SSH_HOST). */
  serverOf(job: Job): JobServer | undefined;
  /** A shell to that server for one run (warm connections are the adapter's business). */
  shell(server: JobServer): RemoteShell;
}

/** What a run shares between its jobs; each job gets its server's part (JobContext). */
export type RunContext =
  & Omit<JobContext, "shell" | "sshUser" | "targets" | "dns">
  & {
    servers: ServerRouter;
    matomoTarget: HealthTarget;
    /** The DNS check's resolver, used for servers whose public addresses are known. */
    resolver?: Resolver;
  };

/** A job that needs no server (analytics) and has none still gets a shell: it refuses. */
const noShell: RemoteShell = {
  run: () => Promise.reject(new HostingError("INTERNAL", "this job has no server")),
  close: () => Promise.resolve(),
};

/** The claims and lanes of one invocation (not a web Worker: plain promises on one thread). */
export class SiteRun {
  readonly #ctx: RunContext;
  readonly #options: RunOptions;
  readonly #started: number;
  readonly #queue: Job[] = [];
  readonly #inFlight = new Map<string, { job: Job; ctx: JobContext; claimedAt: number }>();
  /** This run's shells, one per server (a server that could not connect is not tried again). */
  readonly #shells = new Map<string, RemoteShell>();
  /** Servers (health targets) that failed in this run: none of their jobs is started any more. */
  readonly #failedServers = new Map<string, string>();
  #initial = 0;
  #stopped: string | undefined;
  /** A lane stopped at the end of the time budget, so due work may be left. */
  #budgetSpent = false;

  constructor(ctx: RunContext, options: RunOptions) {
    this.#ctx = ctx;
    this.#options = options;
    this.#started = ctx.now().getTime();
  }

  /** The job's context: the run's, with its server's shell, user, health target and addresses. */
  #jobContext(job: Job): JobContext | undefined {
    const { servers, matomoTarget, resolver, ...shared } = this.#ctx;
    const server = servers.serverOf(job);
    if (!server) {
      if (job.kind !== "analytics") return undefined;
      return {
        ...shared,
        shell: noShell,
        sshUser: "root",
        targets: { ssh: { target: "ssh:none", credential: "" }, matomo: matomoTarget },
      };
    }
    const key = server.health.target;
    let shell = this.#shells.get(key);
    if (!shell) {
      shell = servers.shell(server);
      this.#shells.set(key, shell);
    }
    return {
      ...shared,
      shell,
      sshUser: server.ssh.user,
      targets: { ssh: server.health, matomo: matomoTarget },
      ...(resolver && server.addresses
        ? { dns: { resolver, serverAddresses: server.addresses } }
        : {}),
    };
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
      await Promise.all([...this.#shells.values()].map((shell) => shell.close().catch(() => {})));
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
      const ctx = this.#jobContext(job);
      const failed = ctx && job.kind !== "analytics"
        ? this.#failedServers.get(ctx.targets.ssh.target)
        : undefined;
      if (!ctx || failed !== undefined) {
        // Its server failed in this run (the pause may not have reached the database), or it has
        // none: given back unchanged, not attempted.
        await this.#handBack(
          [job],
          failed ?? "the site has no server (no listed server, no SSH_HOST)",
        );
        // Claiming again could hand the same site straight back: this lane only takes what waits.
        if (this.#queue.length === 0) return;
        continue;
      }
      const result = await this.#runJob(job, ctx);
      results.push(result);
      if (result.error && isServerFailure(result.error.code)) {
        await this.#serverFailed(ctx.targets.ssh.target, result.error.code);
      }
    }
  }

  async #runJob(job: Job, ctx: JobContext): Promise<SiteResult> {
    const claimedAt = ctx.now().getTime();
    this.#inFlight.set(job.claim_token, { job, ctx, claimedAt });
    try {
      return job.kind === "analytics"
        ? await completeAnalytics(job, ctx, claimedAt)
        : job.kind === "remove"
        ? await removeSite(job, ctx, claimedAt)
        : await provisionSite(job, ctx, claimedAt);
    } finally {
      this.#inFlight.delete(job.claim_token);
    }
  }

  /** A server failed: start nothing more on it in this run, give back what waits for it. */
  async #serverFailed(target: string, code: string): Promise<void> {
    if (this.#failedServers.has(target)) return;
    const reason = `the run stopped on ${target}: ${code}`;
    this.#failedServers.set(target, reason);
    const mine = this.#queue.filter((job) =>
      job.kind !== "analytics" && this.#ctx.servers.serverOf(job)?.health.target === target
    );
    if (mine.length === 0) return;
    this.#queue.splice(0, this.#queue.length, ...this.#queue.filter((job) => !mine.includes(job)));
    await this.#handBack(mine, reason);
  }

  async #handBack(jobs: Job[], reason: string): Promise<void> {
    try {
      await this.#ctx.store.release(jobs.map((job) => job.claim_token), reason);
    } catch (error) {
      // Their leases end on their own; the sweeper hands them out again then.
      this.#ctx.log("error", "release_failed", {
        code: "DATABASE_ERROR",
        msg: this.#ctx.redact((error as Error).message),
      });
    }
  }

  /** Takes no more work and gives back, unchanged, the claims not started yet. */
  async #stop(reason: string): Promise<void> {
    if (this.#stopped !== undefined) return;
    this.#stopped = reason;
    const unstarted = this.#queue.splice(0);
    if (unstarted.length === 0) return;
    await this.#handBack(unstarted, reason);
  }

  /** The runtime is about to stop this instance: take no more work, give back what runs now and
   * what waits, so the sites are retried at once instead of when their leases run out. */
  async interrupt(reason: string): Promise<void> {
    const running = [...this.#inFlight.values()];
    this.#ctx.log("warn", "interrupted", { msg: reason, in_flight: running.length });
    await Promise.allSettled([
      this.#stop(`the edge runtime is shutting down (${reason})`),
      ...running.map(({ job, ctx, claimedAt }) =>
        job.kind === "remove"
          ? releaseInterruptedRemoval(job, ctx, claimedAt, reason)
          : releaseInterrupted(job, ctx, claimedAt, reason)
      ),
    ]);
  }
}
