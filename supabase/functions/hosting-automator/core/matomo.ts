// Matomo in one place: the SitesManager calls as Matomo wants them, and what each answer means
// (docs/matomo.md#request-shape, docs/matomo.md#observed-answers). Pure: no network here.

import { HostingError } from "./errors.ts";

export type MatomoMethod =
  | "SitesManager.getSitesIdFromSiteUrl"
  | "SitesManager.addSite"
  | "SitesManager.deleteSite";

export interface MatomoRequest {
  method: MatomoMethod;
  /** module, method and format in the query string: then even auth errors come back as JSON. */
  url: string;
  /** token_auth and the parameters, form-encoded: the token never appears in a URL. */
  body: URLSearchParams;
}

/** The URL Matomo stores for a site and looks it up by (scheme and www. are normalised by Matomo). */
export function siteUrl(domain: string): string {
  return `https://${domain}`;
}

export function matomoRequest(
  baseUrl: string,
  token: string,
  method: MatomoMethod,
  params: Array<[string, string]>,
): MatomoRequest {
  const url = new URL(`${baseUrl.replace(/\/+$/, "")}/index.php`);
  url.search = new URLSearchParams({ module: "API", method, format: "JSON" }).toString();
  return {
    method,
    url: url.toString(),
    body: new URLSearchParams([["token_auth", token], ...params]),
  };
}

export function lookupRequest(baseUrl: string, token: string, domain: string): MatomoRequest {
  return matomoRequest(baseUrl, token, "SitesManager.getSitesIdFromSiteUrl", [[
    "url",
    siteUrl(domain),
  ]]);
}

export function addSiteRequest(baseUrl: string, token: string, domain: string): MatomoRequest {
  return matomoRequest(baseUrl, token, "SitesManager.addSite", [
    ["siteName", domain],
    ["urls[0]", siteUrl(domain)],
  ]);
}

/** Removal only, and only ever with the row's own idsite (docs/matomo.md#sitesmanager-calls). */
export function deleteSiteRequest(baseUrl: string, token: string, idSite: number): MatomoRequest {
  return matomoRequest(baseUrl, token, "SitesManager.deleteSite", [["idSite", String(idSite)]]);
}

/** For dry runs and logs: the request with the token shown as ***. */
export function describeRequest(
  request: MatomoRequest,
): { method: string; url: string; body: string } {
  const body = new URLSearchParams(request.body);
  if (body.has("token_auth")) body.set("token_auth", "***");
  return { method: "POST", url: request.url, body: decodeURIComponent(body.toString()) };
}

export interface HttpAnswer {
  status: number;
  contentType: string;
  body: string;
}

/** A Matomo API answer: `value` on success, or the error it stands for. */
export type Interpreted<T> = { ok: true; value: T } | { ok: false; error: HostingError };

const fail = <T>(error: HostingError): Interpreted<T> => ({ ok: false, error });
const matomoError = (code: ConstructorParameters<typeof HostingError>[0], message: string) =>
  new HostingError(code, message, { step: "analytics" });

/** Matomo's HTML error pages carry the message in the first <h2>. */
function htmlMessage(body: string): string {
  const match = body.match(/<h2[^>]*>([\s\S]*?)<\/h2>/i);
  const text = (match ? match[1] : body).replace(/<[^>]+>/g, " ").replace(/\s+/g, " ").trim();
  return text.slice(0, 300);
}

/**
 * Status first, then the body: a wrong token answers 401 (HTML unless module/method are in the
 * query string), brute-force protection 500 HTML, API errors 200 with {"result":"error"}.
 */
function interpret(method: MatomoMethod, answer: HttpAnswer): Interpreted<unknown> {
  const isJson = /^application\/json/i.test(answer.contentType);
  let parsed: unknown = undefined;
  if (isJson) {
    try {
      parsed = JSON.parse(answer.body);
    } catch {
      parsed = undefined;
    }
  }
  const apiMessage = (parsed as { result?: unknown; message?: unknown } | undefined)?.result ===
      "error"
    ? String((parsed as { message?: unknown }).message ?? "")
    : undefined;
  const message = apiMessage ?? (isJson ? answer.body.slice(0, 300) : htmlMessage(answer.body));

  if (/Too many failed logins/i.test(message)) {
    return fail(matomoError("MATOMO_BLOCKED", `${method}: HTTP ${answer.status}: ${message}`));
  }
  if (answer.status === 401 || answer.status === 403) {
    return fail(matomoError("MATOMO_AUTH", `${method}: HTTP ${answer.status}: ${message}`));
  }
  if (answer.status < 200 || answer.status > 299) {
    return fail(matomoError("MATOMO_HTTP", `${method}: HTTP ${answer.status}: ${message}`));
  }
  if (!isJson || parsed === undefined) {
    return fail(
      matomoError(
        "MATOMO_BAD_RESPONSE",
        `${method}: expected JSON, got ${answer.contentType || "no content type"}: ${message}`,
      ),
    );
  }
  if (apiMessage !== undefined) {
    // Matomo 4 answers a token without super user access with 200 and this text
    // (docs/matomo.md#observed-answers).
    const code = /requires a 'superuser' access|Unable to authenticate/.test(apiMessage)
      ? "MATOMO_AUTH"
      : "MATOMO_API_ERROR";
    return fail(matomoError(code, `${method}: ${apiMessage}`));
  }
  return { ok: true, value: parsed };
}

/** idsite comes back as an integer or, on older PHP, a numeric string: accept both
 * (docs/matomo.md#idsite-as-integer-or-string). */
function toSiteId(value: unknown): number | undefined {
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
  return typeof n === "number" && Number.isInteger(n) && n > 0 ? n : undefined;
}

/** getSitesIdFromSiteUrl: `[]` or `[{"idsite":N},…]`, lowest id first. */
export function readLookup(answer: HttpAnswer): Interpreted<number[]> {
  const result = interpret("SitesManager.getSitesIdFromSiteUrl", answer);
  if (!result.ok) return result;
  const rows = result.value;
  const ids = Array.isArray(rows)
    ? rows.map((row) => toSiteId((row as { idsite?: unknown })?.idsite))
    : [undefined];
  if (ids.some((id) => id === undefined)) {
    return fail(matomoError(
      "MATOMO_BAD_RESPONSE",
      `SitesManager.getSitesIdFromSiteUrl: not a list of idsite: ${answer.body.slice(0, 200)}`,
    ));
  }
  return { ok: true, value: (ids as number[]).sort((a, b) => a - b) };
}

/** addSite: `{"value":N}`. */
export function readAddSite(answer: HttpAnswer): Interpreted<number> {
  const result = interpret("SitesManager.addSite", answer);
  if (!result.ok) return result;
  const id = toSiteId((result.value as { value?: unknown } | null)?.value);
  if (id === undefined) {
    return fail(matomoError(
      "MATOMO_BAD_RESPONSE",
      `SitesManager.addSite: no site id in ${answer.body.slice(0, 200)}`,
    ));
  }
  return { ok: true, value: id };
}

/** deleteSite: a void result renders `{"result":"success","message":"ok"}`; an unknown id is
 * `website id = N not found` (an API error): the site is already gone. */
export function readDeleteSite(answer: HttpAnswer): Interpreted<"deleted" | "not_found"> {
  const result = interpret("SitesManager.deleteSite", answer);
  if (!result.ok) {
    return /^SitesManager\.deleteSite: website id = \d+ not found$/.test(result.error.message)
      ? { ok: true, value: "not_found" }
      : result;
  }
  const body = result.value as { result?: unknown } | null;
  if (body?.result !== "success") {
    return fail(matomoError(
      "MATOMO_BAD_RESPONSE",
      `SitesManager.deleteSite: unexpected answer ${answer.body.slice(0, 200)}`,
    ));
  }
  return { ok: true, value: "deleted" };
}
