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

/**
 * Who is calling: a holder of the project's service-role or secret key ("admin": anything the
 * contract offers), of the dedicated dispatch token that the trigger and the sweeper send
 * ("dispatch": only to start due work), or nobody. Both sets are always compared.
 */
export function callerRole(
  headers: Headers,
  adminKeys: readonly string[],
  dispatchToken: string | undefined,
): "admin" | "dispatch" | null {
  const admin = isAuthorized(headers, adminKeys);
  const dispatch = isAuthorized(headers, dispatchToken ? [dispatchToken] : []);
  return admin ? "admin" : dispatch ? "dispatch" : null;
}
