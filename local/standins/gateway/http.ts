// JSON responses as PostgREST and the Supabase gateway write them.
//
// Replaces: the response shaping of PostgREST / Kong (docs/supabase.md).
// Follows: `application/json; charset=utf-8` bodies. Differs: no CORS headers.

/** A JSON response from an already-serialised body. */
export function rawJson(body: string, status = 200, headers: HeadersInit = {}): Response {
  const merged = new Headers(headers);
  if (!merged.has("content-type")) merged.set("content-type", "application/json; charset=utf-8");
  return new Response(body, { status, headers: merged });
}

/** A JSON response from a value. */
export function json(body: unknown, status = 200, headers: HeadersInit = {}): Response {
  return rawJson(JSON.stringify(body), status, headers);
}

/** PostgREST's error body: always code, details, hint and message (null when empty). */
export interface PostgrestErrorBody {
  code: string;
  details: string | null;
  hint: string | null;
  message: string;
}

export function postgrestError(
  status: number,
  code: string,
  message: string,
  details: string | null = null,
  hint: string | null = null,
  headers: HeadersInit = {},
): Response {
  const body: PostgrestErrorBody = { code, details, hint, message };
  return json(body, status, headers);
}

/** What the local stand-in deliberately does not do, as a PostgREST-shaped 501. */
export function notImplemented(details: string): Response {
  return postgrestError(501, "PGRST127", "not implemented by the local stand-in", details);
}
