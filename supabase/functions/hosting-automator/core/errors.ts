// The fixed set of failure kinds, whether each is worth retrying, and the error that carries one.

/** Every failure the product can report. `retryable` failures go back to pending with a backoff;
 * the others (and the last allowed attempt) end in `failed`. `minRetryMs` sets a floor on the wait. */
export const ERROR_CODES = {
  INVALID_DOMAIN: { retryable: false },
  // The server's failures, not the site's: the run stops claiming, the server is paused with
  // backoff for every instance, the site waits for it without using up an attempt.
  SSH_KEY_INVALID: { retryable: true, server: true },
  HOST_KEY_MISMATCH: { retryable: true, server: true },
  SSH_AUTH_FAILED: { retryable: true, server: true },
  SSH_UNREACHABLE: { retryable: true, server: true },
  SSH_TIMEOUT: { retryable: true, server: true },
  SSH_CONNECTION_LOST: { retryable: true, server: true },
  SUDO_REFUSED: { retryable: true, server: true },
  CLPCTL_NOT_FOUND: { retryable: true, server: true },
  INVENTORY_UNAVAILABLE: { retryable: true, server: true },
  // CloudPanel cannot download the Public Suffix List: every site fails the same way.
  CLOUDPANEL_NETWORK: { retryable: true, server: true },
  COMMAND_TIMEOUT: { retryable: true },
  SITE_USER_CONFLICT: { retryable: false },
  SITE_CONFLICT: { retryable: false },
  SITE_MISSING: { retryable: true },
  DOC_ROOT_MISSING: { retryable: false },
  INVALID_INPUT: { retryable: false },
  DNS_NOT_READY: { retryable: true },
  RATE_LIMITED: { retryable: true, minRetryMs: 3_600_000 },
  LETS_ENCRYPT_UNAVAILABLE: { retryable: true },
  CLPCTL_FAILED: { retryable: true },
  MATOMO_UNREACHABLE: { retryable: true },
  MATOMO_TIMEOUT: { retryable: true },
  // A wrong token counts as a failed login: 20 in an hour block the caller's IP
  // (docs/matomo.md#brute-force-lockout).
  MATOMO_AUTH: { retryable: true, minRetryMs: 3_600_000 },
  MATOMO_BLOCKED: { retryable: true, minRetryMs: 3_600_000 },
  // Not a failure of its own: the call was not made because of one of the two above.
  MATOMO_PAUSED: { retryable: true },
  MATOMO_HTTP: { retryable: true },
  MATOMO_API_ERROR: { retryable: true },
  MATOMO_BAD_RESPONSE: { retryable: true },
  DATABASE_ERROR: { retryable: true },
  INTERRUPTED: { retryable: true },
  INTERNAL: { retryable: true },
} as const satisfies Record<
  string,
  { retryable: boolean; minRetryMs?: number; server?: boolean }
>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** The steps of one attempt, as written to public.hosting_events. */
export type Step = "claim" | "site" | "certificate" | "analytics" | "finish";

const BRAND = "HostingError";

/** A failure with a code from ERROR_CODES. Messages must already be free of secrets. */
export class HostingError extends Error {
  readonly brand = BRAND;
  readonly code: ErrorCode;
  readonly step: Step | undefined;

  constructor(code: ErrorCode, message: string, options: { step?: Step; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "HostingError";
    this.code = code;
    this.step = options.step;
  }

  get retryable(): boolean {
    return ERROR_CODES[this.code].retryable;
  }

  /** A failure of the server (or its connection), not of the site: see ERROR_CODES. */
  get serverLevel(): boolean {
    return (ERROR_CODES[this.code] as { server?: boolean }).server === true;
  }
}

/** Brand check rather than instanceof: works across module copies and realms. */
export function isHostingError(value: unknown): value is HostingError {
  return typeof value === "object" && value !== null &&
    (value as { brand?: unknown }).brand === BRAND &&
    typeof (value as { code?: unknown }).code === "string" &&
    (value as { code: string }).code in ERROR_CODES;
}

/** Any thrown value as a HostingError (unknown ones become INTERNAL, keeping the cause). */
export function toHostingError(value: unknown, step?: Step): HostingError {
  if (isHostingError(value)) return value;
  const message = value instanceof Error ? value.message : String(value);
  return new HostingError("INTERNAL", `unexpected error: ${message}`, { step, cause: value });
}

/** A warning or an error as the caller and hosting_events see it. */
export interface Issue {
  code: string;
  message: string;
}
