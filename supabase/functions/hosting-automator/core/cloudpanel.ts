// CloudPanel in one place: the exact remote commands (every value quoted) and the one table that
// turns what a command printed and returned into an outcome. The facts behind both:
// docs/cloudpanel.md#commands-the-product-runs and docs/cloudpanel.md#output-and-exit-codes.

import { type ErrorCode, HostingError, type Step } from "./errors.ts";

/** What a remote command gave back. `code` is null when it ended by a signal. */
export interface ExecResult {
  code: number | null;
  signal?: string | null;
  stdout: string;
  stderr: string;
}

/** A command to run on the server: `line` is what the shell gets; `shown` has secrets as ***. */
export interface RemoteCommand {
  verb: Verb;
  line: string;
  shown: string;
}

export type Verb =
  | "site:add:static"
  | "lets-encrypt:install:certificate"
  | "site:delete"
  | "server-state"
  | "inventory"
  | "passwd"
  | "doc-root-check";

/** POSIX single-quoting: the value reaches the program as one argument, whatever it holds. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** A non-root SSH user runs everything through `sudo -n` (never prompts; fails instead). */
function asUser(line: string, sshUser: string): string {
  return sshUser === "root" ? line : `sudo -n ${line}`;
}

function build(
  verb: Verb,
  parts: Array<string | { option: string; value: string; secret?: boolean }>,
  sshUser: string,
): RemoteCommand {
  const render = (hide: boolean) =>
    parts.map((part) =>
      typeof part === "string"
        ? part
        : `--${part.option}=${part.secret && hide ? "***" : shellQuote(part.value)}`
    ).join(" ");
  return { verb, line: asUser(render(false), sshUser), shown: asUser(render(true), sshUser) };
}

export function addStaticSite(
  domain: string,
  siteUser: string,
  password: string,
  sshUser: string,
): RemoteCommand {
  return build("site:add:static", [
    "clpctl",
    "site:add:static",
    { option: "domainName", value: domain },
    { option: "siteUser", value: siteUser },
    { option: "siteUserPassword", value: password, secret: true },
  ], sshUser);
}

export function installCertificate(domain: string, sshUser: string): RemoteCommand {
  return build("lets-encrypt:install:certificate", [
    "clpctl",
    "lets-encrypt:install:certificate",
    { option: "domainName", value: domain },
  ], sshUser);
}

/** Deprovisioning only; `--force` because without a TTY clpctl would otherwise do nothing. */
export function deleteSite(domain: string, sshUser: string): RemoteCommand {
  return build(
    "site:delete",
    ["clpctl", "site:delete", { option: "domainName", value: domain }, "--force"],
    sshUser,
  );
}

/** CloudPanel's own inventory (read-only): where the site lives and who owns it. */
export const INVENTORY_PATH = "/home/clp/htdocs/app/data/db.sq3";

/** The www/apex twin CloudPanel treats as the same site. */
export function twinOf(domain: string): string {
  return domain.startsWith("www.") ? domain.slice(4) : `www.${domain}`;
}

const MARK = "@@hosting-automator";

/**
 * One read-only round trip for everything a run decides on: the inventory rows for the domain,
 * its twin and any site owned by one of the candidate users (with the certificate each serves),
 * then which candidate users exist in /etc/passwd. Each part's exit code follows a marker line, so
 * a failure of one keeps its own classification.
 */
export function serverState(domain: string, candidates: string[], sshUser: string): RemoteCommand {
  const literal = (value: string) => `'${value.replaceAll("'", "''")}'`;
  const users = candidates.map(literal).join(", ");
  const sql = "select s.domain_name, s.user, s.root_directory, " +
    "c.type as certificate_type, c.expires_at as certificate_expires_at " +
    "from site s left join certificate c on c.id = s.certificate_id " +
    `where s.domain_name in (${literal(domain)}, ${literal(twinOf(domain))}) ` +
    `or s.user in (${users})`;
  // clpctl writes the same database: a read that meets its lock waits for it (up to 3 s) instead
  // of failing at once with "database is locked" (docs/cloudpanel.md#the-inventory).
  const inventory = asUser(
    `sqlite3 -readonly -cmd '.timeout 3000' -json ${INVENTORY_PATH} ${shellQuote(sql)}`,
    sshUser,
  );
  const passwd = asUser(`getent passwd ${candidates.map(shellQuote).join(" ")}`, sshUser);
  // Each marker starts on a line of its own, even after output without a final newline.
  const line = `{ ${inventory}; } 2>&1; printf '\\n${MARK} inventory %s\\n' "$?"; ` +
    `{ ${passwd}; } 2>&1; printf '\\n${MARK} passwd %s\\n' "$?"`;
  return { verb: "server-state", line, shown: line };
}

export interface InventoryRow {
  domain_name: string;
  user: string;
  root_directory: string;
  /** CloudPanel's certificate.type of the served certificate: 1 self-signed, 2 Let's Encrypt. */
  certificate_type: number | null;
  /** UTC, "YYYY-MM-DD HH:MM:SS" as CloudPanel stores it. */
  certificate_expires_at: string | null;
}

export interface ServerState {
  sites: InventoryRow[];
  /** The candidate users that exist on the server. */
  users: string[];
}

/** Splits the probe's output at its markers and reads each part; a failed part is its error. */
export function parseServerState(result: ExecResult): ServerState | HostingError {
  const sections: Record<string, { text: string; code: number }> = {};
  let buffer: string[] = [];
  for (const line of result.stdout.split("\n")) {
    const marker = line.match(new RegExp(`^${MARK} (\\w+) (\\d+)$`));
    if (marker) {
      sections[marker[1]] = { text: buffer.join("\n"), code: Number(marker[2]) };
      buffer = [];
    } else buffer.push(line);
  }
  const { inventory, passwd } = sections;
  if (!inventory || !passwd) {
    // The shell itself failed before the markers (a dropped channel, a killed session…).
    const whole = classify("server-state", result);
    return whole.kind === "failed"
      ? whole.error
      : commandError("CLPCTL_FAILED", "server-state", result);
  }
  const part = (text: string, code: number): ExecResult => ({ code, stdout: text, stderr: "" });
  const inventoryOutcome = classify("inventory", part(inventory.text, inventory.code));
  if (inventoryOutcome.kind === "failed") return inventoryOutcome.error;
  // getent: 0 all found, 2 one or more not found; anything else is a real failure.
  if (passwd.code !== 2) {
    const outcome = classify("passwd", part(passwd.text, passwd.code));
    if (outcome.kind === "failed") return outcome.error;
  }
  const text = inventory.text.trim();
  let sites: InventoryRow[] = [];
  if (text !== "") {
    let rows: unknown;
    try {
      rows = JSON.parse(text);
    } catch { /* reported below */ }
    const valid = Array.isArray(rows) &&
      rows.every((row) =>
        typeof row?.domain_name === "string" && typeof row?.user === "string" &&
        typeof row?.root_directory === "string"
      );
    if (!valid) {
      return new HostingError(
        "INVENTORY_UNAVAILABLE",
        `unexpected answer from the CloudPanel inventory: ${text.slice(0, 200)}`,
        { step: "site" },
      );
    }
    sites = (rows as Array<Record<string, unknown>>).map((row) => ({
      domain_name: row.domain_name as string,
      user: row.user as string,
      root_directory: row.root_directory as string,
      certificate_type: row.certificate_type === null || row.certificate_type === undefined
        ? null
        : Number(row.certificate_type),
      certificate_expires_at: typeof row.certificate_expires_at === "string"
        ? row.certificate_expires_at
        : null,
    }));
  }
  const users = passwd.text.split("\n").map((l) => l.split(":")[0]).filter((u) => u !== "");
  return { sites, users };
}

export function docRootCheck(docRoot: string, sshUser: string): RemoteCommand {
  const line = asUser(`test -d ${shellQuote(docRoot)}`, sshUser);
  return { verb: "doc-root-check", line, shown: line };
}

/** `/home/{siteUser}/htdocs/{rootDirectory}`; for a static site rootDirectory is the domain. */
export function docRootFor(siteUser: string, rootDirectory: string): string {
  return `/home/${siteUser}/htdocs/${rootDirectory}`;
}

export type Outcome =
  | { kind: "created" }
  | { kind: "exists" }
  | { kind: "certificate_installed" }
  | { kind: "deleted" }
  | { kind: "not_found" }
  | { kind: "ok" }
  | { kind: "failed"; error: HostingError };

type SuccessKind = Exclude<Outcome, { kind: "failed" }>["kind"];

interface Rule {
  verbs: readonly Verb[] | "any";
  /** Matched against stdout + stderr: clpctl writes its errors to stdout
   * (docs/cloudpanel.md#running-clpctl-over-ssh). */
  when: (text: string, result: ExecResult) => boolean;
  /** Either a success kind or the code of the failure. */
  then: { kind: SuccessKind } | { error: ErrorCode };
}

const line = (pattern: string) => new RegExp(`^${pattern}$`, "m");
const has = (pattern: RegExp) => (text: string) => pattern.test(text);
const exitZero = (pattern: RegExp) => (text: string, r: ExecResult) =>
  r.code === 0 && pattern.test(text);
const ADD: readonly Verb[] = ["site:add:static"];
const CERT: readonly Verb[] = ["lets-encrypt:install:certificate"];
const DELETE: readonly Verb[] = ["site:delete"];

/**
 * The classification table, first match wins. Texts are CloudPanel's own
 * (docs/cloudpanel.md#validation-rules-and-messages, docs/cloudpanel.md#output-and-exit-codes),
 * sudo's and the shell's. Anything unmatched is CLPCTL_FAILED (retried, then failed).
 */
export const RULES: readonly Rule[] = [
  // A read-only check whose tool is missing says so; everything else missing is clpctl itself.
  {
    verbs: ["inventory", "passwd", "server-state"],
    when: (t, r) => r.code === 127 || /command not found/.test(t),
    then: { error: "INVENTORY_UNAVAILABLE" },
  },
  {
    verbs: "any",
    when: (t, r) => r.code === 127 || /command not found/.test(t),
    then: { error: "CLPCTL_NOT_FOUND" },
  },
  {
    verbs: "any",
    when: has(
      /^sudo: (a password is required|a terminal is required)|is not in the sudoers file|is not allowed to (run|execute)/m,
    ),
    then: { error: "SUDO_REFUSED" },
  },
  { verbs: ADD, when: exitZero(/^Site \S+ has been added\.$/m), then: { kind: "created" } },
  // The domain (or its www/apex twin) is already a site: adopt it after checking the inventory.
  // It can come with a siteUser line (the same user exists too); the domain line decides.
  {
    verbs: ADD,
    when: has(line("domainName: This value already exists\\.")),
    then: { kind: "exists" },
  },
  {
    verbs: ADD,
    when: has(line("siteUser: This value already exists\\.")),
    then: { error: "SITE_USER_CONFLICT" },
  },
  {
    verbs: ADD,
    when: has(
      /^(domainName|siteUser|siteUserPassword): |^\s*The "--[\w-]+" option (requires a value|does not exist)\.\s*$/m,
    ),
    then: { error: "INVALID_INPUT" },
  },
  // site:* and certificates resolve the domain with the Public Suffix List, downloaded each time
  // (docs/cloudpanel.md#paths-and-callers).
  {
    verbs: "any",
    when: has(/cURL error \d+: .*publicsuffix\.org/),
    then: { error: "CLOUDPANEL_NETWORK" },
  },
  {
    verbs: CERT,
    when: exitZero(/^Certificate installation was successful\.$/m),
    then: { kind: "certificate_installed" },
  },
  {
    verbs: CERT,
    when: has(
      /rateLimited|\b429 Too Many Requests\b|too many (new )?(certificates|orders|failed authorizations)/i,
    ),
    then: { error: "RATE_LIMITED" },
  },
  { verbs: CERT, when: has(/Domain could not be validated/), then: { error: "DNS_NOT_READY" } },
  {
    verbs: CERT,
    when: has(
      /An error occurred while (registering an account|requesting an order)|cURL error \d+/,
    ),
    then: { error: "LETS_ENCRYPT_UNAVAILABLE" },
  },
  { verbs: CERT, when: has(line('Site ".*" does not exist\\.')), then: { error: "SITE_MISSING" } },
  { verbs: DELETE, when: exitZero(/^Site \S+ has been deleted\.$/m), then: { kind: "deleted" } },
  { verbs: DELETE, when: has(line('Site ".*" does not exist\\.')), then: { kind: "not_found" } },
  {
    verbs: ["inventory", "passwd", "doc-root-check"],
    when: (_t, r) => r.code === 0,
    then: { kind: "ok" },
  },
  { verbs: ["doc-root-check"], when: (_t, r) => r.code === 1, then: { error: "DOC_ROOT_MISSING" } },
  {
    verbs: ["inventory"],
    when: has(/unable to open database|no such table|no such column/),
    then: { error: "INVENTORY_UNAVAILABLE" },
  },
];

const STEP_OF: Record<Verb, Step> = {
  "site:add:static": "site",
  "lets-encrypt:install:certificate": "certificate",
  "site:delete": "site",
  "server-state": "site",
  inventory: "site",
  passwd: "site",
  "doc-root-check": "site",
};

/** What a command's output means. Pure: the same output always gives the same outcome. */
export function classify(verb: Verb, result: ExecResult): Outcome {
  const text = `${result.stdout}\n${result.stderr}`;
  for (const rule of RULES) {
    if (rule.verbs !== "any" && !rule.verbs.includes(verb)) continue;
    if (!rule.when(text, result)) continue;
    if ("kind" in rule.then) return { kind: rule.then.kind } as Outcome;
    return { kind: "failed", error: commandError(rule.then.error, verb, result) };
  }
  return { kind: "failed", error: commandError("CLPCTL_FAILED", verb, result) };
}

/** The error for a failed command: its code, the command, how it ended, and the first output lines. */
export function commandError(code: ErrorCode, verb: Verb, result: ExecResult): HostingError {
  const ended = result.code === null
    ? `ended by signal ${result.signal ?? "unknown"}`
    : `exit ${result.code}`;
  const output = `${result.stdout.trim()}\n${result.stderr.trim()}`.trim().split("\n")
    .filter((l) => l.trim() !== "").slice(0, 6).join(" | ");
  return new HostingError(
    code,
    `${verb} failed (${ended})${output ? `: ${output.slice(0, 800)}` : ""}`,
    { step: STEP_OF[verb] },
  );
}
