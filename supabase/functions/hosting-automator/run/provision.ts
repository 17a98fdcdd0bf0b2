// One claimed job, step by step: site → certificate → analytics → finish (or analytics alone for
// an active site without a Matomo id). Each step is timed, logged and written to hosting_events;
// every failure becomes data in the site's result and the row's next state.

import {
  addStaticSite,
  classify,
  docRootCheck,
  docRootFor,
  installCertificate,
  inventoryLookup,
  parseInventory,
} from "../core/cloudpanel.ts";
import { afterFailure, analyticsRetryAt, type RetryPolicy } from "../core/decisions.ts";
import { validateDomain } from "../core/domain.ts";
import { HostingError, type Step, toHostingError } from "../core/errors.ts";
import type { Redactor } from "../core/redact.ts";
import { deriveSiteUser } from "../core/site_user.ts";
import type { Analytics } from "../adapters/matomo.ts";
import type { RemoteShell } from "../adapters/ssh.ts";
import type { HostingStore, Job } from "../adapters/store.ts";
import type { Logger } from "../lib/log.ts";

export interface Issue {
  code: string;
  message: string;
}

/** What the caller learns about one site (docs/contract.md#answers). */
export interface SiteResult {
  site_id: string;
  domain: string;
  attempt: number;
  status: "active" | "pending" | "failed" | "superseded";
  doc_root: string | null;
  matomo_site_id: number | null;
  warnings: Issue[];
  error: Issue | null;
  next_attempt_at: string | null;
  duration_ms: number;
}

export interface JobContext {
  shell: RemoteShell;
  analytics: Analytics;
  store: HostingStore;
  log: Logger;
  redact: Redactor;
  now: () => Date;
  newPassword: () => string;
  sshUser: string;
  retry: RetryPolicy;
  analyticsRetryMs: number;
  timeouts: { siteMs: number; certificateMs: number; checkMs: number };
}

type StepOutcome<T> = {
  value: T;
  outcome: "ok" | "warning" | "skipped";
  code: string;
  message?: string;
};

/** Times `work`, then logs it and records its event; a thrown error is recorded and rethrown. */
async function step<T>(
  ctx: JobContext,
  job: Job,
  name: Step,
  work: () => Promise<StepOutcome<T>>,
): Promise<T> {
  const started = performance.now();
  try {
    const done = await work();
    await note(ctx, job, name, done.outcome, done.code, done.message, performance.now() - started);
    return done.value;
  } catch (thrown) {
    const error = toHostingError(thrown, name);
    await note(ctx, job, name, "error", error.code, error.message, performance.now() - started);
    throw error;
  }
}

async function note(
  ctx: JobContext,
  job: Job,
  name: Step,
  outcome: "ok" | "warning" | "error" | "skipped",
  code: string,
  message: string | undefined,
  durationMs: number,
): Promise<void> {
  const clean = message === undefined ? undefined : ctx.redact(message);
  ctx.log(outcome === "error" ? "error" : outcome === "warning" ? "warn" : "info", "step", {
    site_id: job.site_id,
    domain: job.domain,
    attempt: job.attempt,
    step: name,
    outcome,
    code,
    duration_ms: Math.round(durationMs),
    msg: clean,
  });
  try {
    await ctx.store.recordEvent({
      siteId: job.site_id,
      attempt: job.attempt,
      step: name,
      outcome,
      code,
      message: clean,
      durationMs,
    });
  } catch (error) {
    // The log line above still carries the step; the row's final state is written separately.
    ctx.log("error", "event_not_recorded", {
      site_id: job.site_id,
      step: name,
      code: "DATABASE_ERROR",
      msg: (error as Error).message,
    });
  }
}

interface Placement {
  siteUser: string;
  docRoot: string;
}

/** Creates the site, or adopts the one CloudPanel already has for this exact domain. */
async function placeSite(ctx: JobContext, job: Job, warnings: Issue[]): Promise<Placement> {
  return await step(ctx, job, "site", async () => {
    const domain = validateDomain(job.domain);
    if (!domain.ok) throw domain.error;

    let siteUser = deriveSiteUser(job.domain);
    let docRoot = docRootFor(siteUser, job.domain);
    const password = ctx.newPassword();
    ctx.redact.add(password);
    const added = classify(
      "site:add:static",
      await ctx.shell.run(
        addStaticSite(job.domain, siteUser, password, ctx.sshUser),
        ctx.timeouts.siteMs,
      ),
    );
    let adoption: Issue | undefined;
    if (added.kind === "failed") throw added.error;
    if (added.kind === "exists") {
      const rows = parseInventory(
        await ctx.shell.run(inventoryLookup(job.domain, ctx.sshUser), ctx.timeouts.checkMs),
      );
      if (rows instanceof HostingError) throw rows;
      const own = rows.find((row) => row.domain_name === job.domain);
      if (!own) {
        const holder = rows[0]?.domain_name;
        throw new HostingError(
          "SITE_CONFLICT",
          holder
            ? `CloudPanel refuses ${job.domain} because its site ${holder} covers it (www/apex)`
            : `CloudPanel says ${job.domain} exists but its inventory has no such site`,
          { step: "site" },
        );
      }
      siteUser = own.user;
      docRoot = docRootFor(own.user, own.root_directory);
      adoption = {
        code: "SITE_ADOPTED",
        message: `the CloudPanel site already existed (site user ${siteUser}); adopted`,
      };
    }
    const check = classify(
      "doc-root-check",
      await ctx.shell.run(docRootCheck(docRoot, ctx.sshUser), ctx.timeouts.checkMs),
    );
    if (check.kind === "failed") {
      throw new HostingError(
        "DOC_ROOT_MISSING",
        `the document root ${docRoot} does not exist on the server`,
        { step: "site" },
      );
    }
    if (adoption) {
      warnings.push(adoption);
      return { value: { siteUser, docRoot }, outcome: "warning", ...adoption };
    }
    return {
      value: { siteUser, docRoot },
      outcome: "ok",
      code: "SITE_CREATED",
      message: `created with site user ${siteUser} at ${docRoot}`,
    };
  });
}

async function issueCertificate(ctx: JobContext, job: Job): Promise<void> {
  await step(ctx, job, "certificate", async () => {
    const result = classify(
      "lets-encrypt:install:certificate",
      await ctx.shell.run(installCertificate(job.domain, ctx.sshUser), ctx.timeouts.certificateMs),
    );
    if (result.kind === "failed") throw result.error;
    return { value: undefined, outcome: "ok", code: "CERTIFICATE_INSTALLED" };
  });
}

/** Look up first, create only when absent; a failure is a warning, never the site's failure. */
async function registerAnalytics(
  ctx: JobContext,
  job: Job,
  warnings: Issue[],
): Promise<{ id: number | null; retryAt: Date | null }> {
  if (job.matomo_site_id !== null) {
    await note(
      ctx,
      job,
      "analytics",
      "skipped",
      "ALREADY_REGISTERED",
      `idsite ${job.matomo_site_id}`,
      0,
    );
    return { id: job.matomo_site_id, retryAt: null };
  }
  try {
    return await step(ctx, job, "analytics", async () => {
      const found = await ctx.analytics.findSiteIds(job.domain);
      if (found.length > 0) {
        const [id] = found;
        if (found.length > 1) {
          const duplicates = {
            code: "MATOMO_DUPLICATES",
            message: `Matomo has ${found.length} sites for this URL (${
              found.join(", ")
            }); using ${id}`,
          };
          warnings.push(duplicates);
          return { value: { id, retryAt: null }, outcome: "warning", ...duplicates };
        }
        return {
          value: { id, retryAt: null },
          outcome: "ok",
          code: "MATOMO_FOUND",
          message: `idsite ${id}`,
        };
      }
      const id = await ctx.analytics.addSite(job.domain);
      return {
        value: { id, retryAt: null },
        outcome: "ok",
        code: "MATOMO_CREATED",
        message: `idsite ${id}`,
      };
    });
  } catch (thrown) {
    // step() recorded it as an error event; for the site it is a warning.
    const error = toHostingError(thrown, "analytics");
    warnings.push({ code: error.code, message: ctx.redact(error.message) });
    return { id: null, retryAt: analyticsRetryAt(error, ctx.analyticsRetryMs, ctx.now()) };
  }
}

function result(
  job: Job,
  started: number,
  ctx: JobContext,
  fields: Partial<SiteResult> & Pick<SiteResult, "status">,
): SiteResult {
  return {
    site_id: job.site_id,
    domain: job.domain,
    attempt: job.attempt,
    doc_root: job.doc_root,
    matomo_site_id: job.matomo_site_id,
    warnings: [],
    error: null,
    next_attempt_at: null,
    duration_ms: Math.round(ctx.now().getTime() - started),
    ...fields,
  };
}

/** Writes the final state; a claim taken over meanwhile is reported, not overwritten. */
async function finish(
  ctx: JobContext,
  job: Job,
  started: number,
  fields: Omit<Parameters<HostingStore["finish"]>[0], "siteId" | "claimToken" | "durationMs">,
): Promise<boolean> {
  const { applied } = await ctx.store.finish({
    siteId: job.site_id,
    claimToken: job.claim_token,
    durationMs: ctx.now().getTime() - started,
    ...fields,
    errorMessage: fields.errorMessage === undefined ? undefined : ctx.redact(fields.errorMessage),
  });
  ctx.log(applied ? "info" : "warn", "finish", {
    site_id: job.site_id,
    domain: job.domain,
    attempt: job.attempt,
    step: "finish",
    outcome: applied ? fields.status : "superseded",
    code: fields.eventCode ?? fields.errorCode ?? "ACTIVE",
    duration_ms: Math.round(ctx.now().getTime() - started),
  });
  return applied;
}

/** Provisions one claimed site from start to finish. Never throws for the site's own failures. */
export async function provisionSite(
  job: Job,
  ctx: JobContext,
  claimedAt: number,
): Promise<SiteResult> {
  const warnings: Issue[] = [];
  const reached: Step[] = [];
  let placement: Placement | undefined;
  try {
    reached.push("site");
    placement = await placeSite(ctx, job, warnings);
    reached.push("certificate");
    await issueCertificate(ctx, job);
    reached.push("analytics");
    const matomo = await registerAnalytics(ctx, job, warnings);
    const applied = await finish(ctx, job, claimedAt, {
      status: "active",
      siteUser: placement.siteUser,
      docRoot: placement.docRoot,
      matomoSiteId: matomo.id ?? undefined,
      nextAttemptAt: matomo.retryAt ?? undefined,
      eventCode: "ACTIVE",
    });
    return result(job, claimedAt, ctx, {
      status: applied ? "active" : "superseded",
      doc_root: placement.docRoot,
      matomo_site_id: matomo.id,
      warnings,
      next_attempt_at: matomo.retryAt?.toISOString() ?? null,
    });
  } catch (thrown) {
    const error = toHostingError(thrown);
    for (const later of ["certificate", "analytics"] as const) {
      if (!reached.includes(later)) {
        await note(ctx, job, later, "skipped", error.code, "not run: an earlier step failed", 0);
      }
    }
    return await fail(ctx, job, claimedAt, error, warnings, placement);
  }
}

async function fail(
  ctx: JobContext,
  job: Job,
  claimedAt: number,
  error: HostingError,
  warnings: Issue[],
  placement?: Placement,
): Promise<SiteResult> {
  const next = afterFailure(error, job.attempt, ctx.retry, ctx.now());
  const message = ctx.redact(error.message);
  let status: SiteResult["status"] = next.status;
  try {
    // A site that exists on the server keeps its user and document root on the row even while
    // the certificate waits for DNS.
    const applied = await finish(ctx, job, claimedAt, {
      status: next.status,
      siteUser: placement?.siteUser,
      docRoot: placement?.docRoot,
      errorCode: error.code,
      errorMessage: message,
      nextAttemptAt: next.status === "pending" ? next.nextAttemptAt : undefined,
    });
    if (!applied) status = "superseded";
  } catch (finishError) {
    // The row keeps its lease; when it expires the sweeper hands the site out again.
    warnings.push({ code: "DATABASE_ERROR", message: ctx.redact((finishError as Error).message) });
  }
  return result(job, claimedAt, ctx, {
    status,
    doc_root: placement?.docRoot ?? job.doc_root,
    warnings,
    error: { code: error.code, message },
    next_attempt_at: next.status === "pending" ? next.nextAttemptAt.toISOString() : null,
  });
}

/** For an active site without a Matomo id: the analytics step alone. */
export async function completeAnalytics(
  job: Job,
  ctx: JobContext,
  claimedAt: number,
): Promise<SiteResult> {
  const warnings: Issue[] = [];
  const matomo = await registerAnalytics(ctx, job, warnings);
  let status: SiteResult["status"] = "active";
  try {
    const applied = await finish(ctx, job, claimedAt, {
      status: "active",
      matomoSiteId: matomo.id ?? undefined,
      nextAttemptAt: matomo.retryAt ?? undefined,
      eventCode: matomo.id === null ? "ANALYTICS_PENDING" : "ANALYTICS_REGISTERED",
    });
    if (!applied) status = "superseded";
  } catch (error) {
    warnings.push({ code: "DATABASE_ERROR", message: ctx.redact((error as Error).message) });
  }
  return result(job, claimedAt, ctx, {
    status,
    matomo_site_id: matomo.id,
    warnings,
    next_attempt_at: matomo.retryAt?.toISOString() ?? null,
  });
}

/** After the runtime announced its end: hand the site back for a prompt retry. */
export async function releaseInterrupted(
  job: Job,
  ctx: JobContext,
  claimedAt: number,
  reason: string,
): Promise<void> {
  const error = new HostingError("INTERRUPTED", `the edge runtime is shutting down (${reason})`);
  if (job.kind === "analytics") {
    await finish(ctx, job, claimedAt, {
      status: "active",
      nextAttemptAt: analyticsRetryAt(error, ctx.analyticsRetryMs, ctx.now()),
      eventCode: "INTERRUPTED",
    });
    return;
  }
  await fail(ctx, job, claimedAt, error, []);
}
