// Is this a host name we may hand to CloudPanel? Checked before any connection is made.

import { HostingError } from "./errors.ts";

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
// CloudPanel's own DomainName rule ends in [A-Za-z]{2,14}: a longer or numeric/punycode TLD
// would be refused there anyway, so refuse it here with a clearer message.
const CLOUDPANEL_TLD = /^[a-z]{2,14}$/;

export type DomainCheck = { ok: true; domain: string } | { ok: false; error: HostingError };

/** A lower-case ASCII host name (IDN as punycode) of at least two labels, as the contract requires
 * (docs/contract.md#publicsites). */
export function validateDomain(input: unknown): DomainCheck {
  const fail = (why: string): DomainCheck => ({
    ok: false,
    error: new HostingError("INVALID_DOMAIN", `not a valid host name: ${why}`, { step: "site" }),
  });
  if (typeof input !== "string") return fail("the domain is not text");
  if (input.length === 0) return fail("the domain is empty");
  // Quote what was given (bounded, control characters escaped) so an operator can see the problem.
  const shown = JSON.stringify(input.length > 80 ? `${input.slice(0, 80)}…` : input);
  if (input !== input.trim()) return fail(`${shown} has surrounding spaces`);
  if (/[^\x21-\x7e]/.test(input)) {
    return fail(`${shown} has characters outside printable ASCII (write IDNs as punycode, xn--…)`);
  }
  if (input !== input.toLowerCase()) return fail(`${shown} is not lower case`);
  if (input.length > 253) return fail(`${shown} is longer than 253 characters`);
  if (input.endsWith(".")) return fail(`${shown} ends with a dot`);
  const labels = input.split(".");
  if (labels.length < 2) return fail(`${shown} needs at least two labels (name.tld)`);
  for (const label of labels) {
    if (label.length === 0) return fail(`${shown} has an empty label`);
    if (label.length > 63) return fail(`${shown} has a label longer than 63 characters`);
    if (!LABEL.test(label)) {
      return fail(
        `${shown}: label ${JSON.stringify(label)} may hold only a-z, 0-9 and inner hyphens`,
      );
    }
  }
  const tld = labels[labels.length - 1];
  if (!CLOUDPANEL_TLD.test(tld)) {
    return fail(`${shown}: CloudPanel accepts only a top-level domain of 2 to 14 letters`);
  }
  return { ok: true, domain: input };
}
