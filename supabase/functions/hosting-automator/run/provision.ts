// One claimed job: look at the server, then do only what is missing — site, certificate,
// analytics — and write the outcome (or analytics alone for an active site without a Matomo id).
// Every failure becomes data in the site's result and the row's next state.

import {
  classify,
  type ExecResult,
  parseServerState,
  type RemoteCommand,
  type ServerState,
} from "../core/cloudpanel.ts";
import {
  afterFailure,
  type AnalyticsPolicy,
  analyticsRetryAt,
  type RetryPolicy,
} from "../core/decisions.ts";
import { dnsVerdict } from "../core/dns.ts";
import { validateDomain } from "../core/domain.ts";
import { HostingError, type Issue, toHostingError } from "../core/errors.ts";
import { decidePlacement } from "../core/placement.ts";
import { CANDIDATES } from "../core/plan.ts";
import { provisionActions, type ProvisionStep, stepsAfter } from "../core/steps.ts";
import type { Redactor } from "../core/redact.ts";
import { siteUserCandidates } from "../core/site_user.ts";
import { type Analytics, AUTH_PAUSE_MS } from "../adapters/matomo.ts";
import type { Resolver } from "../adapters/dns.ts";
import type { RemoteShell } from "../adapters/ssh.ts";
import type { HealthTarget } from "../core/servers.ts";
import type { Finish, HostingStore, Job } from "../adapters/store.ts";
import type { Logger } from "../lib/log.ts";
import { createJournal, type Journal } from "./journal.ts";

export type { Issue };

/** What the caller learns about one site (docs/contract.md#answers). */
export interface SiteResult {
  site_id: string;
  domain: string;
  attempt: number;
  status: "active" | "pending" | "failed" | "superseded" | "removing" | "removed";
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
  /** The job's server: its shell (above), login user, and health target (targets.ssh). */
  sshUser: string;
  retry: RetryPolicy;
  analyticsRetry: AnalyticsPolicy;
  /** Backoff of a paused server, when the database cannot say (it normally decides). */
  serverRetry: { baseMs: number; maxMs: number };
  targets: { ssh: HealthTarget; matomo: HealthTarget };
  timeouts: { siteMs: number; certificateMs: number; checkMs: number };
  /** The DNS check before a certificate is requested; absent when the job's server has no public
   * addresses (listed: public_ipv4/ipv6; implicit: HOSTING_SERVER_ADDRESSES): the check is off. */
  dns?: { resolver: Resolver; serverAddresses: string[] };
}

interface Placed {
  siteUser: string;
  docRoot: string;
  certificateValidUntil: Date | null;
}

/** Runs a command and masks every known secret in what it printed, before anything reads it. */
export async function exec(ctx: JobContext, command: RemoteCommand, timeoutMs: number) {
  const result: ExecResult = await ctx.shell.run(command, timeoutMs);
  return { ...result, stdout: ctx.redact(result.stdout), stderr: ctx.redact(result.stderr) };
}

async function readServer(ctx: JobContext, job: Job, candidates: string[]): Promise<ServerState> {
  const state = parseServerState(
    await exec(
      ctx,
      provisionActions(job.domain, candidates, ctx.sshUser).ssh.read(),
      ctx.timeouts.checkMs,
    ),
  );
  if (state instanceof HostingError) throw state;
  return state;
}

/** Adopts the domain's existing site, or creates it under the first free candidate user. */
async function placeSite(
  ctx: JobContext,
  journal: Journal,
  job: Job,
  warnings: Issue[],
): Promise<Placed> {
  return await journal.timed("site", async () => {
    const domain = validateDomain(job.domain);
    if (!domain.ok) throw domain.error;
    const candidates = siteUserCandidates(job.domain, CANDIDATES);
    const actions = provisionActions(job.domain, candidates, ctx.sshUser);
    const decide = async () =>
      decidePlacement({
        domain: job.domain,
        recordedUser: job.site_user,
        candidates,
        state: await readServer(ctx, job, candidates),
        now: ctx.now(),
      });

    let placement = await decide();
    if (placement.kind === "create") {
      const { siteUser, docRoot, warnings: orphans } = placement;
      const password = ctx.newPassword();
      ctx.redact.add(password);
      const added = classify(
        "site:add:static",
        await exec(
          ctx,
          actions.ssh.add(siteUser, password),
          ctx.timeouts.siteMs,
        ),
      );
      if (added.kind === "failed") throw added.error;
      if (added.kind === "created") {
        const value = { siteUser, docRoot, certificateValidUntil: null };
        const message = `created with site user ${siteUser} at ${docRoot}`;
        if (orphans.length === 0) return { value, outcome: "ok", code: "SITE_CREATED", message };
        warnings.push(...orphans);
        return {
          value,
          outcome: "warning",
          code: "SITE_USER_ORPHAN",
          message: `${message}; ${orphans.map((o) => o.message).join("; ")}`,
        };
      }
      placement = await decide(); // "already exists": another worker or a person was faster
    }
    if (placement.kind === "conflict") throw placement.error;
    if (placement.kind === "create") {
      throw new HostingError(
        "SITE_CONFLICT",
        `CloudPanel says ${job.domain} exists but its inventory has no such site`,
        { step: "site" },
      );
    }
    // An existing site: its document root must really be there.
    const check = classify(
      "doc-root-check",
      await exec(ctx, actions.ssh.check(placement.docRoot), ctx.timeouts.checkMs),
    );
    if (check.kind === "failed") throw check.error;
    const adopted = {
      code: "SITE_ADOPTED",
      message: `the CloudPanel site already existed (site user ${placement.siteUser}); adopted`,
    };
    warnings.push(adopted);
    const { siteUser, docRoot, certificateValidUntil } = placement;
    return { value: { siteUser, docRoot, certificateValidUntil }, outcome: "warning", ...adopted };
  });
}

/**
 * Before Let's Encrypt is asked: do the names the certificate covers point at this server? Not yet
 * → DNS_NOT_READY (retried with backoff; Let's Encrypt's failed-validation limit is not spent). A
 * resolver that cannot tell → a warning, and Let's Encrypt decides. Returns what was seen.
 */
async function checkDns(
  ctx: JobContext,
  journal: Journal,
  job: Job,
  warnings: Issue[],
): Promise<string | undefined> {
  if (!ctx.dns) return undefined;
  const resolution = await ctx.dns.resolver.resolve(job.domain);
  if (!resolution.ok) {
    const unchecked = {
      code: "DNS_UNCHECKED",
      message: `the resolver could not tell where the domain points (${resolution.reason}); ` +
        `asking Let's Encrypt anyway`,
    };
    warnings.push(unchecked);
    await journal.record("certificate", "warning", unchecked.code, unchecked.message);
    return undefined;
  }
  const verdict = dnsVerdict(resolution.seen, ctx.dns.serverAddresses);
  if (!verdict.ready) {
    throw new HostingError("DNS_NOT_READY", verdict.message, { step: "certificate" });
  }
  return verdict.message;
}

/** Requests the certificate, unless a valid one is served; checks DNS first when configured. */
async function issueCertificate(
  ctx: JobContext,
  journal: Journal,
  job: Job,
  placed: Placed,
  warnings: Issue[],
) {
  if (placed.certificateValidUntil !== null) {
    await journal.record(
      "certificate",
      "skipped",
      "CERTIFICATE_VALID",
      `a Let's Encrypt certificate is served until ${placed.certificateValidUntil.toISOString()}; ` +
        `not requested again (CloudPanel renews it)`,
    );
    return;
  }
  await journal.timed("certificate", async () => {
    const pointing = await checkDns(ctx, journal, job, warnings);
    const result = classify(
      "lets-encrypt:install:certificate",
      await exec(
        ctx,
        provisionActions(job.domain, [], ctx.sshUser).ssh.certificate(),
        ctx.timeouts.certificateMs,
      ),
    );
    if (result.kind === "failed") throw result.error;
    return {
      value: undefined,
      outcome: "ok",
      code: "CERTIFICATE_INSTALLED",
      ...(pointing ? { message: pointing } : {}),
    };
  });
}

interface AnalyticsOutcome {
  id: number | null;
  retryAt: Date | "never" | null;
  failed: boolean;
}

/** Look up first, create only when absent; a failure is a warning, never the site's failure. */
async function registerAnalytics(
  ctx: JobContext,
  journal: Journal,
  job: Job,
  warnings: Issue[],
  /** The look-up, when it was started early (beside the SSH steps). */
  lookup?: Promise<number[]>,
): Promise<AnalyticsOutcome> {
  if (job.matomo_site_id !== null) {
    await journal.record(
      "analytics",
      "skipped",
      "ALREADY_REGISTERED",
      `idsite ${job.matomo_site_id}`,
    );
    return { id: job.matomo_site_id, retryAt: null, failed: false };
  }
  const started = performance.now();
  try {
    // An early look-up is awaited first: its failure (a refused token) is this step's to report.
    const found = await (lookup ?? ctx.analytics.findSiteIds(job.domain));
    let id = found[0];
    let code = "MATOMO_FOUND";
    let outcome: "ok" | "warning" = "ok";
    let message = `idsite ${id}`;
    if (found.length > 1) {
      outcome = "warning";
      code = "MATOMO_DUPLICATES";
      message = `Matomo has ${found.length} sites for this URL (${found.join(", ")}); using ${id}`;
      warnings.push({ code, message });
    } else if (found.length === 0) {
      id = await ctx.analytics.addSite(job.domain);
      code = "MATOMO_CREATED";
      message = `idsite ${id}`;
    }
    await journal.record("analytics", outcome, code, message, performance.now() - started);
    return { id, retryAt: null, failed: false };
  } catch (thrown) {
    const error = toHostingError(thrown, "analytics");
    const message = ctx.redact(error.message);
    warnings.push({ code: error.code, message });
    if (error.code === "MATOMO_PAUSED") {
      // No call was made: not counted as a failure; the registration waits for the pause.
      await journal.record("analytics", "warning", error.code, message);
      const paused = ctx.analytics.pausedUntil() ??
        new Date(ctx.now().getTime() + AUTH_PAUSE_MS);
      return { id: null, retryAt: paused, failed: false };
    }
    await journal.record("analytics", "warning", error.code, message, performance.now() - started);
    let retryAt = analyticsRetryAt(error, job.analytics_failures, ctx.analyticsRetry, ctx.now());
    if (error.code === "MATOMO_AUTH" || error.code === "MATOMO_BLOCKED") {
      const until = await pauseMatomo(ctx, error);
      if (until && retryAt !== "never" && until > retryAt) retryAt = until;
    }
    if (retryAt === "never") {
      await journal.record(
        "analytics",
        "warning",
        "ANALYTICS_GAVE_UP",
        `${ctx.analyticsRetry.maxAttempts} registrations failed; no further retry ` +
          `(select public.hosting_retry('${job.domain}') to try again)`,
      );
    }
    return { id: null, retryAt, failed: true };
  }
}

/**
 * Pauses a target for every instance (and every later run) through the database, which decides
 * the backoff; null when the database cannot be told.
 */
async function pause(
  ctx: JobContext,
  target: { target: string; credential: string },
  error: HostingError,
  schedule: { baseSeconds: number; maxSeconds: number; minSeconds?: number },
): Promise<Date | null> {
  try {
    const { pausedUntil } = await ctx.store.reportHealth({
      ...target,
      ok: false,
      code: error.code,
      message: ctx.redact(error.message),
      ...schedule,
    });
    return pausedUntil;
  } catch {
    return null;
  }
}

/** Matomo refused the token: no call for an hour (its brute-force window), in any instance. */
export async function pauseMatomo(ctx: JobContext, error: HostingError): Promise<Date | null> {
  const hour = AUTH_PAUSE_MS / 1000;
  const until = await pause(ctx, ctx.targets.matomo, error, {
    baseSeconds: hour,
    maxSeconds: hour,
    minSeconds: hour,
  });
  if (until) ctx.analytics.pauseUntil(until);
  return until ?? ctx.analytics.pausedUntil();
}

/** The server failed: pause it with backoff; when the database cannot be told, back off locally. */
async function pauseServer(ctx: JobContext, error: HostingError): Promise<Date> {
  const until = await pause(ctx, ctx.targets.ssh, error, {
    baseSeconds: Math.round(ctx.serverRetry.baseMs / 1000),
    maxSeconds: Math.round(ctx.serverRetry.maxMs / 1000),
  });
  return until ?? new Date(ctx.now().getTime() + ctx.serverRetry.baseMs);
}

export function result(
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

const iso = (at: Date | "never" | null | undefined) =>
  at === "never" ? "infinity" : at?.toISOString() ?? null;

/** Writes the final state; a claim taken over meanwhile is reported, not overwritten. */
async function finish(
  ctx: JobContext,
  job: Job,
  started: number,
  fields: Omit<Finish, "siteId" | "claimToken" | "durationMs">,
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

/**
 * Matomo's look-up is read-only and needs nothing from CloudPanel, so it runs beside the SSH steps
 * (its answer waits for the analytics step); only the creation waits for the site. Not for a site
 * that has its id or an invalid domain (while Matomo is paused the client makes no request).
 */
function earlyLookup(ctx: JobContext, job: Job): Promise<number[]> | undefined {
  if (job.matomo_site_id !== null) return undefined;
  if (!validateDomain(job.domain).ok) return undefined;
  const lookup = ctx.analytics.findSiteIds(job.domain);
  lookup.catch(() => {}); // its failure is read when the analytics step awaits it
  return lookup;
}

/** Provisions one claimed site from start to finish. Never throws for the site's own failures. */
export async function provisionSite(
  job: Job,
  ctx: JobContext,
  claimedAt: number,
): Promise<SiteResult> {
  const journal = createJournal(ctx, job);
  const warnings: Issue[] = [];
  // The step running now: when it fails, the steps after it (core/steps.ts) are recorded skipped.
  let current: ProvisionStep = "site";
  let placed: Placed | undefined;
  const lookup = earlyLookup(ctx, job);
  try {
    placed = await placeSite(ctx, journal, job, warnings);
    current = "certificate";
    await issueCertificate(ctx, journal, job, placed, warnings);
    current = "analytics";
    const matomo = await registerAnalytics(ctx, journal, job, warnings, lookup);
    const applied = await finish(ctx, job, claimedAt, {
      status: "active",
      siteUser: placed.siteUser,
      docRoot: placed.docRoot,
      matomoSiteId: matomo.id ?? undefined,
      nextAttemptAt: matomo.retryAt ?? undefined,
      analyticsFailed: matomo.failed,
      eventCode: "ACTIVE",
    });
    return result(job, claimedAt, ctx, {
      status: applied ? "active" : "superseded",
      doc_root: placed.docRoot,
      matomo_site_id: matomo.id,
      warnings,
      next_attempt_at: iso(matomo.retryAt),
    });
  } catch (thrown) {
    const error = toHostingError(thrown);
    for (const later of stepsAfter(current)) {
      await journal.record(later, "skipped", error.code, "not run: an earlier step failed");
    }
    return await fail(ctx, job, claimedAt, error, warnings, placed);
  }
}

/** After a failed attempt (provisioning or removal): wait and try again, or fail. A failure that is
 * not the site's waits for the server (paused for every instance) or the next instance, with its
 * attempt given back. */
export async function whatNext(ctx: JobContext, job: Job, error: HostingError) {
  const notTheSite = error.serverLevel || error.code === "INTERRUPTED";
  const next = error.serverLevel
    ? { status: "pending" as const, nextAttemptAt: await pauseServer(ctx, error) }
    : error.code === "INTERRUPTED"
    ? { status: "pending" as const, nextAttemptAt: ctx.now() }
    : afterFailure(error, job.attempt, ctx.retry, ctx.now());
  return { next, notTheSite };
}

async function fail(
  ctx: JobContext,
  job: Job,
  claimedAt: number,
  error: HostingError,
  warnings: Issue[],
  placed?: Placed,
): Promise<SiteResult> {
  const message = ctx.redact(error.message);
  const { next, notTheSite } = await whatNext(ctx, job, error);
  let status: SiteResult["status"] = next.status;
  try {
    // A site that exists on the server keeps its user and document root on the row even while
    // the certificate waits for DNS.
    const applied = await finish(ctx, job, claimedAt, {
      status: next.status,
      siteUser: placed?.siteUser,
      docRoot: placed?.docRoot,
      errorCode: error.code,
      errorMessage: message,
      nextAttemptAt: next.status === "pending" ? next.nextAttemptAt : undefined,
      refundAttempt: notTheSite,
    });
    if (!applied) status = "superseded";
  } catch (finishError) {
    // The row keeps its lease; when it expires the sweeper hands the site out again.
    warnings.push({ code: "DATABASE_ERROR", message: ctx.redact((finishError as Error).message) });
  }
  return result(job, claimedAt, ctx, {
    status,
    doc_root: placed?.docRoot ?? job.doc_root,
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
  const matomo = await registerAnalytics(ctx, createJournal(ctx, job), job, warnings);
  let status: SiteResult["status"] = "active";
  try {
    const applied = await finish(ctx, job, claimedAt, {
      status: "active",
      matomoSiteId: matomo.id ?? undefined,
      nextAttemptAt: matomo.retryAt ?? undefined,
      analyticsFailed: matomo.failed,
      eventCode: matomo.id !== null
        ? "ANALYTICS_REGISTERED"
        : matomo.retryAt === "never"
        ? "ANALYTICS_GAVE_UP"
        : "ANALYTICS_PENDING",
    });
    if (!applied) status = "superseded";
  } catch (error) {
    warnings.push({ code: "DATABASE_ERROR", message: ctx.redact((error as Error).message) });
  }
  return result(job, claimedAt, ctx, {
    status,
    matomo_site_id: matomo.id,
    warnings,
    next_attempt_at: iso(matomo.retryAt),
  });
}

/** After the runtime announced its end: hand the site back, due at once, attempt not counted. */
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
      nextAttemptAt: ctx.now(),
      eventCode: "INTERRUPTED",
    });
    return;
  }
  await fail(ctx, job, claimedAt, error, []);
}
