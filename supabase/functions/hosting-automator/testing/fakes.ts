// Small hand-written fakes for the run and handler tests: a scripted shell, an in-memory store,
// a scripted Matomo and a clock that moves only when told. Not imported by index.ts.

import type { ExecResult, RemoteCommand } from "../core/cloudpanel.ts";
import { HostingError } from "../core/errors.ts";
import { createRedactor } from "../core/redact.ts";
import type { Analytics } from "../adapters/matomo.ts";
import type { RemoteShell } from "../adapters/ssh.ts";
import type { Finish, HostingStore, Job, SiteRow, StepEvent } from "../adapters/store.ts";
import type { Logger } from "../lib/log.ts";
import type { JobContext } from "../run/provision.ts";

export const ok = (stdout = ""): ExecResult => ({ code: 0, signal: null, stdout, stderr: "" });
export const exit = (code: number, stdout: string, stderr = ""): ExecResult => ({
  code,
  signal: null,
  stdout,
  stderr,
});

type Answer = ExecResult | HostingError | ((command: RemoteCommand) => ExecResult | HostingError);

/** Answers each verb from a script; records every command line it was given. */
export class FakeShell implements RemoteShell {
  readonly lines: string[] = [];
  readonly verbs: string[] = [];
  closed = 0;
  constructor(public script: Partial<Record<RemoteCommand["verb"], Answer | Answer[]>> = {}) {}

  run(command: RemoteCommand): Promise<ExecResult> {
    this.lines.push(command.line);
    this.verbs.push(command.verb);
    let answer = this.script[command.verb];
    if (Array.isArray(answer)) answer = answer.length > 1 ? answer.shift() : answer[0];
    if (answer === undefined) throw new Error(`FakeShell: no answer scripted for ${command.verb}`);
    const value = typeof answer === "function" ? answer(command) : answer;
    return value instanceof HostingError ? Promise.reject(value) : Promise.resolve(value);
  }

  close(): Promise<void> {
    this.closed++;
    return Promise.resolve();
  }
}

/** The CloudPanel answers of a fresh server for `domain`
 * (docs/cloudpanel.md#output-and-exit-codes). */
export function freshServer(): FakeShell {
  return new FakeShell({
    "site:add:static": (c) =>
      ok(`Site ${c.line.match(/--domainName='([^']+)'/)?.[1]} has been added.\n`),
    "doc-root-check": ok(),
    "lets-encrypt:install:certificate": ok("Certificate installation was successful.\n"),
  });
}

export class FakeAnalytics implements Analytics {
  readonly calls: string[] = [];
  constructor(
    public sites = new Map<string, number[]>(),
    public failWith?: HostingError,
    public nextId = 41,
  ) {}
  findSiteIds(domain: string): Promise<number[]> {
    this.calls.push(`find ${domain}`);
    if (this.failWith) return Promise.reject(this.failWith);
    return Promise.resolve(this.sites.get(domain) ?? []);
  }
  addSite(domain: string): Promise<number> {
    this.calls.push(`add ${domain}`);
    if (this.failWith) return Promise.reject(this.failWith);
    const id = ++this.nextId;
    this.sites.set(domain, [...(this.sites.get(domain) ?? []), id]);
    return Promise.resolve(id);
  }
}

export function job(fields: Partial<Job> = {}): Job {
  return {
    kind: "provision",
    site_id: "0b7e5a7c-5d2a-4a53-9d0e-8f0f6d0c1a11",
    domain: "example.com",
    attempt: 1,
    claim_token: crypto.randomUUID(),
    lease_until: "2026-11-26T12:10:00Z",
    site_user: null,
    doc_root: null,
    matomo_site_id: null,
    ...fields,
  };
}

export function siteRow(fields: Partial<SiteRow> = {}): SiteRow {
  return {
    site_id: "0b7e5a7c-5d2a-4a53-9d0e-8f0f6d0c1a11",
    domain: "example.com",
    status_dns: "active",
    status_hosting: "pending",
    attempt: 0,
    site_user: null,
    doc_root: null,
    matomo_site_id: null,
    error: null,
    lease_until: null,
    next_attempt_at: null,
    updated_at: null,
    due: "provision",
    ...fields,
  };
}

/** Hands out queued claim answers in order; records events and finishes. */
export class FakeStore implements HostingStore {
  readonly events: StepEvent[] = [];
  readonly finishes: Finish[] = [];
  readonly claims: Array<{ siteId?: string; limit: number }> = [];
  stale = false;
  constructor(
    public claimAnswers: Array<{ claimed: Job[]; site: SiteRow | null }> = [],
    public peekAnswer: { due: SiteRow[]; site: SiteRow | null } = { due: [], site: null },
  ) {}
  claim(siteId: string | undefined, limit: number) {
    this.claims.push({ siteId, limit });
    return Promise.resolve(this.claimAnswers.shift() ?? { claimed: [], site: null });
  }
  recordEvent(event: StepEvent) {
    this.events.push(event);
    return Promise.resolve();
  }
  finish(finish: Finish) {
    this.finishes.push(finish);
    return Promise.resolve({ applied: !this.stale });
  }
  peek() {
    return Promise.resolve(this.peekAnswer);
  }
  /** "step:outcome:code" of every event, in order. */
  get trail(): string[] {
    return this.events.map((e) => `${e.step}:${e.outcome}:${e.code}`);
  }
}

export class FakeClock {
  constructor(public ms = Date.parse("2026-11-26T12:00:00Z")) {}
  now = () => new Date(this.ms);
  advance(ms: number) {
    this.ms += ms;
  }
}

export function memoryLog(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  return {
    lines,
    log: (level, event, fields = {}) => lines.push({ level, event, ...fields }),
  };
}

export function context(parts: Partial<JobContext> = {}): JobContext {
  return {
    shell: freshServer(),
    analytics: new FakeAnalytics(),
    store: new FakeStore(),
    log: memoryLog().log,
    redact: createRedactor(),
    now: new FakeClock().now,
    newPassword: () => "Pa55word-for-tests.1234",
    sshUser: "root",
    retry: { maxAttempts: 5, baseDelayMs: 60_000, maxDelayMs: 3_600_000 },
    analyticsRetryMs: 600_000,
    timeouts: { siteMs: 90_000, certificateMs: 150_000, checkMs: 20_000 },
    ...parts,
  };
}
