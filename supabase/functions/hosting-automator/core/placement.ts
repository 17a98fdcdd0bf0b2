// Look before acting: from what the server already has (one read of its inventory and users),
// decide whether to adopt the domain's site, create it under which user, or stop on a conflict.
// Pure: the same state always gives the same decision.

import { docRootFor, type ServerState, twinOf } from "./cloudpanel.ts";
import { HostingError, type Issue } from "./errors.ts";

/** A Let's Encrypt certificate this far from its end is left alone (CloudPanel renews it). */
export const CERTIFICATE_KEEP_MS = 30 * 24 * 3_600_000;
const LETS_ENCRYPT = 2; // CloudPanel's certificate.type (docs/cloudpanel.md)

export type Placement =
  | {
    kind: "adopt";
    siteUser: string;
    docRoot: string;
    /** Set when the site serves a Let's Encrypt certificate valid beyond CERTIFICATE_KEEP_MS. */
    certificateValidUntil: Date | null;
  }
  | { kind: "create"; siteUser: string; docRoot: string; warnings: Issue[] }
  | { kind: "conflict"; error: HostingError };

export interface PlacementInput {
  domain: string;
  /** The site user the row already records (from an earlier attempt), if any. */
  recordedUser: string | null;
  /** siteUserCandidates(domain, n): the names to try, in order. */
  candidates: string[];
  state: ServerState;
  now: Date;
}

const conflict = (code: "SITE_CONFLICT" | "SITE_USER_CONFLICT", message: string): Placement => ({
  kind: "conflict",
  error: new HostingError(code, message, { step: "site" }),
});

/** CloudPanel stores expires_at as UTC "YYYY-MM-DD HH:MM:SS". */
function utc(text: string | null): Date | null {
  if (text === null) return null;
  const ms = Date.parse(`${text.trim().replace(" ", "T").replace(/Z?$/, "Z")}`);
  return Number.isNaN(ms) ? null : new Date(ms);
}

export function decidePlacement(input: PlacementInput): Placement {
  const { domain, recordedUser, candidates, state, now } = input;
  const own = state.sites.find((site) => site.domain_name === domain);
  if (own) {
    if (recordedUser !== null && recordedUser !== own.user) {
      return conflict(
        "SITE_CONFLICT",
        `the row records site user ${recordedUser}, but CloudPanel's site ${domain} belongs to ` +
          `${own.user}; nothing was changed (fix the row or the server, then retry)`,
      );
    }
    const expires = own.certificate_type === LETS_ENCRYPT ? utc(own.certificate_expires_at) : null;
    return {
      kind: "adopt",
      siteUser: own.user,
      docRoot: docRootFor(own.user, own.root_directory),
      certificateValidUntil: expires !== null &&
          expires.getTime() - now.getTime() > CERTIFICATE_KEEP_MS
        ? expires
        : null,
    };
  }
  const twin = state.sites.find((site) => site.domain_name === twinOf(domain));
  if (twin) {
    return conflict(
      "SITE_CONFLICT",
      `its www/apex twin ${twin.domain_name} is another CloudPanel site (site user ${twin.user}); ` +
        `CloudPanel serves both names from one site`,
    );
  }
  const warnings: Issue[] = [];
  for (const candidate of candidates) {
    const holder = state.sites.find((site) => site.user === candidate);
    if (holder) {
      return conflict(
        "SITE_USER_CONFLICT",
        `site user ${candidate} belongs to CloudPanel site ${holder.domain_name}`,
      );
    }
    if (!state.users.includes(candidate)) {
      return {
        kind: "create",
        siteUser: candidate,
        docRoot: docRootFor(candidate, domain),
        warnings,
      };
    }
    warnings.push({
      code: "SITE_USER_ORPHAN",
      message: `the Linux user ${candidate} exists without a CloudPanel site (left untouched); ` +
        `trying the next name`,
    });
  }
  return conflict(
    "SITE_USER_CONFLICT",
    `every candidate site user exists without a site (${candidates.join(", ")}); ` +
      `remove the orphans on the server, then retry`,
  );
}
