// Worker bootstrap: runs inside each function's Deno process before the function's index.ts.
//
// Replaces: the Supabase edge runtime's user-worker bootstrap
// (docs/supabase.md#background-work-and-shutdown).
// Follows: `EdgeRuntime.waitUntil(promise)` keeps work going after the response; `beforeunload`
// is a `CustomEvent` on globalThis with `detail.reason` (`termination`, `wall_clock`) dispatched
// just before shutdown; the function calls plain `Deno.serve(handler)` (any overload) and never
// learns its port; `export default { fetch }` modules are served too.
// Differs: a real worker is a V8 isolate inside one runtime process with CPU (2 s/request) and
// memory limits enforced by the runtime; here it is a plain Deno process (memory capped only by
// V8's old-space flag, no CPU limit). On SIGTERM it waits up to the grace period for waitUntil
// promises and in-flight requests, then exits. The wall-clock limit fires `beforeunload` with
// reason `wall_clock`, stops accepting requests and exits after the same grace period; the
// runtime starts a fresh worker on the next request.
//
// Usage (by runtime.ts only): deno run <permissions> worker_bootstrap.ts <entry-url> <port>
//   <wall-clock-ms> <grace-ms>

type Handler = (request: Request, info: Deno.ServeHandlerInfo) => Response | Promise<Response>;
type ServeOptions = Record<string, unknown> & { handler?: Handler };
type ShutdownReason = "termination" | "wall_clock";

const [entryUrl, portArg, wallClockArg, graceArg] = Deno.args;
const port = Number(portArg);
const wallClockMs = Number(wallClockArg);
const graceMs = Number(graceArg);
if (!entryUrl || !Number.isInteger(port) || !(wallClockMs > 0) || !(graceMs >= 0)) {
  console.error("worker_bootstrap: usage: <entry-url> <port> <wall-clock-ms> <grace-ms>");
  Deno.exit(2);
}

/** One line on stderr in the same one-JSON-object-per-line shape the functions use. */
function runtimeLog(level: "info" | "error", message: string, extra: Record<string, unknown> = {}) {
  console.error(JSON.stringify({ level, source: "edge-runtime", message, ...extra }));
}

const pending = new Set<Promise<void>>();

function waitUntil<T>(promise: Promise<T>): Promise<T> {
  const tracked: Promise<void> = Promise.resolve(promise).then(
    () => {},
    (err: unknown) => {
      runtimeLog("error", "EdgeRuntime.waitUntil promise rejected", {
        error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
      });
    },
  ).finally(() => pending.delete(tracked));
  pending.add(tracked);
  return promise;
}

Object.defineProperty(globalThis, "EdgeRuntime", {
  value: Object.freeze({ waitUntil }),
  enumerable: false,
  configurable: false,
  writable: false,
});

const originalServe = Deno.serve.bind(Deno) as (options: ServeOptions) => Deno.HttpServer;
let server: Deno.HttpServer | undefined;

function serveOnAssignedPort(...args: unknown[]): Deno.HttpServer {
  let options: ServeOptions = {};
  let handler: Handler | undefined;
  if (typeof args[0] === "function") {
    handler = args[0] as Handler;
    if (args[1] && typeof args[1] === "object") options = args[1] as ServeOptions;
  } else if (args[0] && typeof args[0] === "object") {
    options = args[0] as ServeOptions;
    handler = typeof args[1] === "function" ? args[1] as Handler : options.handler;
  }
  if (typeof handler !== "function") throw new TypeError("Deno.serve: a handler is required");
  if (server) throw new Error("Deno.serve was already called by this function");

  // The function's own port/hostname/unix path/TLS settings are replaced, as on Supabase.
  const { port: _p, hostname: _h, path: _u, cert: _c, key: _k, ...kept } = options;
  server = originalServe({
    ...kept,
    hostname: "127.0.0.1",
    port,
    onListen: typeof options.onListen === "function" ? options.onListen : () => {},
    handler,
  });
  return server;
}
(Deno as unknown as { serve: unknown }).serve = serveOnAssignedPort;

let shuttingDown = false;

async function shutdown(reason: ShutdownReason): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  try {
    globalThis.dispatchEvent(new CustomEvent("beforeunload", { detail: { reason } }));
  } catch (err) {
    runtimeLog("error", "beforeunload listener threw", { error: String(err) });
  }
  const deadline = Date.now() + graceMs;
  const stopped = server?.shutdown() ?? Promise.resolve();
  // waitUntil may be called again from a beforeunload listener, so drain until empty or deadline.
  while (Date.now() < deadline) {
    const outstanding = [...pending, stopped];
    const remaining = deadline - Date.now();
    let timer: number | undefined;
    const timedOut = await Promise.race([
      Promise.allSettled(outstanding).then(() => false),
      new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(true), remaining)),
    ]);
    clearTimeout(timer);
    if (timedOut || pending.size === 0) break;
  }
  if (pending.size > 0) {
    runtimeLog("error", "worker exiting with unfinished EdgeRuntime.waitUntil work", {
      reason,
      unfinished: pending.size,
    });
  }
  Deno.exit(0);
}

Deno.addSignalListener("SIGTERM", () => void shutdown("termination"));
const wallClockTimer = setTimeout(() => void shutdown("wall_clock"), wallClockMs);
Deno.unrefTimer(wallClockTimer);

const module = await import(entryUrl) as { default?: { fetch?: Handler } };
if (!server && typeof module.default?.fetch === "function") {
  const fetchHandler = module.default.fetch.bind(module.default);
  serveOnAssignedPort(fetchHandler);
}
// Give a function that calls Deno.serve right after a top-level await one more turn.
await new Promise((resolve) => setTimeout(resolve, 0));
if (!server) {
  runtimeLog("error", "the function did not call Deno.serve and has no default fetch export");
  Deno.exit(1);
}
