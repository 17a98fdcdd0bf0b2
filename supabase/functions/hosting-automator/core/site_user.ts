// The CloudPanel site user for a domain (stable, valid, distinct) and its one-time password.

import { createHash } from "node:crypto";

// CloudPanel: /^[a-z][-a-z0-9_]+$/, 3 to 32 characters; lower case only, because useradd refuses
// upper case (docs/cloudpanel.md#site-user-names).
export const SITE_USER_PATTERN = /^[a-z][-a-z0-9_]{2,31}$/;
const MAX = 32;
const HASH_CHARS = 10; // 40 bits: a collision between two long domains is not a practical concern

/**
 * `example.com` → `example_com`: dots become underscores, everything else is kept, so distinct
 * domains give distinct names. When that does not fit (over 32 characters, or not starting with a
 * letter) the name is a readable prefix plus 10 hex digits of SHA-256(domain), without underscores,
 * so it can never equal a name of the first form (which always has one). Same input, same output.
 */
export function deriveSiteUser(domain: string): string {
  return siteUserCandidates(domain, 1)[0];
}

/**
 * The names to try for a domain, in order, when earlier ones are taken by orphans (a Linux user
 * left without a site): candidate k ≥ 2 is the first form plus `-k` (a first form ends in the
 * letters of a TLD, so the suffix can never make another domain's name), or, when that does not
 * fit, the hashed form of `domain#k`. Deterministic: every run tries the same names.
 */
export function siteUserCandidates(domain: string, count: number): string[] {
  const direct = domain.replaceAll(".", "_");
  const names: string[] = [];
  for (let k = 1; names.length < count; k++) {
    const suffixed = k === 1 ? direct : `${direct}-${k}`;
    names.push(
      suffixed.length <= MAX && /^[a-z]/.test(direct)
        ? suffixed
        : hashed(domain, k === 1 ? domain : `${domain}#${k}`),
    );
  }
  return names;
}

function hashed(domain: string, key: string): string {
  const hash = createHash("sha256").update(key).digest("hex").slice(0, HASH_CHARS);
  let readable = domain.replace(/[^a-z0-9]+/g, "-").replace(/^[^a-z]+/, "");
  readable = readable.slice(0, MAX - HASH_CHARS - 1).replace(/-+$/, "");
  return `${readable || "site"}-${hash}`;
}

// Letters, digits and the few symbols clpctl's wrapper passes through untouched
// (docs/cloudpanel.md#paths-and-callers: avoid $ ` \ " ' !). 24 characters of a 69-symbol
// alphabet: about 146 bits.
const PASSWORD_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.@%+=";
export const PASSWORD_LENGTH = 24;

/** A fresh random password for `--siteUserPassword`. Never stored: nobody logs in with it. */
export function generatePassword(
  fillRandom: (bytes: Uint8Array) => Uint8Array = (bytes) => crypto.getRandomValues(bytes),
): string {
  const n = PASSWORD_ALPHABET.length;
  const limit = 256 - (256 % n); // rejection sampling keeps every symbol equally likely
  let out = "";
  while (out.length < PASSWORD_LENGTH) {
    for (const byte of fillRandom(new Uint8Array(PASSWORD_LENGTH * 2))) {
      if (byte < limit && out.length < PASSWORD_LENGTH) out += PASSWORD_ALPHABET[byte % n];
    }
  }
  return out;
}
