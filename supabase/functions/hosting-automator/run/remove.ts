// One claimed removal: `clpctl site:delete` (a site already gone is fine), then Matomo's deleteSite
// for the row's own idsite only when the removal asked for it, and the row ends 'removed'. Failures
// follow provisioning's rules (run/provision.ts whatNext): server-level ones pause the server with
// the attempt given back, others retry with backoff, then 'failed' with the reason.

import { classify, deleteSite } from "../core/cloudpanel.ts";
import { validateDomain } from "../core/domain.ts";
import { HostingError, type Issue, toHostingError } from "../core/errors.ts";
import type { Job, RemovalFinish } from "../adapters/store.ts";
import { createJournal, type Journal } from "./journal.ts";
import {
  exec,
  type JobContext,
  pauseMatomo,
  result,
  type SiteResult,
  whatNext,
} from "./provision.ts";

async function deleteFromServer(ctx: JobContext, journal: Journal, job: Job): Promise<void> {
  await journal.timed("site", async () => {
    const domain = validateDomain(job.domain);
    if (!domain.ok) throw domain.error;
    const outcome = classify(
      "site:delete",
      await exec(ctx, deleteSite(job.domain, ctx.sshUser), ctx.timeouts.siteMs),
    );
    if (outcome.kind === "failed") throw outcome.error;
    if (outcome.kind === "not_found") {
      return {
        value: undefined,
        outcome: "skipped",
        code: "SITE_ALREADY_GONE",
        message: `CloudPanel has no site ${job.domain}`,
      };
    }
    return {
      value: undefined,
      outcome: "ok",
      code: "SITE_DELETED",
      message: `site:delete removed ${job.domain}${job.doc_root ? ` (${job.doc_root})` : ""}`,
    };
  });
}

/** True when the row's Matomo site is gone (deleted now, or unknown to Matomo). */
async function deleteFromAnalytics(ctx: JobContext, journal: Journal, job: Job): Promise<boolean> {
  const idSite = job.matomo_site_id;
  if (idSite === null) {
    await journal.record("analytics", "skipped", "NO_MATOMO_SITE", "the row has no Matomo id");
    return false;
  }
  if (!job.delete_analytics) {
    await journal.record(
      "analytics",
      "skipped",
      "MATOMO_KEPT",
      `idsite ${idSite} kept with its history (delete_analytics was not asked)`,
    );
    return false;
  }
  return await journal.timed("analytics", async () => {
    const paused = ctx.analytics.pausedUntil();
    if (paused !== null) {
      throw new HostingError(
        "MATOMO_AUTH",
        `Matomo is not called until ${paused.toISOString()} (it refused the token)`,
        { step: "analytics" },
      );
    }
    let answer: "deleted" | "not_found";
    try {
      answer = await ctx.analytics.deleteSite(idSite);
    } catch (thrown) {
      const error = toHostingError(thrown, "analytics");
      if (error.code === "MATOMO_AUTH" || error.code === "MATOMO_BLOCKED") {
        await pauseMatomo(ctx, error);
      }
      throw error;
    }
    return answer === "deleted"
      ? { value: true, outcome: "ok", code: "MATOMO_DELETED", message: `idsite ${idSite}` }
      : {
        value: true,
        outcome: "skipped",
        code: "MATOMO_ALREADY_GONE",
        message: `Matomo has no idsite ${idSite}`,
      };
  });
}

async function finishRemoval(
  ctx: JobContext,
  job: Job,
  started: number,
  fields: Omit<RemovalFinish, "siteId" | "claimToken" | "durationMs">,
): Promise<boolean> {
  const durationMs = ctx.now().getTime() - started;
  const { applied } = await ctx.store.finishRemoval({
    siteId: job.site_id,
    claimToken: job.claim_token,
    durationMs,
    ...fields,
  });
  ctx.log(applied ? "info" : "warn", "finish", {
    site_id: job.site_id,
    domain: job.domain,
    attempt: job.attempt,
    step: "finish",
    outcome: applied ? fields.status : "superseded",
    code: fields.eventCode ?? fields.errorCode ?? "REMOVED",
    duration_ms: Math.round(durationMs),
  });
  return applied;
}

async function failRemoval(
  ctx: JobContext,
  job: Job,
  claimedAt: number,
  error: HostingError,
  warnings: Issue[],
): Promise<SiteResult> {
  const message = ctx.redact(error.message);
  const { next, notTheSite } = await whatNext(ctx, job, error);
  let status: SiteResult["status"] = next.status === "pending" ? "removing" : "failed";
  try {
    const applied = await finishRemoval(ctx, job, claimedAt, {
      status: next.status === "pending" ? "removing" : "failed",
      errorCode: error.code,
      errorMessage: message,
      nextAttemptAt: next.status === "pending" ? next.nextAttemptAt : undefined,
      refundAttempt: notTheSite,
    });
    if (!applied) status = "superseded";
  } catch (finishError) {
    // The row keeps its lease; when it expires the sweeper hands the removal out again.
    warnings.push({ code: "DATABASE_ERROR", message: ctx.redact((finishError as Error).message) });
  }
  return result(job, claimedAt, ctx, {
    status,
    warnings,
    error: { code: error.code, message },
    next_attempt_at: next.status === "pending" ? next.nextAttemptAt.toISOString() : null,
  });
}

/** Removes one claimed site. Never throws for the site's own failures. */
export async function removeSite(
  job: Job,
  ctx: JobContext,
  claimedAt: number,
): Promise<SiteResult> {
  const journal = createJournal(ctx, job);
  const warnings: Issue[] = [];
  let serverDone = false;
  try {
    await deleteFromServer(ctx, journal, job);
    serverDone = true;
    const matomoDeleted = await deleteFromAnalytics(ctx, journal, job);
    const applied = await finishRemoval(ctx, job, claimedAt, {
      status: "removed",
      matomoDeleted,
      eventCode: "REMOVED",
    });
    return result(job, claimedAt, ctx, {
      status: applied ? "removed" : "superseded",
      doc_root: applied ? null : job.doc_root,
      matomo_site_id: matomoDeleted ? null : job.matomo_site_id,
      warnings,
    });
  } catch (thrown) {
    const error = toHostingError(thrown);
    if (!serverDone) {
      await journal.record("analytics", "skipped", error.code, "not run: an earlier step failed");
    }
    return await failRemoval(ctx, job, claimedAt, error, warnings);
  }
}

/** After the runtime announced its end: the removal goes back, due at once, attempt not counted. */
export async function releaseInterruptedRemoval(
  job: Job,
  ctx: JobContext,
  claimedAt: number,
  reason: string,
): Promise<void> {
  const error = new HostingError("INTERRUPTED", `the edge runtime is shutting down (${reason})`);
  await failRemoval(ctx, job, claimedAt, error, []);
}
