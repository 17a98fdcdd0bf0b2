// Who may call: only holders of the project's service-role or secret key, compared in constant
// time, from `Authorization: Bearer <key>` or `apikey: <key>` (docs/contract.md#auth).

import { createHash, timingSafeEqual } from "node:crypto";

/** The keys a request presents, in the two places Supabase clients put them. */
export function presentedKeys(headers: Headers): string[] {
  const keys: string[] = [];
  const apikey = headers.get("apikey")?.trim();
  if (apikey) keys.push(apikey);
  const bearer = headers.get("authorization")?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
  if (bearer) keys.push(bearer);
  return keys;
}

// Hashing first gives equal-length inputs, so neither the content nor the length of a valid key
// leaks through timing.
const digest = (text: string) => createHash("sha256").update(text).digest();

export function isAuthorized(headers: Headers, validKeys: readonly string[]): boolean {
  const valid = validKeys.filter((key) => key.length > 0).map(digest);
  let authorized = false;
  for (const presented of presentedKeys(headers).map(digest)) {
    for (const key of valid) {
      // No early exit: every pair is compared.
      if (timingSafeEqual(presented, key)) authorized = true;
    }
  }
  return authorized;
}
