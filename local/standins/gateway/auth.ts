// Who is calling: the API-key check of the gateway and the JWT → role step of PostgREST.
//
// Replaces: Kong's key check in front of `/rest/v1`, PostgREST's JWT authentication, and the
// hosted functions gateway's `verify_jwt` check (docs/supabase.md#api-keys-and-verify_jwt,
// docs/supabase.md#roles-schemas-and-grants, docs/supabase.md#data-api-and-supabase-js).
// Follows: `apikey` header (or `?apikey=`) is required on /rest/v1 and must be one of the
// project's keys; `sb_secret_…` and the service-role JWT act as `service_role`, `sb_publishable_…`
// and the anon JWT as `anon`; a Bearer JWT (HS256, the project's secret) overrides the role with
// its `role` claim (default `anon`); a bad Bearer JWT is PostgREST's 401 PGRST301.
// `verify_jwt` (functions): a valid Bearer JWT is required, with the hosted gateway's 401 bodies.
// Differs: `Authorization: Bearer sb_…` is ignored on /rest/v1 (the role comes from `apikey`, as
// the local CLI's Kong rewrite does); only HS256 JWTs verify (no JWKS).

import { json, postgrestError } from "./http.ts";
import { type JwtClaims, verifyJwt } from "./jwt.ts";

export interface ApiKeys {
  anonJwt?: string;
  serviceRoleJwt?: string;
  publishable: string[];
  secret: string[];
}

export type Caller = { role: string; claims: JwtClaims };
export type AuthResult = { ok: true; caller: Caller } | { ok: false; response: Response };

/** The JSON dict values of `SUPABASE_PUBLISHABLE_KEYS` / `SUPABASE_SECRET_KEYS`. */
export function keyValues(jsonDict: string | undefined, variable: string): string[] {
  if (!jsonDict) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(jsonDict);
  } catch {
    throw new Error(`${variable} is not a JSON object`);
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new Error(`${variable} is not a JSON object`);
  }
  return Object.values(parsed).filter((v): v is string => typeof v === "string" && v !== "");
}

/** Reads the project's keys from the stack settings (stack.env). */
export function apiKeysFromEnv(get: (name: string) => string | undefined): ApiKeys {
  return {
    anonJwt: get("SUPABASE_ANON_KEY") || undefined,
    serviceRoleJwt: get("SUPABASE_SERVICE_ROLE_KEY") || undefined,
    publishable: keyValues(get("SUPABASE_PUBLISHABLE_KEYS"), "SUPABASE_PUBLISHABLE_KEYS"),
    secret: keyValues(get("SUPABASE_SECRET_KEYS"), "SUPABASE_SECRET_KEYS"),
  };
}

function roleOfApiKey(apikey: string, keys: ApiKeys): "anon" | "service_role" | undefined {
  if (apikey === keys.serviceRoleJwt || keys.secret.includes(apikey)) return "service_role";
  if (apikey === keys.anonJwt || keys.publishable.includes(apikey)) return "anon";
  return undefined;
}

function bearerToken(request: Request): string | undefined {
  const header = request.headers.get("authorization");
  const match = header?.match(/^bearer(?:\s+(.*))?$/i);
  return match ? (match[1] ?? "").trim() : undefined;
}

function withRole(claims: JwtClaims, fallbackRole: string): Caller {
  const role = typeof claims.role === "string" && claims.role !== "" ? claims.role : fallbackRole;
  return { role, claims: { ...claims, role } };
}

/** The `/rest/v1` check: API key first (gateway), then the JWT (PostgREST). */
export async function authenticateRest(
  request: Request,
  keys: ApiKeys,
  jwtSecret: string,
): Promise<AuthResult> {
  const apikey = request.headers.get("apikey") ?? new URL(request.url).searchParams.get("apikey");
  if (!apikey) {
    return { ok: false, response: json({ message: "No API key found in request" }, 401) };
  }
  const keyRole = roleOfApiKey(apikey, keys);
  if (!keyRole) return { ok: false, response: json({ message: "Invalid API key" }, 401) };

  const token = bearerToken(request);
  if (token !== undefined && !token.startsWith("sb_")) {
    const verified = await verifyJwt(token, jwtSecret);
    if (!verified.ok) {
      return {
        ok: false,
        response: postgrestError(401, "PGRST301", verified.message, null, null, {
          "www-authenticate":
            `Bearer error="invalid_token", error_description="${verified.message}"`,
        }),
      };
    }
    return { ok: true, caller: withRole(verified.claims, "anon") };
  }

  // No user JWT: the key itself decides. A legacy key is a JWT whose claims PostgREST would see.
  if (apikey.startsWith("sb_")) return { ok: true, caller: withRole({}, keyRole) };
  const verified = await verifyJwt(apikey, jwtSecret);
  return { ok: true, caller: withRole(verified.ok ? verified.claims : {}, keyRole) };
}

/** The hosted gateway's `verify_jwt` check; undefined when the request may pass. */
export async function rejectWithoutValidJwt(
  request: Request,
  jwtSecret: string,
): Promise<Response | undefined> {
  const header = request.headers.get("authorization");
  if (!header) {
    return json(
      { code: "UNAUTHORIZED_NO_AUTH_HEADER", message: "Missing authorization header" },
      401,
    );
  }
  const match = header.match(/^Bearer (\S+)$/);
  if (!match) {
    return json({
      code: "UNAUTHORIZED_INVALID_JWT_FORMAT",
      message: "Auth header is not 'Bearer {token}'",
    }, 401);
  }
  const verified = await verifyJwt(match[1], jwtSecret);
  if (!verified.ok) {
    return json({ code: "UNAUTHORIZED_INVALID_JWT_FORMAT", message: "Invalid JWT" }, 401);
  }
  return undefined;
}
