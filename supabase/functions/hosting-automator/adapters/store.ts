// The database, through supabase-js RPCs to the migrations' functions (hosting_claim,
// hosting_record_event, hosting_finish, hosting_release, hosting_report_health, hosting_peek, and
// for removals hosting_request_removal and hosting_finish_removal).
// Answers are checked before use.

import type { SupabaseClient } from "@supabase/supabase-js";
import { z } from "zod";
import { HostingError } from "../core/errors.ts";
import type { HealthTarget } from "../core/servers.ts";

const siteRow = z.object({
  site_id: z.string(),
  domain: z.string(),
  status_dns: z.string().nullable(),
  status_hosting: z.string(),
  attempt: z.number(),
  site_user: z.string().nullable(),
  doc_root: z.string().nullable(),
  matomo_site_id: z.number().nullable(),
  error: z.string().nullable(),
  lease_until: z.string().nullable(),
  next_attempt_at: z.string().nullable(),
  updated_at: z.string().nullable(),
  due: z.enum(["provision", "analytics", "remove"]).nullable(),
  skip_reason: z.string().nullable().optional(),
  delete_analytics: z.boolean().optional(),
  step: z.string().nullable().optional(),
  step_started_at: z.string().nullable().optional(),
  /** The listed server the site is placed on (null: the implicit server of SSH_HOST). */
  server: z.string().nullable().optional(),
  server_user: z.string().nullable().optional(),
  server_addresses: z.array(z.string()).nullable().optional(),
});
export type SiteRow = z.infer<typeof siteRow>;

const job = z.object({
  kind: z.enum(["provision", "analytics", "remove"]),
  site_id: z.string(),
  domain: z.string(),
  attempt: z.number(),
  claim_token: z.string(),
  lease_until: z.string(),
  site_user: z.string().nullable(),
  doc_root: z.string().nullable(),
  matomo_site_id: z.number().nullable(),
  analytics_failures: z.number().default(0),
  /** A removal: also delete the row's own Matomo site. */
  delete_analytics: z.boolean().optional(),
  /** The site's listed server (public.hosting_servers); null: the implicit server of SSH_HOST. */
  server: z.object({
    name: z.string(),
    host: z.string(),
    port: z.number().int(),
    user: z.string(),
    host_key_fingerprint: z.string(),
    addresses: z.array(z.string()),
  }).nullable().default(null),
});
export type Job = z.infer<typeof job>;

const claimAnswer = z.object({
  claimed: z.array(job),
  site: siteRow.nullable(),
  paused: z.object({
    ssh: z.string().nullable(),
    matomo: z.string().nullable(),
    /** Listed servers paused now, by name. */
    servers: z.record(z.string(), z.string()).default({}),
  }).default({ ssh: null, matomo: null, servers: {} }),
});
export type ClaimAnswer = z.infer<typeof claimAnswer>;
const healthAnswer = z.object({ paused_until: z.string().nullable(), failures: z.number() });
const peekAnswer = z.object({ due: z.array(siteRow), site: siteRow.nullable() });
const finishAnswer = z.object({ applied: z.boolean() });
const eventAnswer = z.number();
const removalAnswer = z.object({
  outcome: z.enum(["requested", "in_progress", "removing", "removed", "not_found"]),
  site: siteRow.nullable(),
});
export type RemovalAnswer = z.infer<typeof removalAnswer>;

export interface StepEvent {
  siteId: string;
  attempt: number;
  step: string;
  outcome: "ok" | "warning" | "error" | "skipped";
  code?: string;
  message?: string;
  durationMs?: number;
  /** The claim's token: recording the event then renews its lease (of that kind of claim). */
  claimToken?: string;
  kind?: Job["kind"];
}

export interface Finish {
  siteId: string;
  claimToken: string;
  status: "active" | "pending" | "failed";
  siteUser?: string;
  docRoot?: string;
  matomoSiteId?: number;
  errorCode?: string;
  errorMessage?: string;
  /** "never": an active site whose analytics retries are used up. */
  nextAttemptAt?: Date | "never";
  durationMs: number;
  eventCode?: string;
  /** The failure was not the site's: the attempt is given back. */
  refundAttempt?: boolean;
  /** This finish records a failed Matomo registration. */
  analyticsFailed?: boolean;
}

export interface RemovalFinish {
  siteId: string;
  claimToken: string;
  /** removed, or removing again (a retry at nextAttemptAt), or failed. */
  status: "removed" | "removing" | "failed";
  /** The row's Matomo site was deleted (or was already gone): its id is cleared. */
  matomoDeleted?: boolean;
  errorCode?: string;
  errorMessage?: string;
  nextAttemptAt?: Date;
  durationMs: number;
  refundAttempt?: boolean;
  eventCode?: string;
}

/** What this instance claims with: its implicit server (SSH_HOST) if it has one, digests of the
 * SSH keys it uses (core/servers.ts keyDigests), and its Matomo — digests, never secrets. */
export interface Targets {
  ssh?: HealthTarget;
  sshKeys: Record<string, string>;
  matomo: HealthTarget;
}

export interface HealthReport {
  target: string;
  credential: string;
  ok: boolean;
  code?: string;
  message?: string;
  baseSeconds: number;
  maxSeconds: number;
  minSeconds?: number;
}

export interface ClaimLimits {
  maxConcurrent: number;
  leaseSeconds: number;
  maxAttempts: number;
  analyticsLeaseSeconds: number;
}

export interface HostingStore {
  claim(siteId: string | undefined, limit: number): Promise<ClaimAnswer>;
  recordEvent(event: StepEvent): Promise<void>;
  finish(finish: Finish): Promise<{ applied: boolean }>;
  /** Gives back claims that were never started; returns how many were given back. */
  release(claimTokens: string[], reason: string): Promise<number>;
  reportHealth(report: HealthReport): Promise<{ pausedUntil: Date | null }>;
  peek(siteId: string | undefined, limit: number): Promise<z.infer<typeof peekAnswer>>;
  /** Moves the site to 'removing' unless a worker holds it or it is removed (changes nothing). */
  requestRemoval(siteId: string, deleteAnalytics: boolean): Promise<RemovalAnswer>;
  finishRemoval(finish: RemovalFinish): Promise<{ applied: boolean }>;
}

export function createSupabaseStore(
  client: SupabaseClient,
  limits: ClaimLimits,
  timeoutMs: number,
  targets: Targets,
): HostingStore {
  async function call<T>(fn: string, args: Record<string, unknown>, shape: z.ZodType<T>) {
    let answer;
    try {
      answer = await client.rpc(fn, args).abortSignal(AbortSignal.timeout(timeoutMs));
    } catch (error) {
      throw new HostingError("DATABASE_ERROR", `${fn}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    if (answer.error) {
      const { code, message } = answer.error;
      throw new HostingError("DATABASE_ERROR", `${fn}: ${code ? `${code} ` : ""}${message}`, {
        cause: answer.error,
      });
    }
    const parsed = shape.safeParse(answer.data);
    if (!parsed.success) {
      throw new HostingError("DATABASE_ERROR", `${fn}: unexpected answer shape`, {
        cause: parsed.error,
      });
    }
    return parsed.data;
  }

  return {
    claim: (siteId, limit) =>
      call("hosting_claim", {
        p_site_id: siteId ?? null,
        p_limit: limit,
        p_max_concurrent: limits.maxConcurrent,
        p_lease_seconds: limits.leaseSeconds,
        p_max_attempts: limits.maxAttempts,
        p_analytics_lease_seconds: limits.analyticsLeaseSeconds,
        p_ssh_target: targets.ssh?.target ?? null,
        p_ssh_credential: targets.ssh?.credential ?? null,
        p_matomo_target: targets.matomo.target,
        p_matomo_credential: targets.matomo.credential,
        p_ssh_keys: targets.sshKeys,
        p_implicit_server: targets.ssh !== undefined,
      }, claimAnswer),
    recordEvent: async (event) => {
      await call("hosting_record_event", {
        p_site_id: event.siteId,
        p_attempt: event.attempt,
        p_step: event.step,
        p_outcome: event.outcome,
        p_code: event.code ?? null,
        p_message: event.message ?? null,
        p_duration_ms: event.durationMs === undefined ? null : Math.round(event.durationMs),
        p_claim_token: event.claimToken ?? null,
        p_lease_seconds: !event.claimToken
          ? null
          : event.kind === "analytics"
          ? limits.analyticsLeaseSeconds
          : limits.leaseSeconds,
      }, eventAnswer);
    },
    finish: (finish) =>
      call("hosting_finish", {
        p_site_id: finish.siteId,
        p_claim_token: finish.claimToken,
        p_status: finish.status,
        p_site_user: finish.siteUser ?? null,
        p_doc_root: finish.docRoot ?? null,
        p_matomo_site_id: finish.matomoSiteId ?? null,
        p_error_code: finish.errorCode ?? null,
        p_error_message: finish.errorMessage ?? null,
        p_next_attempt_at: finish.nextAttemptAt === "never"
          ? "infinity"
          : finish.nextAttemptAt?.toISOString() ?? null,
        p_duration_ms: Math.round(finish.durationMs),
        p_event_code: finish.eventCode ?? null,
        p_refund_attempt: finish.refundAttempt ?? false,
        p_analytics_failed: finish.analyticsFailed ?? false,
      }, finishAnswer),
    release: (claimTokens, reason) =>
      call("hosting_release", { p_claim_tokens: claimTokens, p_reason: reason }, z.number()),
    reportHealth: async (report) => {
      const answer = await call("hosting_report_health", {
        p_target: report.target,
        p_credential: report.credential,
        p_ok: report.ok,
        p_code: report.code ?? null,
        p_message: report.message ?? null,
        p_base_seconds: report.baseSeconds,
        p_max_seconds: report.maxSeconds,
        p_min_seconds: report.minSeconds ?? 0,
      }, healthAnswer);
      return { pausedUntil: answer.paused_until ? new Date(answer.paused_until) : null };
    },
    peek: (siteId, limit) =>
      call("hosting_peek", { p_site_id: siteId ?? null, p_limit: limit }, peekAnswer),
    requestRemoval: (siteId, deleteAnalytics) =>
      call("hosting_request_removal", {
        p_site_id: siteId,
        p_delete_analytics: deleteAnalytics,
        p_dispatch: false, // the caller claims it at once
      }, removalAnswer),
    finishRemoval: (finish) =>
      call("hosting_finish_removal", {
        p_site_id: finish.siteId,
        p_claim_token: finish.claimToken,
        p_status: finish.status,
        p_matomo_deleted: finish.matomoDeleted ?? false,
        p_error_code: finish.errorCode ?? null,
        p_error_message: finish.errorMessage ?? null,
        p_next_attempt_at: finish.nextAttemptAt?.toISOString() ?? null,
        p_duration_ms: Math.round(finish.durationMs),
        p_refund_attempt: finish.refundAttempt ?? false,
        p_event_code: finish.eventCode ?? null,
      }, finishAnswer),
  };
}
