// HS256 JSON Web Tokens: verification as PostgREST 12 does it, and signing for tests and tools.
//
// Replaces: PostgREST's JWT check and the gateway's `verify_jwt` check for legacy HS256 tokens
// (docs/supabase.md#api-keys-and-verify_jwt; local CLI serve
// `verifyHybridJWT`).
// Follows: header `alg` must be HS256; `exp`/`nbf` are checked with PostgREST's 30 s clock skew;
// failure texts follow PostgREST 12's PGRST301 messages for the common cases.
// Differs: asymmetric keys (ES256/RS256 via JWKS) are not supported; `aud` is not checked.

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CLOCK_SKEW_SECONDS = 30;

export type JwtClaims = Record<string, unknown>;
export type JwtResult = { ok: true; claims: JwtClaims } | { ok: false; message: string };

function base64UrlEncode(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function base64UrlDecode(text: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new Error("not base64url");
  const padded = text.replace(/-/g, "+").replace(/_/g, "/").padEnd(
    Math.ceil(text.length / 4) * 4,
    "=",
  );
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

const keyCache = new Map<string, Promise<CryptoKey>>();

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = keyCache.get(secret);
  if (!key) {
    key = crypto.subtle.importKey(
      "raw",
      encoder.encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign", "verify"],
    );
    keyCache.set(secret, key);
  }
  return key;
}

/** Signs `claims` as an HS256 JWT. */
export async function signJwt(claims: JwtClaims, secret: string): Promise<string> {
  const header = base64UrlEncode(encoder.encode(JSON.stringify({ alg: "HS256", typ: "JWT" })));
  const payload = base64UrlEncode(encoder.encode(JSON.stringify(claims)));
  const signature = await crypto.subtle.sign(
    "HMAC",
    await hmacKey(secret),
    encoder.encode(`${header}.${payload}`),
  );
  return `${header}.${payload}.${base64UrlEncode(new Uint8Array(signature))}`;
}

function parseJsonSegment(segment: string): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(decoder.decode(base64UrlDecode(segment)));
    return value && typeof value === "object" && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Verifies an HS256 JWT against `secret` at `nowSeconds` (default: the current time). */
export async function verifyJwt(
  token: string,
  secret: string,
  nowSeconds = Math.floor(Date.now() / 1000),
): Promise<JwtResult> {
  if (token === "") return { ok: false, message: "Empty JWT is sent in Authorization header" };
  const parts = token.split(".");
  if (parts.length !== 3) {
    return {
      ok: false,
      message:
        `JWSError (CompactDecodeError Invalid number of parts: Expected 3 parts; got ${parts.length})`,
    };
  }
  const [headerPart, payloadPart, signaturePart] = parts;
  const header = parseJsonSegment(headerPart);
  const claims = parseJsonSegment(payloadPart);
  if (!header || !claims) {
    return { ok: false, message: "JWSError (CompactDecodeError Invalid JWT encoding)" };
  }
  if (header.alg !== "HS256") return { ok: false, message: "JWSError JWSInvalidSignature" };
  let signature: Uint8Array;
  try {
    signature = base64UrlDecode(signaturePart);
  } catch {
    return { ok: false, message: "JWSError JWSInvalidSignature" };
  }
  const valid = await crypto.subtle.verify(
    "HMAC",
    await hmacKey(secret),
    signature,
    encoder.encode(`${headerPart}.${payloadPart}`),
  );
  if (!valid) return { ok: false, message: "JWSError JWSInvalidSignature" };

  for (const claim of ["exp", "nbf", "iat"] as const) {
    if (claims[claim] !== undefined && typeof claims[claim] !== "number") {
      return { ok: false, message: `The JWT '${claim}' claim must be a number` };
    }
  }
  if (typeof claims.exp === "number" && nowSeconds - CLOCK_SKEW_SECONDS >= claims.exp) {
    return { ok: false, message: "JWT expired" };
  }
  if (typeof claims.nbf === "number" && nowSeconds + CLOCK_SKEW_SECONDS < claims.nbf) {
    return { ok: false, message: "JWT not yet valid" };
  }
  return { ok: true, claims };
}
