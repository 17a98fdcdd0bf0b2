// pg_net stand-in worker: sends the queued net.http_request_queue rows and records the answers.
// Stand-in for: pg_net's background worker (C, libcurl), which is not packaged for Debian.
// Follows docs/supabase.md#pg_net: connects to pg_net.database_name (default postgres);
// woken at COMMIT of a transaction that queued a request (NOTIFY pg_net_wake from net.wake()),
// and every second as a fallback; in ONE transaction it deletes up to pg_net.batch_size queued rows
// (DELETE … RETURNING, oldest first), performs them concurrently, each with a total deadline of
// timeout_milliseconds (redirects followed, http/https only, User-Agent pg_net/<version>), inserts
// one net._http_response row per request, and commits only when the whole batch finished; then
// deletes responses older than pg_net.ttl. Settings are re-read every round, so ALTER SYSTEM +
// pg_reload_conf() applies as for pg_net's SIGHUP settings. Transport failures leave status_code
// and content null, with libcurl's error text in error_msg; a timeout sets timed_out and pg_net's
// "Timeout of N ms reached. Total time: …" message.
// Differs: it is a client connection named 'pg_net <version> worker', not a background worker;
// requests go through Deno's fetch, so response header names arrive lower-cased, the timeout
// message cannot split the time into DNS/handshake/HTTP phases (all of it is reported as HTTP
// time), a GET with a body (only possible by inserting into the queue directly) is refused, and
// other transport errors are mapped to libcurl's texts by a small table (unknown ones keep Deno's
// text). SIGTERM lets the running batch finish, then exits; a second SIGTERM exits at once (the
// open batch rolls back and its requests stay queued).

import postgres from "postgres";

export const PG_NET_VERSION = "0.20.4";
export const WORKER_APPLICATION_NAME = `pg_net ${PG_NET_VERSION} worker`;
const DEFAULT_BATCH_SIZE = 200;
const DEFAULT_TTL = "6 hours";
const FALLBACK_POLL_MS = 1000;

/** A row taken from net.http_request_queue. */
export interface QueuedRequest {
  id: string;
  method: string;
  url: string;
  headers: Record<string, unknown> | null;
  body: Uint8Array | null;
  timeout_milliseconds: number;
}

/** A row for net._http_response. */
export interface ResponseRow {
  id: string;
  status_code: number | null;
  content_type: string | null;
  headers: Record<string, string> | null;
  content: string | null;
  timed_out: boolean;
  error_msg: string | null;
}

type Fetch = (input: string, init: RequestInit) => Promise<Response>;

class RequestTimeout extends Error {
  constructor(readonly timeoutMs: number) {
    super(`Timeout of ${timeoutMs} ms reached`);
    this.name = "RequestTimeout";
  }
}

export function timeoutMessage(timeoutMs: number, totalMs: number): string {
  const ms = (value: number) => value.toFixed(6);
  return `Timeout of ${timeoutMs} ms reached. Total time: ${ms(totalMs)} ms ` +
    `(DNS time: ${ms(0)} ms, TCP/SSL handshake time: ${ms(0)} ms, ` +
    `HTTP Request/Response time: ${ms(totalMs)} ms)`;
}

// Deno's fetch error text → libcurl's curl_easy_strerror() text for the same failure.
const CURL_ERROR_TEXTS: Array<[RegExp, string]> = [
  [/dns error|failed to lookup address|name or service not known/i, "Couldn't resolve host name"],
  [/connection refused|tcp connect error|network is unreachable/i, "Couldn't connect to server"],
  [/certificate|invalid peer/i, "SSL peer certificate or SSH remote key was not OK"],
  [/tls|handshake/i, "SSL connect error"],
  [/redirect/i, "Number of redirects hit maximum amount"],
  [/connection closed before message completed/i, "Server returned nothing (no headers, no data)"],
  [
    /connection reset|broken pipe|unexpected eof|error reading a body/i,
    "Failure when receiving data from the peer",
  ],
];

export function curlErrorText(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : "";
  for (const [pattern, curlText] of CURL_ERROR_TEXTS) {
    if (pattern.test(message) || pattern.test(cause)) return curlText;
  }
  return message;
}

function failed(id: string, errorMessage: string, timedOut = false): ResponseRow {
  return {
    id,
    status_code: null,
    content_type: null,
    headers: null,
    content: null,
    timed_out: timedOut,
    error_msg: errorMessage,
  };
}

/** Request headers as curl would send them, or the reason the request must not be sent. */
export function requestHeaders(request: QueuedRequest): Headers | string {
  const headers = new Headers();
  for (const [name, value] of Object.entries(request.headers ?? {})) {
    if (value === null) continue;
    const text = typeof value === "string" ? value : JSON.stringify(value);
    if (/[\r\n]/.test(name) || /[\r\n]/.test(text)) {
      return `header "${name}" contains a carriage return or line feed`;
    }
    try {
      headers.append(name, text);
    } catch (error) {
      return `header "${name}" is not valid: ${error instanceof Error ? error.message : error}`;
    }
  }
  if (!headers.has("user-agent")) headers.set("user-agent", `pg_net/${PG_NET_VERSION}`);
  // curl sends a body without a type as a form (CURLOPT_POSTFIELDS).
  if (request.body !== null && !headers.has("content-type")) {
    headers.set("content-type", "application/x-www-form-urlencoded");
  }
  return headers;
}

/** Sends one request and describes the outcome as a net._http_response row. Never throws. */
export async function performRequest(
  request: QueuedRequest,
  fetchImpl: Fetch = fetch,
  now: () => number = () => performance.now(),
): Promise<ResponseRow> {
  const timeoutMs = request.timeout_milliseconds;
  if (!(timeoutMs >= 1)) {
    return failed(request.id, `timeout_milliseconds must be at least 1, got ${timeoutMs}`);
  }
  let url: URL;
  try {
    url = new URL(request.url);
  } catch {
    return failed(request.id, "URL using bad/illegal format or missing URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return failed(request.id, "Unsupported protocol");
  }
  const method = request.method.toUpperCase();
  if (method === "GET" && request.body !== null) {
    return failed(request.id, "local pg_net stand-in: a GET request with a body is not supported");
  }
  const headers = requestHeaders(request);
  if (typeof headers === "string") return failed(request.id, headers);

  const started = now();
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new RequestTimeout(timeoutMs)), timeoutMs);
  try {
    const response = await fetchImpl(url.href, {
      method,
      headers,
      body: request.body ?? undefined,
      redirect: "follow",
      signal: controller.signal,
    });
    const bytes = new Uint8Array(await response.arrayBuffer());
    // libcurl's body is a C string: it ends at the first NUL, and an empty body is stored as null.
    const nul = bytes.indexOf(0);
    const content = new TextDecoder().decode(nul === -1 ? bytes : bytes.subarray(0, nul));
    return {
      id: request.id,
      status_code: response.status,
      content_type: response.headers.get("content-type"),
      headers: Object.fromEntries(response.headers),
      content: content === "" ? null : content,
      timed_out: false,
      error_msg: null,
    };
  } catch (error) {
    if (controller.signal.aborted) {
      return failed(request.id, timeoutMessage(timeoutMs, now() - started), true);
    }
    return failed(request.id, curlErrorText(error));
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// The loop against Postgres.

type Sql = ReturnType<typeof postgres>;

interface Settings {
  batchSize: number;
  ttl: string;
}

function log(message: string): void {
  console.log(`${new Date().toISOString()} ${message}`);
}

/** Where a request went, without the query string (it may hold credentials). */
function describe(url: string): string {
  try {
    const { origin, pathname } = new URL(url);
    return origin + pathname;
  } catch {
    return "(invalid url)";
  }
}

class Wakeup {
  private pending = true;
  private resolve: (() => void) | null = null;

  signal(): void {
    this.pending = true;
    this.resolve?.();
  }

  /** Resolves at the next signal (or at once if one came since the last wait), or after `ms`. */
  wait(ms: number): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.resolve = null;
        this.pending = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.resolve = done;
    });
  }
}

async function readSettings(sql: Sql): Promise<Settings> {
  const [row] = await sql<{ batch_size: string | null; ttl: string | null }[]>`
    select current_setting('pg_net.batch_size', true) as batch_size,
           current_setting('pg_net.ttl', true) as ttl`;
  const batchSize = Number(row.batch_size);
  return {
    batchSize: row.batch_size && Number.isInteger(batchSize) && batchSize >= 0 && batchSize <= 32767
      ? batchSize
      : DEFAULT_BATCH_SIZE,
    ttl: row.ttl || DEFAULT_TTL,
  };
}

async function extensionReady(sql: Sql): Promise<boolean> {
  const [row] = await sql<{ ready: boolean }[]>`
    select to_regclass('net.http_request_queue') is not null
       and to_regclass('net._http_response') is not null as ready`;
  return row.ready;
}

/** One batch in one transaction; returns how many requests it took. */
async function runBatch(sql: Sql, batchSize: number): Promise<number> {
  if (batchSize === 0) return 0;
  return await sql.begin(async (tx) => {
    const rows = await tx<QueuedRequest[]>`
      with taken as (
        select id from net.http_request_queue order by id limit ${batchSize}
      )
      delete from net.http_request_queue q
      using taken
      where q.id = taken.id
      returning q.id::text as id, q.method::text as method, q.url, q.headers, q.body,
                q.timeout_milliseconds`;
    if (rows.length === 0) return 0;
    const started = performance.now();
    const results = await Promise.all(rows.map((row) => performRequest(row)));
    await tx`
      insert into net._http_response
        (id, status_code, content_type, headers, content, timed_out, error_msg)
      select id, status_code, content_type, headers, content, timed_out, error_msg
      from jsonb_to_recordset(${tx.json(results as unknown as postgres.JSONValue)}) as r(
        id bigint, status_code int, content_type text, headers jsonb, content text,
        timed_out bool, error_msg text)`;
    for (const [index, result] of results.entries()) {
      const outcome = result.error_msg ?? String(result.status_code);
      log(`request ${result.id} ${rows[index].method} ${describe(rows[index].url)}: ${outcome}`);
    }
    log(`batch of ${rows.length} done in ${Math.round(performance.now() - started)} ms`);
    return rows.length;
  });
}

async function deleteExpiredResponses(sql: Sql, settings: Settings): Promise<number> {
  const deleted = await sql`
    with expired as (
      select ctid from net._http_response
      where created < now() - ${settings.ttl}::interval
      order by created
      limit ${settings.batchSize}
    )
    delete from net._http_response r using expired where r.ctid = expired.ctid`;
  return deleted.count;
}

interface Control {
  stopping: boolean;
  wakeup: Wakeup;
}

function connect(url: string, database?: string, onclose: () => void = () => {}): Sql {
  return postgres(url, {
    ...(database ? { database } : {}),
    max: 1,
    idle_timeout: 0,
    connection: { application_name: WORKER_APPLICATION_NAME },
    onnotice: () => {},
    onclose,
  });
}

/** Runs until stopped or asked to restart; throws when the connection fails. */
async function serve(dbUrl: string, control: Control): Promise<void> {
  const probe = connect(dbUrl);
  let database: string;
  try {
    const [row] = await probe<{ name: string }[]>`
      select coalesce(nullif(current_setting('pg_net.database_name', true), ''), 'postgres') as name`;
    database = row.name;
  } finally {
    await probe.end({ timeout: 5 });
  }

  let restart = false;
  let ending = false;
  // A lost connection (e.g. Postgres restarted) may have taken the LISTEN connection with it, and
  // postgres.js gives up re-listening while the server is down: start over, as pg_net's worker
  // is restarted by the postmaster.
  const sql = connect(dbUrl, database, () => {
    if (ending) return;
    log("connection lost: reconnecting");
    restart = true;
    control.wakeup.signal();
  });
  try {
    await sql.listen("pg_net_wake", () => control.wakeup.signal());
    await sql.listen("pg_net_restart", () => {
      log("restart requested by net.worker_restart()");
      restart = true;
      control.wakeup.signal();
    });
    const settings = await readSettings(sql);
    log(
      `${WORKER_APPLICATION_NAME} started: database=${database} ` +
        `pg_net.batch_size=${settings.batchSize} pg_net.ttl=${settings.ttl}`,
    );
    control.wakeup.signal(); // look at the queue once at start: requests may be waiting
    let waitingLogged = false;
    while (!control.stopping && !restart) {
      await control.wakeup.wait(FALLBACK_POLL_MS);
      if (control.stopping || restart) break;
      if (!(await extensionReady(sql))) {
        if (!waitingLogged) log("waiting for the pg_net extension to be created");
        waitingLogged = true;
        continue;
      }
      waitingLogged = false;
      let full: boolean;
      do {
        const current = await readSettings(sql);
        const taken = await runBatch(sql, current.batchSize);
        const expired = await deleteExpiredResponses(sql, current);
        full = current.batchSize > 0 &&
          (taken === current.batchSize || expired === current.batchSize);
      } while (full && !control.stopping && !restart);
    }
    if (restart) log("restarting");
  } finally {
    ending = true;
    await sql.end({ timeout: 5 });
  }
}

async function main(): Promise<void> {
  const dbUrl = Deno.env.get("HA_DB_URL");
  if (!dbUrl) {
    console.error("HA_DB_URL is not set (source $HA_STACK_DIR/stack.env)");
    Deno.exit(2);
  }
  const control: Control = { stopping: false, wakeup: new Wakeup() };
  const stop = () => {
    if (control.stopping) {
      log("second stop signal: exiting now");
      Deno.exit(1);
    }
    log("stop signal: finishing the running batch");
    control.stopping = true;
    control.wakeup.signal();
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);

  while (!control.stopping) {
    try {
      await serve(dbUrl, control);
    } catch (error) {
      if (control.stopping) break;
      log(`worker error: ${error instanceof Error ? error.message : error}; retrying in 1 s`);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  log("stopped");
  Deno.exit(0);
}

if (import.meta.main) await main();
