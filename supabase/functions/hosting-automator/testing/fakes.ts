// Small hand-written fakes for the run and handler tests: a scripted shell, an in-memory store,
// a scripted Matomo and a clock that moves only when told. Not imported by index.ts.

import type { ExecResult, RemoteCommand } from "../core/cloudpanel.ts";
import { certificateNames } from "../core/dns.ts";
import { HostingError } from "../core/errors.ts";
import { createRedactor } from "../core/redact.ts";
import type { Resolution, Resolver } from "../adapters/dns.ts";
import type { Analytics } from "../adapters/matomo.ts";
import type { RemoteShell } from "../adapters/ssh.ts";
import type {
  ClaimAnswer,
  Finish,
  HealthReport,
  HostingStore,
  Job,
  RemovalAnswer,
  RemovalFinish,
  SiteRow,
  StepEvent,
} from "../adapters/store.ts";
import type { Logger } from "../lib/log.ts";
import type { JobContext } from "../run/provision.ts";
import type { RunContext, ServerRouter } from "../run/site_run.ts";
import { jobServer, type SshSettings } from "../core/servers.ts";

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

/** The answer of the one read-only probe (core/cloudpanel.ts serverState) for a server state. */
export function stateAnswer(
  sites: Array<{
    domain_name: string;
    user: string;
    root_directory?: string;
    certificate_type?: number | null;
    certificate_expires_at?: string | null;
  }> = [],
  users: string[] = [],
): ExecResult {
  const rows = sites.map((s) => ({
    root_directory: s.domain_name,
    certificate_type: 1,
    certificate_expires_at: "2027-01-01 00:00:00",
    ...s,
  }));
  const json = rows.length ? `${JSON.stringify(rows)}\n` : "";
  const passwd = users.map((u) => `${u}:x:1001:1001::/home/${u}:/bin/bash\n`).join("");
  return ok(
    `${json}@@hosting-automator inventory 0\n${passwd}@@hosting-automator passwd ${
      users.length ? 0 : 2
    }\n`,
  );
}

/** The CloudPanel answers of a fresh server for `domain` (docs/cloudpanel.md). */
export function freshServer(): FakeShell {
  return new FakeShell({
    "server-state": stateAnswer(),
    "site:add:static": (c) =>
      ok(`Site ${c.line.match(/--domainName='([^']+)'/)?.[1]} has been added.\n`),
    "doc-root-check": ok(),
    "lets-encrypt:install:certificate": ok("Certificate installation was successful.\n"),
  });
}

/** Answers from a table of names → addresses (a name not in it has none), or as unavailable. */
export class FakeResolver implements Resolver {
  readonly asked: string[] = [];
  constructor(
    public records: Record<string, string[]> = {},
    public unavailable?: string,
  ) {}
  resolve(domain: string): Promise<Resolution> {
    this.asked.push(domain);
    if (this.unavailable) return Promise.resolve({ ok: false, reason: this.unavailable });
    const names = certificateNames(domain);
    return Promise.resolve({
      ok: true,
      seen: Object.fromEntries(names.map((name) => [name, this.records[name] ?? []])),
    });
  }
}

export class FakeAnalytics implements Analytics {
  readonly calls: string[] = [];
  constructor(
    public sites = new Map<string, number[]>(),
    public failWith?: HostingError,
    public nextId = 41,
  ) {}
  paused: Date | null = null;
  pausedUntil() {
    return this.paused;
  }
  pauseUntil(until: Date) {
    this.paused = until;
  }
  /** As the real client: while paused, no request is made (and none is recorded here). */
  #pausedError() {
    return this.paused === null ? undefined : new HostingError(
      "MATOMO_PAUSED",
      `Matomo is not called until ${this.paused.toISOString()} (it refused the token)`,
      { step: "analytics" },
    );
  }
  findSiteIds(domain: string): Promise<number[]> {
    const paused = this.#pausedError();
    if (paused) return Promise.reject(paused);
    this.calls.push(`find ${domain}`);
    if (this.failWith) return Promise.reject(this.failWith);
    return Promise.resolve(this.sites.get(domain) ?? []);
  }
  /** Matomo's ids that deleteSite knows; an id not in `sites` is "not_found". */
  deleteSite(idSite: number): Promise<"deleted" | "not_found"> {
    this.calls.push(`delete ${idSite}`);
    if (this.failWith) return Promise.reject(this.failWith);
    for (const [domain, ids] of this.sites) {
      if (!ids.includes(idSite)) continue;
      this.sites.set(domain, ids.filter((id) => id !== idSite));
      return Promise.resolve("deleted");
    }
    return Promise.resolve("not_found");
  }
  addSite(domain: string): Promise<number> {
    const paused = this.#pausedError();
    if (paused) return Promise.reject(paused);
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
    analytics_failures: 0,
    server: null,
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
    skip_reason: null,
    ...fields,
  };
}

/** Hands out queued claim answers in order; records events and finishes. */
export class FakeStore implements HostingStore {
  readonly events: StepEvent[] = [];
  readonly finishes: Finish[] = [];
  readonly claims: Array<{ siteId?: string; limit: number }> = [];
  readonly released: Array<{ tokens: string[]; reason: string }> = [];
  readonly health: HealthReport[] = [];
  readonly removalFinishes: RemovalFinish[] = [];
  readonly removalRequests: Array<{ siteId: string; deleteAnalytics: boolean }> = [];
  /** What requestRemoval answers. */
  removalAnswer: RemovalAnswer = { outcome: "requested", site: null };
  /** What reportHealth answers (the database decides the pause). */
  pausedUntil: Date | null = new Date("2026-11-26T12:01:00Z");
  stale = false;
  constructor(
    public claimAnswers: Array<
      { claimed: Job[]; site: SiteRow | null; paused?: ClaimAnswer["paused"] }
    > = [],
    public peekAnswer: { due: SiteRow[]; site: SiteRow | null } = { due: [], site: null },
  ) {}
  claim(siteId: string | undefined, limit: number): Promise<ClaimAnswer> {
    this.claims.push({ siteId, limit });
    const answer = this.claimAnswers.shift() ?? { claimed: [], site: null };
    return Promise.resolve({ paused: { ssh: null, matomo: null, servers: {} }, ...answer });
  }
  release(tokens: string[], reason: string) {
    this.released.push({ tokens, reason });
    return Promise.resolve(tokens.length);
  }
  reportHealth(report: HealthReport) {
    this.health.push(report);
    return Promise.resolve({ pausedUntil: report.ok ? null : this.pausedUntil });
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
  requestRemoval(siteId: string, deleteAnalytics: boolean) {
    this.removalRequests.push({ siteId, deleteAnalytics });
    return Promise.resolve(this.removalAnswer);
  }
  finishRemoval(finish: RemovalFinish) {
    this.removalFinishes.push(finish);
    return Promise.resolve({ applied: !this.stale });
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
    analyticsRetry: { baseDelayMs: 60_000, maxDelayMs: 3_600_000, maxAttempts: 10 },
    serverRetry: { baseMs: 60_000, maxMs: 900_000 },
    targets: {
      ssh: { target: "ssh:root@cp.example.com:22", credential: "sha256:ssh" },
      matomo: { target: "matomo:https://analytics.example.com", credential: "sha256:matomo" },
    },
    timeouts: { siteMs: 25_000, certificateMs: 40_000, checkMs: 8_000 },
    ...parts,
  };
}

/** The SSH settings of the unit tests: an implicit server and the default key. */
export const TEST_SSH: SshSettings = {
  implicit: {
    host: "cp.example.com",
    port: 22,
    user: "root",
    hostKeyFingerprint: "SHA256:n3ExG7bQ5wOkMcn6yM0vP8m2Dk3oH2V1q9nJbI2h5Zc",
  },
  // Not a key: no SSH connection is made with it (the fake shells answer instead).
  privateKey: "not a key: unit tests never connect",
  keys: {},
  connectTimeoutMs: 8_000,
  maxChannels: 4,
};

/**
 * A run's context: `shells` by server name ("" for the implicit server), else `shell` for every
 * server; servers resolved from the job as app.ts does (core/servers.ts), with TEST_SSH.
 */
export function runContext(
  parts: Partial<JobContext> & { shells?: Record<string, RemoteShell>; ssh?: SshSettings } = {},
): RunContext & { opened: string[] } {
  const { shells = {}, ssh = TEST_SSH, shell, sshUser: _u, targets, dns, ...rest } = parts;
  const base = context(rest);
  const opened: string[] = [];
  const servers: ServerRouter = {
    serverOf: (job) => jobServer(job.server, ssh),
    shell: (server) => {
      opened.push(server.name ?? "");
      return shells[server.name ?? ""] ?? shell ?? base.shell;
    },
  };
  const { shell: _s, sshUser: _v, targets: _t, dns: _d, ...shared } = base;
  return {
    ...shared,
    servers,
    matomoTarget: targets?.matomo ?? base.targets.matomo,
    ...(dns ? { resolver: dns.resolver } : {}),
    opened,
  };
}
