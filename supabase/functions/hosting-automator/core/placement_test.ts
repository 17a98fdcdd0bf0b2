import assert from "node:assert/strict";
import type { InventoryRow, ServerState } from "./cloudpanel.ts";
import { HostingError } from "./errors.ts";
import { CERTIFICATE_KEEP_MS, decidePlacement, type PlacementInput } from "./placement.ts";
import { siteUserCandidates } from "./site_user.ts";

const NOW = new Date("2026-11-26T12:00:00Z");
const CANDIDATES = siteUserCandidates("example.com", 3); // example_com, example_com-2, example_com-3
const DAY = 24 * 3_600_000;

/** CloudPanel's "YYYY-MM-DD HH:MM:SS" (UTC) for a moment `ms` after NOW. */
const stored = (ms: number) =>
  new Date(NOW.getTime() + ms).toISOString().slice(0, 19).replace("T", " ");

function row(
  fields: Partial<InventoryRow> & Pick<InventoryRow, "domain_name" | "user">,
): InventoryRow {
  return {
    root_directory: fields.domain_name,
    certificate_type: 1,
    certificate_expires_at: stored(3_650 * DAY),
    ...fields,
  };
}

function decide(state: Partial<ServerState>, fields: Partial<PlacementInput> = {}) {
  return decidePlacement({
    domain: "example.com",
    recordedUser: null,
    candidates: CANDIDATES,
    state: { sites: [], users: [], ...state },
    now: NOW,
    ...fields,
  });
}

function conflictOf(placement: ReturnType<typeof decidePlacement>): HostingError {
  assert.equal(placement.kind, "conflict", JSON.stringify(placement));
  if (placement.kind !== "conflict") throw new Error("unreachable");
  assert.ok(placement.error instanceof HostingError);
  assert.equal(placement.error.step, "site");
  assert.equal(placement.error.retryable, false);
  return placement.error;
}

// --- create ----------------------------------------------------------------------------------------

Deno.test("an empty server: create under the first candidate, no warning", () => {
  assert.deepEqual(decide({}), {
    kind: "create",
    siteUser: "example_com",
    docRoot: "/home/example_com/htdocs/example.com",
    warnings: [],
  });
});

Deno.test("unrelated sites and users on the server change nothing", () => {
  assert.deepEqual(
    decide({
      sites: [row({ domain_name: "other.org", user: "other_org" })],
      users: [],
    }),
    decide({}),
  );
});

Deno.test("an orphan first candidate: create under the second, with a warning naming the orphan", () => {
  assert.deepEqual(decide({ users: ["example_com"] }), {
    kind: "create",
    siteUser: "example_com-2",
    docRoot: "/home/example_com-2/htdocs/example.com",
    warnings: [{
      code: "SITE_USER_ORPHAN",
      message: "the Linux user example_com exists without a CloudPanel site (left untouched); " +
        "trying the next name",
    }],
  });
});

Deno.test("two orphans: create under the third candidate, one warning for each orphan", () => {
  const placement = decide({ users: ["example_com", "example_com-2"] });
  assert.equal(placement.kind, "create");
  if (placement.kind !== "create") return;
  assert.equal(placement.siteUser, "example_com-3");
  assert.equal(placement.docRoot, "/home/example_com-3/htdocs/example.com");
  assert.deepEqual(placement.warnings.map((w) => w.code), ["SITE_USER_ORPHAN", "SITE_USER_ORPHAN"]);
  assert.match(placement.warnings[0].message, /^the Linux user example_com exists without/);
  assert.match(placement.warnings[1].message, /^the Linux user example_com-2 exists without/);
});

Deno.test("an orphan that is not the first candidate is not in the way", () => {
  assert.deepEqual(decide({ users: ["example_com-2"] }), decide({}));
});

// --- adopt -----------------------------------------------------------------------------------------

Deno.test("the domain's own site is adopted with its real user and root directory", () => {
  assert.deepEqual(
    decide({
      sites: [row({ domain_name: "example.com", user: "legacy_user", root_directory: "public" })],
      users: ["legacy_user"],
    }),
    {
      kind: "adopt",
      siteUser: "legacy_user",
      docRoot: "/home/legacy_user/htdocs/public",
      certificateValidUntil: null,
    },
  );
});

Deno.test("the own site is adopted when the row records the same user", () => {
  const placement = decide(
    { sites: [row({ domain_name: "example.com", user: "example_com-2" })] },
    { recordedUser: "example_com-2" },
  );
  assert.equal(placement.kind, "adopt");
  assert.equal(placement.kind === "adopt" && placement.siteUser, "example_com-2");
});

Deno.test("the own site wins over a twin and an orphan: it is adopted", () => {
  const placement = decide({
    sites: [
      row({ domain_name: "www.example.com", user: "www_owner" }),
      row({ domain_name: "example.com", user: "example_com" }),
    ],
    users: ["example_com", "example_com-2"],
  });
  assert.equal(placement.kind, "adopt");
  assert.equal(placement.kind === "adopt" && placement.siteUser, "example_com");
});

/** The certificate a site would be adopted with, for a served certificate. */
function kept(type: number | null, expires: string | null): Date | null {
  const placement = decide({
    sites: [row({
      domain_name: "example.com",
      user: "example_com",
      certificate_type: type,
      certificate_expires_at: expires,
    })],
  });
  assert.equal(placement.kind, "adopt");
  if (placement.kind !== "adopt") throw new Error("unreachable");
  return placement.certificateValidUntil;
}

Deno.test("a Let's Encrypt certificate valid for more than 30 days is kept, read as UTC", () => {
  assert.equal(CERTIFICATE_KEEP_MS, 30 * DAY);
  assert.deepEqual(kept(2, "2027-01-01 00:00:00"), new Date("2027-01-01T00:00:00Z"));
  assert.deepEqual(kept(2, stored(30 * DAY + 1_000)), new Date(NOW.getTime() + 30 * DAY + 1_000));
  assert.deepEqual(kept(2, stored(89 * DAY)), new Date(NOW.getTime() + 89 * DAY));
});

Deno.test("a Let's Encrypt certificate expiring within 30 days, or expired, is requested again", () => {
  assert.equal(kept(2, stored(30 * DAY)), null); // exactly 30 days: not more
  assert.equal(kept(2, stored(29 * DAY)), null);
  assert.equal(kept(2, stored(-DAY)), null);
});

Deno.test("a self-signed, imported or absent certificate is never kept", () => {
  assert.equal(kept(1, stored(3_650 * DAY)), null); // what site:add:static creates
  assert.equal(kept(3, stored(3_650 * DAY)), null); // imported
  assert.equal(kept(null, null), null); // no certificate row
  assert.equal(kept(2, null), null); // no expiry known
  assert.equal(kept(2, "not a date"), null);
});

// --- conflict --------------------------------------------------------------------------------------

Deno.test("a row that records another site user than the inventory's is SITE_CONFLICT naming both", () => {
  const error = conflictOf(decide(
    { sites: [row({ domain_name: "example.com", user: "someone_else" })] },
    { recordedUser: "example_com" },
  ));
  assert.equal(error.code, "SITE_CONFLICT");
  assert.equal(
    error.message,
    "the row records site user example_com, but CloudPanel's site example.com belongs to " +
      "someone_else; nothing was changed (fix the row or the server, then retry)",
  );
});

Deno.test("the www twin held by another site is SITE_CONFLICT before anything is created", () => {
  const error = conflictOf(decide({
    sites: [row({ domain_name: "www.example.com", user: "www_owner" })],
  }));
  assert.equal(error.code, "SITE_CONFLICT");
  assert.equal(
    error.message,
    "its www/apex twin www.example.com is another CloudPanel site (site user www_owner); " +
      "CloudPanel serves both names from one site",
  );
});

Deno.test("the apex twin of a www domain held by another site is SITE_CONFLICT too", () => {
  const error = conflictOf(decidePlacement({
    domain: "www.example.com",
    recordedUser: null,
    candidates: siteUserCandidates("www.example.com", 3),
    state: { sites: [row({ domain_name: "example.com", user: "example_com" })], users: [] },
    now: NOW,
  }));
  assert.equal(error.code, "SITE_CONFLICT");
  assert.match(error.message, /^its www\/apex twin example\.com is another CloudPanel site/);
});

Deno.test("a candidate user that belongs to another site is SITE_USER_CONFLICT naming that site", () => {
  const error = conflictOf(decide({
    sites: [row({ domain_name: "taken.net", user: "example_com" })],
    users: ["example_com"],
  }));
  assert.equal(error.code, "SITE_USER_CONFLICT");
  assert.equal(error.message, "site user example_com belongs to CloudPanel site taken.net");
});

Deno.test("after an orphan, a candidate held by another site is still SITE_USER_CONFLICT", () => {
  const error = conflictOf(decide({
    sites: [row({ domain_name: "taken.net", user: "example_com-2" })],
    users: ["example_com", "example_com-2"],
  }));
  assert.equal(error.code, "SITE_USER_CONFLICT");
  assert.equal(error.message, "site user example_com-2 belongs to CloudPanel site taken.net");
});

Deno.test("every candidate an orphan is SITE_USER_CONFLICT listing them all", () => {
  const error = conflictOf(decide({ users: [...CANDIDATES] }));
  assert.equal(error.code, "SITE_USER_CONFLICT");
  assert.equal(
    error.message,
    "every candidate site user exists without a site (example_com, example_com-2, " +
      "example_com-3); remove the orphans on the server, then retry",
  );
});

Deno.test("the same state always gives the same decision", () => {
  const states: Array<Partial<ServerState>> = [
    {},
    { users: ["example_com"] },
    { sites: [row({ domain_name: "example.com", user: "example_com", certificate_type: 2 })] },
    { sites: [row({ domain_name: "www.example.com", user: "x_user" })] },
  ];
  for (const state of states) assert.deepEqual(decide(state), decide(state));
});
