// The function's settings, checked once from the environment's text: either all of them, valid,
// or the list of what is missing or malformed, by name only (a value is never repeated back).

import { z } from "zod";
import { isIpAddress } from "./dns.ts";
import {
  passphraseSetting,
  type PrivateKey,
  serverOfSetting,
  type SshSettings,
} from "./servers.ts";

/** The settings in the shapes their consumers take: each group is handed over as it is. */
export type Settings = ReturnType<typeof groups> & {
  /** The key supabase-js uses: a secret key when the project has one, else the service-role key. */
  databaseKey: string;
  /** Every key a caller may present: the service-role key and each secret key. */
  callerKeys: string[];
  /** The dedicated token the trigger and the sweeper send (Vault): it may only start due work. */
  dispatchToken?: string;
};

export type LoadedSettings =
  | { ok: true; settings: Settings }
  | { ok: false; problems: SettingProblem[]; callerKeys: string[]; dispatchToken?: string };

/** A setting that is missing or wrong, by name; the message never repeats the value. */
export interface SettingProblem {
  setting: string;
  message: string;
}

/** Tuning knobs: name → [default, min, max]. Documented in the README. */
export const TUNING = {
  HOSTING_MAX_CONCURRENT: [3, 1, 50],
  HOSTING_MAX_ATTEMPTS: [8, 1, 100],
  HOSTING_LEASE_SECONDS: [75, 15, 86_400],
  HOSTING_TIME_BUDGET_SECONDS: [10, 0, 3_000],
  HOSTING_WALL_CLOCK_SECONDS: [150, 30, 3_600],
  HOSTING_RETRY_BASE_SECONDS: [60, 1, 86_400],
  HOSTING_RETRY_MAX_SECONDS: [3_600, 1, 604_800],
  HOSTING_SERVER_RETRY_BASE_SECONDS: [60, 1, 86_400],
  HOSTING_SERVER_RETRY_MAX_SECONDS: [900, 1, 86_400],
  HOSTING_ANALYTICS_RETRY_SECONDS: [60, 1, 604_800],
  HOSTING_ANALYTICS_RETRY_MAX_SECONDS: [3_600, 1, 604_800],
  HOSTING_ANALYTICS_MAX_ATTEMPTS: [10, 1, 1_000],
  HOSTING_SITE_TIMEOUT_SECONDS: [25, 1, 1_800],
  HOSTING_CERTIFICATE_TIMEOUT_SECONDS: [40, 1, 1_800],
  HOSTING_CHECK_TIMEOUT_SECONDS: [8, 1, 600],
  HOSTING_DATABASE_TIMEOUT_SECONDS: [4, 1, 300],
  HOSTING_DNS_TIMEOUT_SECONDS: [3, 1, 60],
  SSH_CONNECT_TIMEOUT_SECONDS: [8, 1, 600],
  SSH_MAX_CHANNELS: [4, 1, 10],
  MATOMO_TIMEOUT_SECONDS: [6, 1, 600],
} as const satisfies Record<string, readonly [number, number, number]>;

type Env = Record<string, string | undefined>;

/** `\n` escapes (one-line secrets) become real line breaks; CRLF becomes LF. */
export function decodeMultiline(value: string): string {
  return value.replaceAll("\\n", "\n").replaceAll("\r\n", "\n").trim() + "\n";
}

const httpUrl = z.string().trim().refine((text) => {
  try {
    const url = new URL(text);
    return (url.protocol === "http:" || url.protocol === "https:") && !url.username &&
      !url.password && !url.search && !url.hash;
  } catch {
    return false;
  }
}, "must be an http(s) URL without credentials, query or fragment");

/** The public resolver asked when HOSTING_DNS_RESOLVER_URL is not set (DoH JSON). */
export const DEFAULT_DNS_RESOLVER_URL = "https://cloudflare-dns.com/dns-query";

/** Comma-separated IPv4/IPv6 addresses, at least one, each as written in DNS. */
const addressList = z.string().transform((text, check) => {
  const addresses = text.split(",").map((a) => a.trim()).filter((a) => a !== "");
  if (addresses.length === 0 || !addresses.every(isIpAddress)) {
    check.addIssue({
      code: "custom",
      message: "must be the server's public IPv4/IPv6 addresses, comma-separated",
    });
    return z.NEVER;
  }
  return addresses;
});

/** A blank value is an absent one: secrets managers often store empty strings. */
const blankIsAbsent = (value: unknown) =>
  typeof value === "string" && value.trim() === "" ? undefined : value;

/** A required setting: absent or blank is "missing"; otherwise `schema` decides. */
const required = <T extends z.ZodType<unknown, string>>(schema: T) =>
  z.preprocess(blankIsAbsent, z.string({ error: "missing" }).pipe(schema));

/** An optional setting: absent or blank is undefined. */
const optional = <T extends z.ZodType>(schema: T) => z.preprocess(blankIsAbsent, schema.optional());

/** A tuning knob: a whole number within its range, or its default (TUNING). */
const knob = (name: keyof typeof TUNING) => {
  const [fallback, min, max] = TUNING[name];
  const message = `must be a whole number from ${min} to ${max}`;
  return z.preprocess(
    blankIsAbsent,
    z.string().trim().regex(/^\d+$/, message).transform(Number)
      .pipe(z.number().int().min(min, message).max(max, message)).optional(),
  ).transform((value) => value ?? fallback);
};

const privateKeyText = z.string().transform(decodeMultiline).refine(
  (key) =>
    /^-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\n[\s\S]+\n-----END [A-Z0-9 ]*PRIVATE KEY-----\n$/
      .test(key),
  "must be an OpenSSH or PEM private key (BEGIN/END lines; \\n escapes accepted)",
);

const ENVIRONMENT = z.object({
  SUPABASE_URL: required(httpUrl),
  // The implicit server, for sites without a listed server (public.hosting_servers): optional
  // once every site has one; with SSH_HOST, SSH_HOST_KEY_FINGERPRINT is required.
  SSH_HOST: optional(
    z.string().trim().regex(
      /^[A-Za-z0-9.:\-\[\]]+$/,
      "must be a host name or an IP address",
    ),
  ),
  SSH_PORT: optional(z.coerce.number().int().min(1).max(65_535)).transform((v) => v ?? 22),
  SSH_USER: optional(
    z.string().trim().regex(/^[a-z_][a-z0-9_-]{0,31}$/, "must be a Linux user name"),
  ).transform((v) => v ?? "root"),
  SSH_PRIVATE_KEY: required(privateKeyText),
  SSH_PRIVATE_KEY_PASSPHRASE: optional(z.string()),
  SSH_HOST_KEY_FINGERPRINT: optional(
    z.string().trim().regex(
      /^SHA256:[A-Za-z0-9+/]{43}$/,
      "must be SHA256:… as ssh-keygen -lf prints it",
    ),
  ),
  MATOMO_URL: required(httpUrl.transform((text) => text.replace(/\/+$/, ""))),
  MATOMO_TOKEN_AUTH: required(z.string().trim().min(8, "must be a Matomo token_auth")),
  HOSTING_SERVER_ADDRESSES: optional(addressList),
  HOSTING_DNS_RESOLVER_URL: optional(httpUrl).transform((v) => v ?? DEFAULT_DNS_RESOLVER_URL),
  HOSTING_DISPATCH_TOKEN: optional(
    z.string().trim().min(32, "must be at least 32 characters"),
  ),
  ...Object.fromEntries(
    Object.keys(TUNING).map((name) => [name, knob(name as keyof typeof TUNING)]),
  ) as { [K in keyof typeof TUNING]: ReturnType<typeof knob> },
});

type Tuning = Record<keyof typeof TUNING, number>;

/**
 * The per-server keys: SSH_PRIVATE_KEY__<NAME> (and SSH_PRIVATE_KEY_PASSPHRASE__<NAME>) for the
 * listed server <name> (core/servers.ts keySetting). A passphrase without its key is a problem.
 */
function keyOverrides(env: Env): { keys: Record<string, PrivateKey>; problems: SettingProblem[] } {
  const keys: Record<string, PrivateKey> = {};
  const passphrases: Record<string, string> = {};
  const problems: SettingProblem[] = [];
  for (const [setting, value] of Object.entries(env)) {
    const override = serverOfSetting(setting);
    if (!override || blankIsAbsent(value) === undefined) continue;
    if (override.part === "passphrase") {
      passphrases[override.server] = value as string;
      continue;
    }
    const parsed = privateKeyText.safeParse(value);
    if (parsed.success) keys[override.server] = { privateKey: parsed.data };
    else problems.push({ setting, message: parsed.error.issues[0]?.message ?? "invalid" });
  }
  for (const [server, passphrase] of Object.entries(passphrases)) {
    if (keys[server]) keys[server].passphrase = passphrase;
    else if (!problems.some((p) => serverOfSetting(p.setting)?.server === server)) {
      problems.push({
        setting: passphraseSetting(server),
        message: "is set without its key (SSH_PRIVATE_KEY__ of the same server)",
      });
    }
  }
  return { keys, problems };
}

/** The checked environment as the groups the code hands to its parts, each as it is. */
function groups(env: z.infer<typeof ENVIRONMENT>, keys: Record<string, PrivateKey> = {}) {
  const ms = (seconds: number) => seconds * 1000;
  const ssh: SshSettings = {
    ...(env.SSH_HOST === undefined || env.SSH_HOST_KEY_FINGERPRINT === undefined ? {} : {
      implicit: {
        host: env.SSH_HOST,
        port: env.SSH_PORT,
        user: env.SSH_USER,
        hostKeyFingerprint: env.SSH_HOST_KEY_FINGERPRINT,
        ...(env.HOSTING_SERVER_ADDRESSES === undefined
          ? {}
          : { addresses: env.HOSTING_SERVER_ADDRESSES }),
      },
    }),
    privateKey: env.SSH_PRIVATE_KEY,
    ...(env.SSH_PRIVATE_KEY_PASSPHRASE === undefined
      ? {}
      : { passphrase: env.SSH_PRIVATE_KEY_PASSPHRASE }),
    keys,
    connectTimeoutMs: ms(env.SSH_CONNECT_TIMEOUT_SECONDS),
    maxChannels: env.SSH_MAX_CHANNELS,
  };
  return {
    supabaseUrl: env.SUPABASE_URL,
    ssh,
    matomo: {
      url: env.MATOMO_URL,
      token: env.MATOMO_TOKEN_AUTH,
      timeoutMs: ms(env.MATOMO_TIMEOUT_SECONDS),
    },
    /** For the claim (adapters/store.ts ClaimLimits). */
    claim: {
      maxConcurrent: env.HOSTING_MAX_CONCURRENT,
      leaseSeconds: env.HOSTING_LEASE_SECONDS,
      maxAttempts: env.HOSTING_MAX_ATTEMPTS,
      analyticsLeaseSeconds: analyticsLeaseSeconds(env),
    },
    databaseTimeoutMs: ms(env.HOSTING_DATABASE_TIMEOUT_SECONDS),
    /** For the lanes of one invocation (run/site_run.ts RunOptions). */
    lanes: {
      maxConcurrent: env.HOSTING_MAX_CONCURRENT,
      timeBudgetMs: ms(env.HOSTING_TIME_BUDGET_SECONDS),
    },
    wallClockMs: ms(env.HOSTING_WALL_CLOCK_SECONDS),
    /** A site's own failures (core/decisions.ts RetryPolicy). */
    retry: {
      maxAttempts: env.HOSTING_MAX_ATTEMPTS,
      baseDelayMs: ms(env.HOSTING_RETRY_BASE_SECONDS),
      maxDelayMs: ms(env.HOSTING_RETRY_MAX_SECONDS),
    },
    /** Failed Matomo registrations of an active site (core/decisions.ts AnalyticsPolicy). */
    analyticsRetry: {
      baseDelayMs: ms(env.HOSTING_ANALYTICS_RETRY_SECONDS),
      maxDelayMs: ms(env.HOSTING_ANALYTICS_RETRY_MAX_SECONDS),
      maxAttempts: env.HOSTING_ANALYTICS_MAX_ATTEMPTS,
    },
    /** The pause of a failing server. */
    serverRetry: {
      baseMs: ms(env.HOSTING_SERVER_RETRY_BASE_SECONDS),
      maxMs: ms(env.HOSTING_SERVER_RETRY_MAX_SECONDS),
    },
    /** The DNS check before a certificate (run/provision.ts), for a server whose public addresses
     * are known (a listed server's public_ipv4/ipv6, the implicit one's HOSTING_SERVER_ADDRESSES). */
    dns: {
      resolverUrl: env.HOSTING_DNS_RESOLVER_URL,
      timeoutMs: ms(env.HOSTING_DNS_TIMEOUT_SECONDS),
    },
    /** Command deadlines (run/provision.ts). */
    timeouts: {
      siteMs: ms(env.HOSTING_SITE_TIMEOUT_SECONDS),
      certificateMs: ms(env.HOSTING_CERTIFICATE_TIMEOUT_SECONDS),
      checkMs: ms(env.HOSTING_CHECK_TIMEOUT_SECONDS),
    },
  };
}

const SECRET_KEYS = optional(
  z.string().transform((text, check) => {
    try {
      const keys = z.record(z.string(), z.string().min(1)).parse(JSON.parse(text));
      return keys;
    } catch {
      check.addIssue({ code: "custom", message: "must be a JSON object of named keys" });
      return z.NEVER;
    }
  }),
);
const SERVICE_ROLE_KEY = optional(z.string().trim());

/** Who may call, read apart from the rest: a caller is checked even when other settings are bad. */
function callers(env: Env) {
  const problems: SettingProblem[] = [];
  const issue = (setting: string, error: z.ZodError) =>
    problems.push({ setting, message: error.issues[0]?.message ?? "invalid" });
  const secret = SECRET_KEYS.safeParse(env.SUPABASE_SECRET_KEYS);
  if (!secret.success) issue("SUPABASE_SECRET_KEYS", secret.error);
  const serviceRole = SERVICE_ROLE_KEY.safeParse(env.SUPABASE_SERVICE_ROLE_KEY);
  // Reported with the other settings; read here so callers are known even when others are bad.
  const dispatch = ENVIRONMENT.shape.HOSTING_DISPATCH_TOKEN.safeParse(env.HOSTING_DISPATCH_TOKEN);
  const secretKeys = secret.success ? secret.data ?? {} : {};
  const serviceRoleKey = serviceRole.success ? serviceRole.data : undefined;
  const callerKeys = [...(serviceRoleKey ? [serviceRoleKey] : []), ...Object.values(secretKeys)];
  if (callerKeys.length === 0 && secret.success) {
    problems.push({
      setting: "SUPABASE_SERVICE_ROLE_KEY or SUPABASE_SECRET_KEYS",
      message: "missing",
    });
  }
  return {
    problems,
    callerKeys,
    databaseKey: secretKeys.default ?? Object.values(secretKeys)[0] ?? serviceRoleKey,
    dispatchToken: dispatch.success ? dispatch.data : undefined,
  };
}

/** Reads and checks every setting. Never throws; never echoes a value. */
export function loadSettings(env: Env): LoadedSettings {
  const who = callers(env);
  const parsed = ENVIRONMENT.safeParse(env);
  const overrides = keyOverrides(env);
  // The whole is checked only once every setting is valid on its own.
  const problems = [
    ...who.problems,
    ...(parsed.success
      ? (who.problems.length === 0 ? timingProblems(parsed.data) : [])
      : parsed.error.issues.map((issue) => ({
        setting: String(issue.path[0] ?? "settings"),
        message: issue.message,
      }))),
    ...overrides.problems,
  ];
  if (
    parsed.success && parsed.data.SSH_HOST !== undefined &&
    parsed.data.SSH_HOST_KEY_FINGERPRINT === undefined
  ) {
    problems.push({ setting: "SSH_HOST_KEY_FINGERPRINT", message: "missing (SSH_HOST is set)" });
  }
  if (!parsed.success || problems.length > 0 || who.databaseKey === undefined) {
    return { ok: false, problems, callerKeys: who.callerKeys, dispatchToken: who.dispatchToken };
  }
  return {
    ok: true,
    settings: {
      ...groups(parsed.data, overrides.keys),
      databaseKey: who.databaseKey,
      callerKeys: who.callerKeys,
      dispatchToken: who.dispatchToken,
    },
  };
}

/**
 * The deadlines of one site, in seconds, as the run meets them on its longest path: connect, the
 * state read, the site command, a second read and the document-root check (a race: "already
 * exists"), the DNS check (its queries side by side under one deadline), the certificate, two
 * Matomo calls (a call's deadline includes waiting for another lane's first call), and the
 * database writes (three step events, the DNS warning, a final warning, the finish, a health
 * report). Counted whether or not the DNS check is on: the defaults fit either way.
 */
export function siteWorstCaseSeconds(t: Tuning): number {
  return t.SSH_CONNECT_TIMEOUT_SECONDS + 3 * t.HOSTING_CHECK_TIMEOUT_SECONDS +
    t.HOSTING_SITE_TIMEOUT_SECONDS + t.HOSTING_DNS_TIMEOUT_SECONDS +
    t.HOSTING_CERTIFICATE_TIMEOUT_SECONDS + 2 * t.MATOMO_TIMEOUT_SECONDS +
    7 * t.HOSTING_DATABASE_TIMEOUT_SECONDS;
}

/** The longest stretch between two lease renewals (each step's event renews it). */
export function stepWorstCaseSeconds(t: Tuning): number {
  const db = t.HOSTING_DATABASE_TIMEOUT_SECONDS;
  return Math.max(
    t.SSH_CONNECT_TIMEOUT_SECONDS + 3 * t.HOSTING_CHECK_TIMEOUT_SECONDS +
      t.HOSTING_SITE_TIMEOUT_SECONDS,
    t.HOSTING_DNS_TIMEOUT_SECONDS + db + t.HOSTING_CERTIFICATE_TIMEOUT_SECONDS,
    2 * t.MATOMO_TIMEOUT_SECONDS,
  ) + 2 * db;
}

function analyticsLeaseSeconds(t: Tuning): number {
  return 2 * t.MATOMO_TIMEOUT_SECONDS + 3 * t.HOSTING_DATABASE_TIMEOUT_SECONDS + 10;
}

/** Settings that each look fine but do not fit together, named. */
function timingProblems(t: Tuning): SettingProblem[] {
  const problems: SettingProblem[] = [];
  if (t.HOSTING_RETRY_MAX_SECONDS < t.HOSTING_RETRY_BASE_SECONDS) {
    problems.push({
      setting: "HOSTING_RETRY_MAX_SECONDS",
      message: "must not be below HOSTING_RETRY_BASE_SECONDS",
    });
  }
  if (t.HOSTING_SERVER_RETRY_MAX_SECONDS < t.HOSTING_SERVER_RETRY_BASE_SECONDS) {
    problems.push({
      setting: "HOSTING_SERVER_RETRY_MAX_SECONDS",
      message: "must not be below HOSTING_SERVER_RETRY_BASE_SECONDS",
    });
  }
  if (t.HOSTING_ANALYTICS_RETRY_MAX_SECONDS < t.HOSTING_ANALYTICS_RETRY_SECONDS) {
    problems.push({
      setting: "HOSTING_ANALYTICS_RETRY_MAX_SECONDS",
      message: "must not be below HOSTING_ANALYTICS_RETRY_SECONDS",
    });
  }
  const step = stepWorstCaseSeconds(t);
  if (t.HOSTING_LEASE_SECONDS < step + 5) {
    problems.push({
      setting: "HOSTING_LEASE_SECONDS",
      message: `must be at least ${step + 5} s (the longest step's deadlines plus ` +
        `its database writes, ${step} s, and 5 s), so a lease never ends under a running step`,
    });
  }
  const site = siteWorstCaseSeconds(t);
  if (site > t.HOSTING_WALL_CLOCK_SECONDS) {
    problems.push({
      setting: "HOSTING_WALL_CLOCK_SECONDS",
      message: `one site's deadlines add up to ${site} s, more than the ` +
        `runtime's ${t.HOSTING_WALL_CLOCK_SECONDS} s (lower the command timeouts or raise it on a paid plan)`,
    });
  } else if (t.HOSTING_TIME_BUDGET_SECONDS + site > t.HOSTING_WALL_CLOCK_SECONDS) {
    problems.push({
      setting: "HOSTING_TIME_BUDGET_SECONDS",
      message: `a site claimed at the end of the budget needs up to ${site} s ` +
        `more, past the ${t.HOSTING_WALL_CLOCK_SECONDS} s wall clock (at most ` +
        `${t.HOSTING_WALL_CLOCK_SECONDS - site} s)`,
    });
  }
  return problems;
}

/** Every secret among the settings: what a redactor must mask. */
export function secretsOf(settings: Settings): string[] {
  return [
    settings.databaseKey,
    ...settings.callerKeys,
    settings.ssh.privateKey,
    settings.ssh.passphrase ?? "",
    ...Object.values(settings.ssh.keys).flatMap((key) => [key.privateKey, key.passphrase ?? ""]),
    settings.matomo.token,
    settings.dispatchToken ?? "",
  ].filter((s) => s !== "");
}
