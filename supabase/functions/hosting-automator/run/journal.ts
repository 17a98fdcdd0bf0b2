// The step journal of one claimed job: every step is timed, logged as one JSON line and written
// to hosting_events (which also renews the claim's lease). Secrets are masked before anything
// is written or cut.

import { type Step, toHostingError } from "../core/errors.ts";
import type { Redactor } from "../core/redact.ts";
import type { HostingStore, Job } from "../adapters/store.ts";
import type { Logger } from "../lib/log.ts";

export type Outcome = "ok" | "warning" | "error" | "skipped";

/** What a step reports when it did not throw. */
export interface StepOutcome<T> {
  value: T;
  outcome: Exclude<Outcome, "error">;
  code: string;
  message?: string;
}

export interface Journal {
  /** Writes one event and its log line. A failed write is logged, never thrown. */
  record(step: Step, outcome: Outcome, code: string, message?: string, ms?: number): Promise<void>;
  /** Runs a step: its outcome (or the error it throws, rethrown) is recorded with its duration. */
  timed<T>(step: Step, work: () => Promise<StepOutcome<T>>): Promise<T>;
}

export function createJournal(
  deps: { store: HostingStore; log: Logger; redact: Redactor },
  job: Job,
): Journal {
  const record: Journal["record"] = async (step, outcome, code, message, ms = 0) => {
    const clean = message === undefined ? undefined : deps.redact(message);
    deps.log(outcome === "error" ? "error" : outcome === "warning" ? "warn" : "info", "step", {
      site_id: job.site_id,
      domain: job.domain,
      attempt: job.attempt,
      step,
      outcome,
      code,
      duration_ms: Math.round(ms),
      msg: clean,
    });
    try {
      await deps.store.recordEvent({
        siteId: job.site_id,
        attempt: job.attempt,
        step,
        outcome,
        code,
        message: clean,
        durationMs: ms,
        claimToken: job.claim_token,
        kind: job.kind,
      });
    } catch (error) {
      // The log line above still carries the step; the row's final state is written separately.
      deps.log("error", "event_not_recorded", {
        site_id: job.site_id,
        step,
        code: "DATABASE_ERROR",
        msg: deps.redact((error as Error).message),
      });
    }
  };

  return {
    record,
    async timed(step, work) {
      const started = performance.now();
      try {
        const done = await work();
        await record(step, done.outcome, done.code, done.message, performance.now() - started);
        return done.value;
      } catch (thrown) {
        const error = toHostingError(thrown, step);
        await record(step, "error", error.code, error.message, performance.now() - started);
        throw error;
      }
    },
  };
}
