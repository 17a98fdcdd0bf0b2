// The function's settings, checked once from the environment's text: either all of them, valid,
// or the list of what is missing or malformed, by name only (a value is never repeated back).

import { z } from "zod";

export interface Settings {
  supabaseUrl: string;
  /** The key supabase-js uses: a secret key when the project has one, else the service-role key. */
  databaseKey: string;
  /** Every key a caller may present: the service-role key and each secret key. */
  callerKeys: string[];
  /** The dedicated token the trigger and the sweeper send (Vault): it may only start due work. */
  dispatchToken?: string;
  ssh: {
    host: string;
    port: number;
    user: string;
    privateKey: string;
    passphrase?: string;
    hostKeyFingerprint: string;
    connectTimeoutMs: number;
    maxChannels: number;
  };
  matomo: { url: string; token: string; timeoutMs: number };
  run: {
    maxConcurrent: number;
    maxAttempts: number;
    leaseSeconds: number;
    analyticsLeaseSeconds: number;
    timeBudgetMs: number;
    wallClockMs: number;
    retryBaseMs: number;
    retryMaxMs: number;
    serverRetryBaseMs: number;
    serverRetryMaxMs: number;
    analyticsRetryMs: number;
    analyticsRetryMaxMs: number;
    analyticsMaxAttempts: number;
    siteCommandTimeoutMs: number;
    certificateTimeoutMs: number;
    checkTimeoutMs: number;
    databaseTimeoutMs: number;
  };
}

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
  HOSTING_TIME_BUDGET_SECONDS: [15, 0, 3_000],
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
  SSH_CONNECT_TIMEOUT_SECONDS: [8, 1, 600],
  SSH_MAX_CHANNELS: [4, 1, 10],
  MATOMO_TIMEOUT_SECONDS: [6, 1, 600],
} as const satisfies Record<string, readonly [number, number, number]>;

type Env = Record<string, string | undefined>;

const present = (value: string | undefined): value is string =>
  value !== undefined && value.trim() !== "";

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

const FIELDS = {
  SUPABASE_URL: httpUrl,
  SSH_HOST: z.string().trim().regex(
    /^[A-Za-z0-9.:\-\[\]]+$/,
    "must be a host name or an IP address",
  ),
  SSH_PORT: z.coerce.number().int().min(1).max(65_535).default(22),
  SSH_USER: z.string().trim().regex(/^[a-z_][a-z0-9_-]{0,31}$/, "must be a Linux user name")
    .default("root"),
  SSH_PRIVATE_KEY: z.string().transform(decodeMultiline).refine(
    (key) =>
      /^-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\n[\s\S]+\n-----END [A-Z0-9 ]*PRIVATE KEY-----\n$/
        .test(key),
    "must be an OpenSSH or PEM private key (BEGIN/END lines; \\n escapes accepted)",
  ),
  SSH_PRIVATE_KEY_PASSPHRASE: z.string().optional(),
  SSH_HOST_KEY_FINGERPRINT: z.string().trim().regex(
    /^SHA256:[A-Za-z0-9+/]{43}$/,
    "must be SHA256:… as ssh-keygen -lf prints it",
  ),
  MATOMO_URL: httpUrl.transform((text) => text.replace(/\/+$/, "")),
  MATOMO_TOKEN_AUTH: z.string().trim().min(8, "must be a Matomo token_auth"),
  HOSTING_DISPATCH_TOKEN: z.string().trim().min(32, "must be at least 32 characters").optional(),
};

/** Reads and checks every setting. Never throws; never echoes a value. */
export function loadSettings(env: Env): LoadedSettings {
  const problems: SettingProblem[] = [];
  const callerKeys: string[] = [];

  const serviceRoleKey = env.SUPABASE_SERVICE_ROLE_KEY?.trim();
  let secretKeys: string[] = [];
  let defaultSecretKey: string | undefined;
  if (present(env.SUPABASE_SECRET_KEYS)) {
    try {
      const parsed = JSON.parse(env.SUPABASE_SECRET_KEYS);
      if (
        typeof parsed !== "object" || parsed === null || Array.isArray(parsed) ||
        !Object.values(parsed).every((v) => typeof v === "string" && v.length > 0)
      ) throw new Error("shape");
      secretKeys = Object.values(parsed as Record<string, string>);
      defaultSecretKey = (parsed as Record<string, string>).default ?? secretKeys[0];
    } catch {
      problems.push({
        setting: "SUPABASE_SECRET_KEYS",
        message: "must be a JSON object of named keys",
      });
    }
  }
  if (present(serviceRoleKey)) callerKeys.push(serviceRoleKey);
  callerKeys.push(...secretKeys);
  if (callerKeys.length === 0) {
    problems.push({
      setting: "SUPABASE_SERVICE_ROLE_KEY or SUPABASE_SECRET_KEYS",
      message: "missing",
    });
  }

  const values: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(FIELDS)) {
    const raw = env[name];
    const optional = schema.safeParse(undefined).success;
    if (!present(raw)) {
      if (optional) values[name] = schema.parse(undefined);
      else problems.push({ setting: name, message: "missing" });
      continue;
    }
    const result = schema.safeParse(raw);
    if (result.success) values[name] = result.data;
    else {
      problems.push({ setting: name, message: result.error.issues[0]?.message ?? "invalid" });
    }
  }

  const tuning = {} as Tuning;
  for (const [name, [fallback, min, max]] of Object.entries(TUNING)) {
    const raw = env[name];
    if (!present(raw)) {
      tuning[name as keyof Tuning] = fallback;
      continue;
    }
    const n = /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push({ setting: name, message: `must be a whole number from ${min} to ${max}` });
    } else tuning[name as keyof Tuning] = n;
  }
  if (problems.length === 0) problems.push(...timingProblems(tuning));

  const dispatchToken = values.HOSTING_DISPATCH_TOKEN as string | undefined;
  if (problems.length > 0) return { ok: false, problems, callerKeys, dispatchToken };

  const seconds = (name: keyof typeof TUNING) => tuning[name] * 1000;

  return {
    ok: true,
    settings: {
      supabaseUrl: values.SUPABASE_URL as string,
      databaseKey: defaultSecretKey ?? serviceRoleKey!,
      callerKeys,
      dispatchToken,
      ssh: {
        host: values.SSH_HOST as string,
        port: values.SSH_PORT as number,
        user: values.SSH_USER as string,
        privateKey: values.SSH_PRIVATE_KEY as string,
        passphrase: present(values.SSH_PRIVATE_KEY_PASSPHRASE as string | undefined)
          ? values.SSH_PRIVATE_KEY_PASSPHRASE as string
          : undefined,
        hostKeyFingerprint: values.SSH_HOST_KEY_FINGERPRINT as string,
        connectTimeoutMs: seconds("SSH_CONNECT_TIMEOUT_SECONDS"),
        maxChannels: tuning.SSH_MAX_CHANNELS,
      },
      matomo: {
        url: values.MATOMO_URL as string,
        token: values.MATOMO_TOKEN_AUTH as string,
        timeoutMs: seconds("MATOMO_TIMEOUT_SECONDS"),
      },
      run: {
        maxConcurrent: tuning.HOSTING_MAX_CONCURRENT,
        maxAttempts: tuning.HOSTING_MAX_ATTEMPTS,
        leaseSeconds: tuning.HOSTING_LEASE_SECONDS,
        analyticsLeaseSeconds: analyticsLeaseSeconds(tuning),
        timeBudgetMs: seconds("HOSTING_TIME_BUDGET_SECONDS"),
        wallClockMs: seconds("HOSTING_WALL_CLOCK_SECONDS"),
        retryBaseMs: seconds("HOSTING_RETRY_BASE_SECONDS"),
        retryMaxMs: seconds("HOSTING_RETRY_MAX_SECONDS"),
        serverRetryBaseMs: seconds("HOSTING_SERVER_RETRY_BASE_SECONDS"),
        serverRetryMaxMs: seconds("HOSTING_SERVER_RETRY_MAX_SECONDS"),
        analyticsRetryMs: seconds("HOSTING_ANALYTICS_RETRY_SECONDS"),
        analyticsRetryMaxMs: seconds("HOSTING_ANALYTICS_RETRY_MAX_SECONDS"),
        analyticsMaxAttempts: tuning.HOSTING_ANALYTICS_MAX_ATTEMPTS,
        siteCommandTimeoutMs: seconds("HOSTING_SITE_TIMEOUT_SECONDS"),
        certificateTimeoutMs: seconds("HOSTING_CERTIFICATE_TIMEOUT_SECONDS"),
        checkTimeoutMs: seconds("HOSTING_CHECK_TIMEOUT_SECONDS"),
        databaseTimeoutMs: seconds("HOSTING_DATABASE_TIMEOUT_SECONDS"),
      },
    },
  };
}

type Tuning = Record<keyof typeof TUNING, number>;

/**
 * The deadlines of one site, in seconds, as the run meets them on its longest path: connect, the
 * state read, the site command, a second read and the document-root check (a race: "already
 * exists"), the certificate, two Matomo calls (a call's deadline includes waiting for another
 * lane's first call), and the database writes (three step events, a final warning, the finish, a
 * health report).
 */
export function siteWorstCaseSeconds(t: Tuning): number {
  return t.SSH_CONNECT_TIMEOUT_SECONDS + 3 * t.HOSTING_CHECK_TIMEOUT_SECONDS +
    t.HOSTING_SITE_TIMEOUT_SECONDS + t.HOSTING_CERTIFICATE_TIMEOUT_SECONDS +
    2 * t.MATOMO_TIMEOUT_SECONDS + 6 * t.HOSTING_DATABASE_TIMEOUT_SECONDS;
}

/** The longest stretch between two lease renewals (each step's event renews it). */
export function stepWorstCaseSeconds(t: Tuning): number {
  const db = t.HOSTING_DATABASE_TIMEOUT_SECONDS;
  return Math.max(
    t.SSH_CONNECT_TIMEOUT_SECONDS + 3 * t.HOSTING_CHECK_TIMEOUT_SECONDS +
      t.HOSTING_SITE_TIMEOUT_SECONDS,
    t.HOSTING_CERTIFICATE_TIMEOUT_SECONDS,
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
    settings.matomo.token,
    settings.dispatchToken ?? "",
  ].filter((s) => s !== "");
}
