// Matomo stand-in, part 4 of 4: the HTTP entry (`createMatomoStandin`) and the process (`main`).
//
// Replaces: a self-hosted Matomo 5.0.2 (PHP-FPM behind nginx, as CloudPanel runs it), as far as the
// Hosting Automator uses it (supabase/functions/hosting-automator/core/matomo.ts): the Reporting
// API at `/index.php` and `/`, `format=JSON`, with SitesManager.getSitesIdFromSiteUrl and
// SitesManager.addSite, and SitesManager.deleteSite for the coming site removal.
// Follows: docs/matomo.md — the table "Observed on a real Matomo 5.0.2" row by row (status
// codes, Content-Types, bodies), its request shape (parameters from query and form body, GET wins, `format`
// case-insensitive), its token rules (one super-user token; accepted in the body or, with
// `only_allow_secure_auth_tokens = 0`, in the query; a refused token is 401, rendered as API JSON/XML
// only when `module=API&method=…` are in the query string, else as Matomo's HTML error page; the
// GET message when the token came in the query; brute-force protection: failed token logins per
// client IP, and once more than 20 fall inside 60 minutes every API request from that IP gets 500 —
// `numLogins <= maxLogAttempts` in plugins/Login/Security/BruteForceDetection.php, which matches the
// measured run in docs/matomo.md), and docs/matomo.md#observed-answers (messages, 200 for
// validation errors, 401 for access).
// deleteSite follows plugins/SitesManager/API.php (super user only; "website id = N not found";
// the last site cannot go) and answers void as Matomo's `{"result":"success","message":"ok"}`.
// Differs: anything outside that model is answered `400 text/plain` with the header
// `x-matomo-standin: not-modelled` (other methods and modules, even unknown ones that Matomo
// answers with "does not exist"; formats other than JSON, XML included; the web UI), so a client
// can never mistake it for a Matomo answer. The
// brute-force counter lives in memory (a restart unblocks, like `console login:unblock-blocked-ips`);
// sites are kept in a JSON file (sites.ts). Inferred from Matomo's source, not observed: anonymous
// API requests are blocked by brute force too; the deleteSite texts.
//
// Control API (JSON, the stand-in's own, not Matomo's), under `/__standin/`:
//   GET health | sites | requests | fault;  POST reset | unblock;  POST fault with
//   {"mode": "none"|"unavailable"|"error500"|"hang"|"close"|"delay", "methods"?: ["SitesManager.addSite"],
//    "count"?: n, "status"?: 502|503, "ms"?: n}
// unavailable: nginx's 502 (or 503) page, as with PHP-FPM down; error500: Matomo's HTML error page
// with a database error; hang: no answer until reset (then nginx's 504) or until the client leaves;
// close: connection dropped before any byte; delay: the normal answer, `ms` later (plays Matomo's
// own time in benchmarks). `count` limits a fault to the next n matching requests. Each request
// log entry has `duration_ms`, the stand-in's own time for it (delays included).
// reset clears sites (ids restart at 1), request log, fault and brute-force counter; unblock clears
// the brute-force counter only. The request log keeps parameter names and where token_auth was,
// never its value.

import {
  mergeGetWins,
  type PhpArray,
  type PhpRequest,
  type PhpValue,
  phpValues,
  readPhpRequest,
} from "./params.ts";
import {
  type ApiValue,
  HTML_TYPE,
  JSON_TYPE,
  matomoErrorPage,
  nginxErrorPage,
  renderApiError,
  renderApiValue,
} from "./render.ts";
import { cleanSiteUrls, isLookLikeUrl, SiteStore } from "./sites.ts";

export const MATOMO_VERSION = "5.0.2";
export const CONTROL_PREFIX = "/__standin/";
const DROPPED_HEADER = "x-matomo-standin-dropped";

/** Messages exactly as the reference gives them. */
export const MESSAGES = {
  tokenRefusedPost:
    "Unable to authenticate with the provided token. It is either invalid or expired.",
  tokenRefusedGet:
    "Unable to authenticate with the provided token. It is either invalid, expired or is required to be sent as a POST parameter.",
  superUserRequired: "You can't access this resource as it requires a 'superuser' access.",
  blocked: "Too many failed logins. Please wait and try logging in again later.",
  lastSite:
    "It is not possible to delete this website as it is the only registered website. Add a new website first, then delete this one.",
  databaseDown: "SQLSTATE[HY000] [2002] Connection refused",
} as const;

export interface MatomoStandinOptions {
  /** The one valid token_auth, a super user's. */
  token: string;
  /** JSON file that keeps the sites across restarts; omitted: memory only. */
  stateFile?: string;
  /** `[General] only_allow_secure_auth_tokens` (default 0: a token in the query string is accepted). */
  onlyAllowSecureAuthTokens?: boolean;
  /** Login brute-force settings: more than `maxFailedLogins` within `failedLoginWindowMs` blocks. */
  maxFailedLogins?: number;
  failedLoginWindowMs?: number;
  /** Clock in epoch milliseconds (tests move it). */
  now?: () => number;
  /** Most recent entries kept by the request log. */
  requestLogLimit?: number;
}

/** What the handler needs to know about the connection: the client IP, for brute-force counting. */
export interface ClientInfo {
  remoteAddr: Deno.Addr;
}

export type MatomoStandinHandler = (req: Request, info: ClientInfo) => Promise<Response>;

export type FaultMode = "none" | "unavailable" | "error500" | "hang" | "close" | "delay";

export interface Fault {
  mode: Exclude<FaultMode, "none">;
  /** API methods (`SitesManager.addSite`) it applies to; null: every request. */
  methods: string[] | null;
  /** How many more matching requests it applies to; null: until changed or reset. */
  remaining: number | null;
  /** For `unavailable`: 502 (nginx, PHP-FPM down) or 503. */
  status: 502 | 503;
  /** For `delay`: milliseconds before the normal answer. */
  ms: number;
}

export interface RequestLogEntry {
  seq: number;
  at: string;
  httpMethod: string;
  path: string;
  /** The `method` parameter (GET wins), e.g. `SitesManager.addSite`. */
  apiMethod: string | null;
  queryKeys: string[];
  bodyKeys: string[];
  /** Where a `token_auth` parameter was present. The value itself is never recorded. */
  tokenIn: "none" | "query" | "body" | "query+body";
  /** HTTP status answered; null while hanging or when the connection was dropped. */
  status: number | null;
  fault: Fault["mode"] | null;
  /** The stand-in's own time for the request; null while hanging or when dropped. */
  duration_ms: number | null;
}

type Access = "superuser" | "anonymous";

interface CallContext {
  params: PhpArray;
  access: Access;
}

/** An exception Matomo's API layer renders as `{"result":"error","message":…}`. */
class ApiError extends Error {
  constructor(message: string, readonly status: 200 | 401 = 200) {
    super(message);
  }
}

/** A request the stand-in does not model; answered 400 text/plain, never as Matomo. */
class NotModelled extends Error {}

function notModelledResponse(what: string): Response {
  return new Response(
    `matomo stand-in: ${what} is not modelled (see local/standins/matomo/server.ts)\n`,
    {
      status: 400,
      headers: { "content-type": "text/plain; charset=utf-8", "x-matomo-standin": "not-modelled" },
    },
  );
}

function htmlResponse(status: number, message: string): Response {
  return new Response(matomoErrorPage(message), {
    status,
    headers: { "content-type": HTML_TYPE },
  });
}

function nginxResponse(status: 404 | 502 | 503 | 504): Response {
  return new Response(nginxErrorPage(status), {
    status,
    headers: { "content-type": "text/html", server: "nginx" },
  });
}

function apiResponse(body: string, status = 200): Response {
  return new Response(body, { status, headers: { "content-type": JSON_TYPE } });
}

function jsonResponse(value: unknown, status = 200): Response {
  return new Response(JSON.stringify(value), {
    status,
    headers: { "content-type": "application/json" },
  });
}

function stringOf(value: PhpValue | undefined): string | null {
  return typeof value === "string" ? value : null;
}

/** Request::getMethodIfApiRequest: `module=API` and a `Plugin.method` name in the given array. */
function apiMethodOf(request: PhpArray): string | null {
  const method = stringOf(request.get("method"));
  if (stringOf(request.get("module")) !== "API" || !method) return null;
  return method.split(".").length === 2 ? method : null;
}

/** Proxy::getRequestParametersArray for a parameter without default: "" counts as missing. */
function required(params: PhpArray, name: string): string {
  const value = params.get(name);
  if (value === undefined || value === "") {
    throw new ApiError(`Please specify a value for '${name}'.`);
  }
  if (typeof value !== "string") throw new NotModelled(`an array for parameter '${name}'`);
  return value;
}

function optional(params: PhpArray, name: string): string | undefined {
  const value = params.get(name);
  if (value !== undefined && typeof value !== "string") {
    throw new NotModelled(`an array for parameter '${name}'`);
  }
  return value === "" ? undefined : value;
}

function flag(params: PhpArray, name: string, fallback: number): number {
  const value = optional(params, name);
  return value === undefined ? fallback : (Number(value) ? 1 : 0);
}

function requireSuperUser(ctx: CallContext): void {
  if (ctx.access !== "superuser") throw new ApiError(MESSAGES.superUserRequired, 401);
}

function isValidTimezone(id: string): boolean {
  if (/^UTC([+-]\d{1,2}(\.\d+)?)?$/.test(id)) return true;
  return Intl.supportedValuesOf("timeZone").includes(id);
}

function isValidCurrency(code: string): boolean {
  return Intl.supportedValuesOf("currency").includes(code);
}

/** MySQL DATETIME text of an epoch-milliseconds instant, UTC. */
function mysqlDateTime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace("T", " ");
}

/** Brute-force detection: failed token logins per client IP inside a sliding window. */
class FailedLogins {
  #attempts = new Map<string, number[]>();

  constructor(
    private readonly max: number,
    private readonly windowMs: number,
    private readonly now: () => number,
  ) {}

  #recent(ip: string): number[] {
    const start = this.now() - this.windowMs;
    const recent = (this.#attempts.get(ip) ?? []).filter((at) => at > start);
    this.#attempts.set(ip, recent);
    return recent;
  }

  isBlocked(ip: string): boolean {
    return this.#recent(ip).length > this.max;
  }

  record(ip: string): void {
    this.#recent(ip).push(this.now());
  }

  clear(): void {
    this.#attempts.clear();
  }
}

const FAULT_MODES: FaultMode[] = ["none", "unavailable", "error500", "hang", "close", "delay"];

/** Checks a `POST /__standin/fault` body; returns the fault (null for `none`) or an error text. */
export function parseFault(input: unknown): { fault: Fault | null } | { error: string } {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return { error: "body must be a JSON object" };
  }
  const body = input as Record<string, unknown>;
  const unknownKeys = Object.keys(body).filter((k) =>
    !["mode", "methods", "count", "status", "ms"]
      .includes(k)
  );
  if (unknownKeys.length > 0) return { error: `unknown field(s): ${unknownKeys.join(", ")}` };
  if (!FAULT_MODES.includes(body.mode as FaultMode)) {
    return { error: `mode must be one of ${FAULT_MODES.join(", ")}` };
  }
  const mode = body.mode as FaultMode;
  const methods = body.methods;
  if (
    methods !== undefined &&
    (!Array.isArray(methods) || methods.length === 0 ||
      !methods.every((m) => typeof m === "string" && m !== ""))
  ) {
    return { error: "methods must be a non-empty array of API method names" };
  }
  const count = body.count;
  if (count !== undefined && (!Number.isInteger(count) || (count as number) < 1)) {
    return { error: "count must be a positive integer" };
  }
  const status = body.status ?? 502;
  if (status !== 502 && status !== 503) return { error: "status must be 502 or 503" };
  if (body.status !== undefined && mode !== "unavailable") {
    return { error: "status applies to mode unavailable only" };
  }
  const ms = body.ms ?? 0;
  if (!Number.isInteger(ms) || (ms as number) < 0) return { error: "ms must be an integer ≥ 0" };
  if (body.ms !== undefined && mode !== "delay") return { error: "ms applies to mode delay only" };
  if (mode === "none") return { fault: null };
  return {
    fault: {
      mode,
      methods: (methods as string[] | undefined) ?? null,
      remaining: (count as number | undefined) ?? null,
      status,
      ms: ms as number,
    },
  };
}

/**
 * Builds the stand-in. The handler serves Matomo's endpoints and the control API; call it
 * in-process with a constructed Request, or give it to `Deno.serve`.
 */
export function createMatomoStandin(opts: MatomoStandinOptions): MatomoStandinHandler {
  if (opts.token === "") throw new Error("matomo stand-in: the super-user token must not be empty");
  const now = opts.now ?? Date.now;
  const secureOnly = opts.onlyAllowSecureAuthTokens ?? false;
  const logLimit = opts.requestLogLimit ?? 1000;
  const store = new SiteStore(opts.stateFile);
  const failedLogins = new FailedLogins(
    opts.maxFailedLogins ?? 20,
    opts.failedLoginWindowMs ?? 60 * 60 * 1000,
    now,
  );
  let fault: Fault | null = null;
  let log: RequestLogEntry[] = [];
  let seq = 0;
  const hanging = new Set<() => void>();

  const methods: Record<string, (ctx: CallContext) => ApiValue> = {
    getSitesIdFromSiteUrl(ctx) {
      const url = required(ctx.params, "url");
      // Without super-user access only sites the user may view are searched: none for anonymous.
      if (ctx.access !== "superuser") return [];
      return store.findIdsByUrl(url).map((idsite) => ({ idsite }));
    },
    addSite(ctx) {
      const p = ctx.params;
      const siteName = required(p, "siteName");
      requireSuperUser(ctx);
      if (siteName === "0") throw new ApiError("The website name can't be empty.");
      const rawUrls = p.get("urls");
      const urls = cleanSiteUrls(rawUrls === undefined ? [] : phpValues(rawUrls));
      for (const url of urls) {
        if (!isLookLikeUrl(url)) throw new ApiError(`The url '${url}' is not a valid URL.`);
      }
      const timezone = optional(p, "timezone") ?? "UTC";
      if (!isValidTimezone(timezone)) {
        throw new ApiError(
          `The timezone "${timezone}" is not valid. Please enter a valid timezone.`,
        );
      }
      const currency = optional(p, "currency") ?? "USD";
      if (!isValidCurrency(currency)) {
        throw new ApiError(
          `The currency "${currency}" is not valid. Please enter a valid currency symbol (eg. USD, EUR, etc.)`,
        );
      }
      return store.add({
        name: siteName,
        main_url: urls[0] ?? "",
        alias_urls: urls.slice(1),
        ts_created: mysqlDateTime(now()),
        ecommerce: flag(p, "ecommerce", 0),
        sitesearch: flag(p, "siteSearch", 1),
        sitesearch_keyword_parameters: optional(p, "searchKeywordParameters") ?? "",
        sitesearch_category_parameters: optional(p, "searchCategoryParameters") ?? "",
        timezone,
        currency,
        exclude_unknown_urls: flag(p, "excludeUnknownUrls", 0),
        excluded_ips: optional(p, "excludedIps") ?? "",
        excluded_parameters: optional(p, "excludedQueryParameters") ?? "",
        excluded_user_agents: optional(p, "excludedUserAgents") ?? "",
        excluded_referrers: optional(p, "excludedReferrers") ?? "",
        group: optional(p, "group") ?? "",
        type: optional(p, "type") ?? "website",
        keep_url_fragment: Number(optional(p, "keepURLFragments") ?? 0) || 0,
        creator_login: "admin",
      });
    },
    deleteSite(ctx) {
      const raw = required(ctx.params, "idSite");
      requireSuperUser(ctx);
      const idsite = Number(raw);
      // PHP's in_array compares loosely: "7" and 7 are the same site.
      if (!/^[0-9]+$/.test(raw) || store.get(idsite) === undefined) {
        throw new ApiError(`website id = ${raw} not found`);
      }
      if (store.all().length === 1) throw new ApiError(MESSAGES.lastSite);
      store.remove(idsite);
      return null;
    },
  };

  function dispatch(apiMethod: string, ctx: CallContext): Response {
    const name = apiMethod.replace(/^SitesManager\./, "");
    const method = Object.hasOwn(methods, name) ? methods[name] : undefined;
    if (method === undefined) return notModelledResponse(`the API method '${apiMethod}'`);
    try {
      return apiResponse(renderApiValue(method(ctx)));
    } catch (err) {
      if (err instanceof ApiError) return apiResponse(renderApiError(err.message), err.status);
      if (err instanceof NotModelled) return notModelledResponse(err.message);
      throw err;
    }
  }

  /** One Matomo request, after any fault: FrontController, authentication, API dispatch. */
  function matomo(path: string, php: PhpRequest, params: PhpArray, ip: string): Response {
    if (path !== "/" && path !== "/index.php") return nginxResponse(404);
    const apiMethod = apiMethodOf(params);
    if (apiMethod === null) {
      return notModelledResponse("a request without module=API and method=Plugin.method (the UI)");
    }
    // Login::onInitAuthenticationObject checks every API request before anything else.
    if (failedLogins.isBlocked(ip)) return htmlResponse(500, MESSAGES.blocked);

    const format = stringOf(params.get("format")) ?? "xml";
    if (format.toLowerCase() !== "json") return notModelledResponse(`format '${format}'`);

    let access: Access = "anonymous";
    const token = stringOf(params.get("token_auth")) ?? "";
    if (token !== "") {
      // Request::isTokenAuthProvidedSecurely: absent from GET, present in POST.
      const sentSecurely = !php.get.has("token_auth") && php.post.has("token_auth");
      if (token === opts.token && (sentSecurely || !secureOnly)) {
        access = "superuser";
      } else {
        failedLogins.record(ip);
        const message = sentSecurely ? MESSAGES.tokenRefusedPost : MESSAGES.tokenRefusedGet;
        // ExceptionHandler renders API errors only if Request::isApiRequest($_GET).
        if (apiMethodOf(php.get) !== null) {
          return apiResponse(renderApiError(message), 401);
        }
        return htmlResponse(401, message);
      }
    }
    return dispatch(apiMethod, { params, access });
  }

  function takeFault(apiMethod: string | null): Fault | null {
    if (fault === null) return null;
    if (fault.methods !== null && (apiMethod === null || !fault.methods.includes(apiMethod))) {
      return null;
    }
    const taken = { ...fault };
    if (fault.remaining !== null) {
      fault.remaining -= 1;
      if (fault.remaining === 0) fault = null;
    }
    return taken;
  }

  function answerWithFault(
    taken: Fault,
    req: Request,
    answer: () => Response,
  ): Promise<Response> | Response {
    switch (taken.mode) {
      case "delay":
        return new Promise((resolve) => setTimeout(() => resolve(answer()), taken.ms));
      case "unavailable":
        return nginxResponse(taken.status);
      case "error500":
        return htmlResponse(500, MESSAGES.databaseDown);
      case "close":
        // An erroring body makes Deno drop the connection before sending a single byte.
        return new Response(
          new ReadableStream({
            start(controller) {
              controller.error(new Error("matomo stand-in: connection dropped (fault close)"));
            },
          }),
          // Never reaches the client (nothing is sent); lets the process log say what happened.
          { headers: { [DROPPED_HEADER]: "1" } },
        );
      case "hang":
        // No answer until reset (then nginx's 504) or until the client goes away.
        return new Promise((resolve) => {
          const release = () => {
            hanging.delete(release);
            resolve(nginxResponse(504));
          };
          hanging.add(release);
          // The client may already be gone: the body was read before the fault was chosen.
          if (req.signal.aborted) release();
          else req.signal.addEventListener("abort", release, { once: true });
        });
    }
  }

  function reset(): void {
    store.clear();
    failedLogins.clear();
    fault = null;
    log = [];
    for (const release of [...hanging]) release();
  }

  async function control(req: Request, route: string): Promise<Response> {
    const routes: Record<string, Record<string, () => Response | Promise<Response>>> = {
      health: { GET: () => jsonResponse({ ok: true, pid: Deno.pid, version: MATOMO_VERSION }) },
      sites: { GET: () => jsonResponse(store.all()) },
      requests: { GET: () => jsonResponse(log) },
      fault: {
        GET: () => jsonResponse({ fault }),
        POST: async () => {
          let body: unknown;
          try {
            body = await req.json();
          } catch {
            return jsonResponse({ error: "body must be JSON" }, 400);
          }
          const parsed = parseFault(body);
          if ("error" in parsed) return jsonResponse({ error: parsed.error }, 400);
          fault = parsed.fault;
          return jsonResponse({ fault });
        },
      },
      reset: {
        POST: () => {
          reset();
          return jsonResponse({ ok: true });
        },
      },
      unblock: {
        POST: () => {
          failedLogins.clear();
          return jsonResponse({ ok: true });
        },
      },
    };
    const byMethod = Object.hasOwn(routes, route) ? routes[route] : undefined;
    if (byMethod === undefined) return jsonResponse({ error: `no control route '${route}'` }, 404);
    const action = Object.hasOwn(byMethod, req.method) ? byMethod[req.method] : undefined;
    if (action === undefined) {
      return new Response(JSON.stringify({ error: `use ${Object.keys(byMethod).join(" or ")}` }), {
        status: 405,
        headers: { "content-type": "application/json", allow: Object.keys(byMethod).join(", ") },
      });
    }
    return await action();
  }

  return async function handle(req: Request, info: ClientInfo): Promise<Response> {
    const started = performance.now();
    const url = new URL(req.url);
    if (url.pathname.startsWith(CONTROL_PREFIX)) {
      return await control(req, url.pathname.slice(CONTROL_PREFIX.length));
    }
    const php = await readPhpRequest(req);
    const params = mergeGetWins(php.get, php.post);
    const inQuery = php.get.has("token_auth");
    const inBody = php.post.has("token_auth");
    const entry: RequestLogEntry = {
      seq: ++seq,
      at: new Date(now()).toISOString(),
      httpMethod: req.method,
      path: url.pathname,
      apiMethod: stringOf(params.get("method")),
      queryKeys: php.queryKeys,
      bodyKeys: php.bodyKeys,
      tokenIn: inQuery && inBody ? "query+body" : inQuery ? "query" : inBody ? "body" : "none",
      status: null,
      fault: null,
      duration_ms: null,
    };
    log.push(entry);
    if (log.length > logLimit) log = log.slice(log.length - logLimit);

    const ip = "hostname" in info.remoteAddr ? info.remoteAddr.hostname : "local";
    const answer = () => matomo(url.pathname, php, params, ip);
    const taken = takeFault(entry.apiMethod);
    entry.fault = taken?.mode ?? null;
    const response = taken === null ? answer() : await answerWithFault(taken, req, answer);
    if (taken?.mode !== "close") {
      entry.status = response.status;
      entry.duration_ms = Math.round((performance.now() - started) * 10) / 10;
    }
    return response;
  };
}

function requiredEnv(name: string): string {
  const value = Deno.env.get(name);
  if (value === undefined || value === "") {
    console.error(`matomo stand-in: ${name} is not set`);
    Deno.exit(2);
  }
  return value;
}

/** Serves the stand-in on 127.0.0.1:$HA_MATOMO_PORT with sites in $HA_STACK_DIR/matomo/. */
async function main(): Promise<void> {
  const token = requiredEnv("MATOMO_STANDIN_TOKEN");
  const port = Number(requiredEnv("HA_MATOMO_PORT"));
  const stackDir = requiredEnv("HA_STACK_DIR");
  const handler = createMatomoStandin({
    token,
    stateFile: `${stackDir}/matomo/sites.json`,
    onlyAllowSecureAuthTokens: Deno.env.get("MATOMO_STANDIN_ONLY_ALLOW_SECURE_AUTH_TOKENS") === "1",
  });
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port,
    onListen: ({ hostname, port }) => {
      console.log(`matomo stand-in ${MATOMO_VERSION} listening on http://${hostname}:${port}/`);
    },
  }, async (req, info) => {
    const response = await handler(req, info);
    // Path and status only: the query string may carry a token.
    const outcome = response.headers.has(DROPPED_HEADER) ? "dropped" : response.status;
    console.log(
      `${new Date().toISOString()} ${req.method} ${new URL(req.url).pathname} ${outcome}`,
    );
    return response;
  });
  const stop = async () => {
    // Hanging requests would hold a graceful shutdown forever; give it a second.
    await Promise.race([server.shutdown(), new Promise((r) => setTimeout(r, 1000))]);
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  await server.finished;
}

if (import.meta.main) await main();
