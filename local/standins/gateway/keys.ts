// Throw-away API keys for the local stack, printed as keys.env lines (run once by local/stack).
// Stand-in for: a Supabase project's JWT secret and API keys
// (docs/supabase.md#api-keys-and-verify_jwt, docs/supabase.md#environment-and-secrets).
// Follows: legacy anon/service_role keys are HS256 JWTs with iss, role, iat and exp claims, signed
// with the project's JWT secret; the new keys are opaque strings prefixed sb_publishable_ and
// sb_secret_. Differs: the opaque keys are plain random text, with no checksum part.

const encoder = new TextEncoder();

/** Base64url without padding, as JWTs use. */
export function base64url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

export function randomToken(byteCount: number): string {
  return base64url(crypto.getRandomValues(new Uint8Array(byteCount)));
}

/** Signs `claims` as a compact HS256 JWT. */
export async function signHs256Jwt(
  claims: Record<string, unknown>,
  secret: string,
): Promise<string> {
  const header = base64url(encoder.encode(JSON.stringify({ alg: "HS256", typ: "JWT" })));
  const payload = base64url(encoder.encode(JSON.stringify(claims)));
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const signature = await crypto.subtle.sign("HMAC", key, encoder.encode(`${header}.${payload}`));
  return `${header}.${payload}.${base64url(new Uint8Array(signature))}`;
}

export interface StackKeys {
  HA_JWT_SECRET: string;
  SUPABASE_ANON_KEY: string;
  SUPABASE_SERVICE_ROLE_KEY: string;
  HA_PUBLISHABLE_KEY: string;
  HA_SECRET_KEY: string;
  HA_AUTHENTICATOR_PASSWORD: string;
}

const TEN_YEARS_SECONDS = 10 * 365 * 24 * 3600;

export async function generateStackKeys(nowSeconds: number): Promise<StackKeys> {
  const jwtSecret = randomToken(32);
  const roleKey = (role: string) =>
    signHs256Jwt(
      { iss: "supabase", role, iat: nowSeconds, exp: nowSeconds + TEN_YEARS_SECONDS },
      jwtSecret,
    );
  return {
    HA_JWT_SECRET: jwtSecret,
    SUPABASE_ANON_KEY: await roleKey("anon"),
    SUPABASE_SERVICE_ROLE_KEY: await roleKey("service_role"),
    HA_PUBLISHABLE_KEY: `sb_publishable_${randomToken(24)}`,
    HA_SECRET_KEY: `sb_secret_${randomToken(24)}`,
    // Hex: safe inside a connection URL without escaping.
    HA_AUTHENTICATOR_PASSWORD: Array.from(
      crypto.getRandomValues(new Uint8Array(24)),
      (byte) => byte.toString(16).padStart(2, "0"),
    ).join(""),
  };
}

/** `KEY='value'` lines; every value is base64url, hex or JWT text, so never holds a quote. */
export function toEnvLines(keys: StackKeys): string {
  return Object.entries(keys).map(([name, value]) => `${name}='${value}'\n`).join("");
}

if (import.meta.main) {
  const keys = await generateStackKeys(Math.floor(Date.now() / 1000));
  await Deno.stdout.write(encoder.encode(toEnvLines(keys)));
}
