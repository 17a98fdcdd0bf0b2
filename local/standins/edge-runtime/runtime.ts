// Edge-runtime stand-in: runs each Edge Function as its own Deno process (a worker) behind one port.
//
// Replaces: Supabase's edge runtime (main worker + per-function user workers) behind
// `/functions/v1`: limits, background tasks, env and permissions as docs/supabase.md gives them
// (#edge-function-limits, #background-work-and-shutdown, #environment-and-secrets,
// #npmssh2-in-the-edge-runtime).
// Follows: one worker per `supabase/functions/<name>/index.ts` (not `_*`, not `tests`);
// requests `/<name>/…` reach that worker with the original path; a worker's permissions are those
// of a hosted user worker (net, env, read, write=/tmp, sys=hostname; no run, no ffi); its env is
// exactly the dotenv file plus SB_EXECUTION_ID (and what Deno itself needs: HOME, DENO_DIR,
// DENO_TLS_CA_STORE, NO_COLOR, PATH, NPM_CONFIG_REGISTRY); wall clock 400 s by default
// (`HA_EDGE_WALL_CLOCK_MS`); memory capped at 256 MB through V8's old-space limit.
// Differs: no CPU-time limit, no isolates (each worker is a process), the import map is the
// repository's root deno.json for every function, workers are started at boot and restarted on the
// next request after they exit (hosted starts them on demand and may run several per function).
// A rewritten functions.env is picked up like `supabase secrets set`: the next request retires the
// running worker (SIGTERM, beforeunload, grace period) and starts one with the new env.
// Logs: every stdout/stderr line of every worker is appended unchanged (no prefix, no envelope)
// to `$HA_STACK_DIR/logs/functions.log`; the runtime's own messages go to its stdout.
//
// Run (by `up`): deno run --allow-net --allow-env --allow-read --allow-write --allow-run runtime.ts
// Settings: HA_EDGE_PORT, HA_STACK_DIR, HA_ROOT; optional HA_FUNCTIONS_DIR (default
// $HA_ROOT/supabase/functions), HA_FUNCTIONS_ENV_FILE (default $HA_STACK_DIR/functions.env),
// HA_EDGE_WALL_CLOCK_MS (400000), HA_EDGE_GRACE_MS (3000), HA_EDGE_BOOT_TIMEOUT_MS (120000).

import { join } from "node:path";
import { readDotenvFile } from "./dotenv.ts";
import { listFunctions } from "./functions_dir.ts";
import { forwardedRequestHeaders, relayedResponseHeaders } from "../proxy_headers.ts";

/** Parent variables a worker inherits because Deno itself needs them. */
export const DENO_PASSTHROUGH_ENV = [
  "HOME",
  "DENO_DIR",
  "DENO_TLS_CA_STORE",
  "NO_COLOR",
  "PATH",
  "NPM_CONFIG_REGISTRY",
] as const;

export interface RuntimeOptions {
  functionsDir: string;
  envFile: string;
  denoConfig: string;
  functionsLogFile: string;
  wallClockMs: number;
  graceMs: number;
  bootTimeoutMs: number;
  /** Variables passed to workers besides the dotenv file (normally DENO_PASSTHROUGH_ENV's). */
  passthroughEnv: Record<string, string>;
  /** The runtime's own log (boot, exit, restart). */
  log: (message: string) => void;
}

type WorkerState = "stopped" | "booting" | "running" | "failed";

interface Worker {
  name: string;
  state: WorkerState;
  port?: number;
  child?: Deno.ChildProcess;
  exited?: Promise<Deno.CommandStatus>;
  booting?: Promise<number>;
  lastError?: string;
  /** The env file's modification stamp the running worker was started with. */
  envStamp?: string;
}

class BootError extends Error {
  constructor(readonly functionName: string, detail: string) {
    super(`worker for ${functionName} failed to boot: ${detail}`);
    this.name = "BootError";
  }
}

function jsonResponse(body: unknown, status: number): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

const NOT_FOUND = { code: "NOT_FOUND", message: "Requested function was not found" };

/** Serialises whole lines into one append-only file, so lines of different workers never mix. */
class LineSink {
  #file: Promise<Deno.FsFile>;
  #queue: Promise<void> = Promise.resolve();
  #encoder = new TextEncoder();

  constructor(path: string) {
    this.#file = Deno.open(path, { append: true, create: true });
  }

  write(line: string): Promise<void> {
    const bytes = this.#encoder.encode(line + "\n");
    this.#queue = this.#queue.then(async () => {
      const file = await this.#file;
      let offset = 0;
      while (offset < bytes.length) offset += await file.write(bytes.subarray(offset));
    });
    return this.#queue;
  }

  async close(): Promise<void> {
    await this.#queue.catch(() => {});
    (await this.#file).close();
  }
}

async function pipeLines(stream: ReadableStream<Uint8Array>, sink: LineSink): Promise<void> {
  let buffer = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let newline: number;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      await sink.write(buffer.slice(0, newline));
      buffer = buffer.slice(newline + 1);
    }
  }
  if (buffer !== "") await sink.write(buffer);
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

async function canConnect(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** True when `promise` settles within `ms`; the timer is always cleared. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: number | undefined;
  try {
    return await Promise.race([
      promise.then(() => true, () => true),
      new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export interface Runtime {
  /** Routes `/<name>/…` to the function's worker; `/_internal/health` reports the workers. */
  handler(request: Request): Promise<Response>;
  /** Starts every function's worker, one after the other. */
  bootAll(): Promise<void>;
  /** The worker's OS process id, for tests and diagnostics. */
  workerPid(name: string): number | undefined;
  /** Stops every worker (SIGTERM, then SIGKILL after the grace period) and closes the log. */
  shutdown(): Promise<void>;
}

export function createRuntime(options: RuntimeOptions): Runtime {
  const workers = new Map<string, Worker>();
  const retired = new Set<{ child: Deno.ChildProcess; exited: Promise<Deno.CommandStatus> }>();
  const sink = new LineSink(options.functionsLogFile);
  const bootstrapUrl = new URL("./worker_bootstrap.ts", import.meta.url);
  let booted = false;
  let closing = false;

  async function knownWorker(name: string): Promise<Worker | undefined> {
    if (!workers.has(name)) {
      // A function folder created after boot is picked up on its first request.
      for (const found of await listFunctions(options.functionsDir)) {
        if (!workers.has(found)) workers.set(found, { name: found, state: "stopped" });
      }
    }
    return workers.get(name);
  }

  /** Changes whenever the env file is rewritten (secrets apply to new workers, as hosted). */
  async function envStamp(): Promise<string> {
    const info = await Deno.stat(options.envFile);
    return `${info.mtime?.getTime()}:${info.size}`;
  }

  async function workerEnv(): Promise<Record<string, string>> {
    const fromFile = await readDotenvFile(options.envFile);
    return { ...options.passthroughEnv, ...fromFile, SB_EXECUTION_ID: crypto.randomUUID() };
  }

  async function boot(worker: Worker): Promise<number> {
    worker.state = "booting";
    worker.envStamp = await envStamp();
    const port = freePort();
    const entry = new URL(`file://${join(options.functionsDir, worker.name, "index.ts")}`);
    const command = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--no-prompt",
        "--config",
        options.denoConfig,
        "--allow-net",
        "--allow-env",
        "--allow-read",
        "--allow-write=/tmp",
        "--allow-sys=hostname",
        "--deny-run",
        "--deny-ffi",
        "--v8-flags=--max-old-space-size=256",
        bootstrapUrl.href,
        entry.href,
        String(port),
        String(options.wallClockMs),
        String(options.graceMs),
      ],
      clearEnv: true,
      env: await workerEnv(),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    });
    const child = command.spawn();
    worker.child = child;
    worker.port = port;
    const logsDone = Promise.all([pipeLines(child.stdout, sink), pipeLines(child.stderr, sink)]);
    worker.exited = child.status.then(async (status) => {
      await logsDone.catch(() => {});
      if (worker.child === child) {
        worker.state = worker.state === "booting" ? "failed" : "stopped";
        worker.child = undefined;
      }
      if (!closing) {
        options.log(`worker ${worker.name} (pid ${child.pid}) exited with code ${status.code}`);
      }
      return status;
    });

    const deadline = Date.now() + options.bootTimeoutMs;
    let exitedEarly = false;
    worker.exited.then(() => exitedEarly = true);
    while (!exitedEarly) {
      if (await canConnect(port)) {
        worker.state = "running";
        options.log(`worker ${worker.name} (pid ${child.pid}) listening on 127.0.0.1:${port}`);
        return port;
      }
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new BootError(worker.name, `not listening after ${options.bootTimeoutMs} ms`);
      }
      await delay(50);
    }
    throw new BootError(worker.name, "the process exited (see functions.log)");
  }

  /** Sends the worker away (SIGTERM: beforeunload, then its grace period) without waiting. */
  function retire(worker: Worker, why: string): void {
    const { child, exited } = worker;
    if (!child || !exited) return;
    const retiree = { child, exited };
    retired.add(retiree);
    exited.finally(() => retired.delete(retiree));
    worker.child = undefined;
    worker.state = "stopped";
    options.log(`worker ${worker.name} (pid ${child.pid}) retired: ${why}`);
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
  }

  async function ensureRunning(worker: Worker): Promise<number> {
    const running = worker.child;
    if (worker.state === "running" && running && worker.port) {
      const port = worker.port;
      if (await envStamp() === worker.envStamp) return port;
      if (worker.child === running) retire(worker, "functions.env changed");
    }
    if (!worker.booting) {
      worker.booting = boot(worker).catch((err) => {
        worker.state = "failed";
        worker.lastError = err instanceof Error ? err.message : String(err);
        options.log(worker.lastError);
        throw err;
      }).finally(() => worker.booting = undefined);
    }
    return await worker.booting;
  }

  async function forward(port: number, request: Request, body: ArrayBuffer | undefined) {
    const url = new URL(request.url);
    const headers = forwardedRequestHeaders(request.headers);
    return await fetch(`http://127.0.0.1:${port}${url.pathname}${url.search}`, {
      method: request.method,
      headers,
      body,
      redirect: "manual",
    });
  }

  function relay(response: Response): Response {
    const headers = relayedResponseHeaders(response.headers);
    return new Response(response.body, {
      status: response.status,
      statusText: response.statusText,
      headers,
    });
  }

  async function handler(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const name = url.pathname.split("/")[1] ?? "";
    if (name === "_internal" && url.pathname === "/_internal/health") {
      const functions = Object.fromEntries([...workers.values()].map((w) => [w.name, w.state]));
      return jsonResponse({ message: booted ? "ok" : "booting", functions }, booted ? 200 : 503);
    }
    const worker = name ? await knownWorker(name) : undefined;
    if (!worker) return jsonResponse(NOT_FOUND, 404);

    const body = request.method === "GET" || request.method === "HEAD"
      ? undefined
      : await request.arrayBuffer();
    for (let attempt = 1;; attempt++) {
      let port: number;
      try {
        port = await ensureRunning(worker);
      } catch {
        return jsonResponse({
          code: "BOOT_ERROR",
          message: "Worker failed to boot (please check logs)",
        }, 503);
      }
      try {
        return relay(await forward(port, request, body));
      } catch (err) {
        // Refused means the request never reached the worker (it is exiting or gone): safe to
        // start a fresh worker and send it again. Anything else may have been half-processed.
        const refused = err instanceof Error && /refused/i.test(err.message);
        if (refused && attempt === 1) {
          if (worker.port === port) {
            worker.child?.kill("SIGKILL");
            await worker.exited;
          }
          continue;
        }
        options.log(`request to ${worker.name} failed: ${err}`);
        return jsonResponse({
          code: "WORKER_ERROR",
          message: "Function exited due to an error (please check logs)",
        }, 500);
      }
    }
  }

  async function bootAll(): Promise<void> {
    for (const name of await listFunctions(options.functionsDir)) {
      const worker = await knownWorker(name);
      if (worker) await ensureRunning(worker).catch(() => {});
    }
    booted = true;
  }

  async function stop(child: Deno.ChildProcess, exited: Promise<unknown>): Promise<void> {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    if (!await settlesWithin(exited, options.graceMs + 2000)) {
      try {
        child.kill("SIGKILL");
      } catch { /* exited meanwhile */ }
      await exited;
    }
  }

  async function shutdown(): Promise<void> {
    closing = true;
    await Promise.all([
      ...[...workers.values()].map(async (worker) => {
        await worker.booting?.catch(() => {});
        if (worker.child && worker.exited) await stop(worker.child, worker.exited);
      }),
      ...[...retired].map((retiree) => stop(retiree.child, retiree.exited)),
    ]);
    await sink.close();
  }

  return {
    handler,
    bootAll,
    shutdown,
    workerPid: (name) => workers.get(name)?.child?.pid,
  };
}

function requiredEnv(name: string): string {
  const value = Deno.env.get(name);
  if (!value) throw new Error(`${name} is not set (source local/lib.sh first)`);
  return value;
}

function numberEnv(name: string, fallback: number): number {
  const raw = Deno.env.get(name);
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number, got ${raw}`);
  return value;
}

async function main(): Promise<void> {
  const stackDir = requiredEnv("HA_STACK_DIR");
  const root = requiredEnv("HA_ROOT");
  const port = Number(requiredEnv("HA_EDGE_PORT"));
  const envFile = Deno.env.get("HA_FUNCTIONS_ENV_FILE") || join(stackDir, "functions.env");
  await Deno.stat(envFile).catch(() => {
    throw new Error(`${envFile} is missing: local/stack writes it before starting this runtime`);
  });
  await Deno.mkdir(join(stackDir, "logs"), { recursive: true });

  const passthroughEnv: Record<string, string> = {};
  for (const key of DENO_PASSTHROUGH_ENV) {
    const value = Deno.env.get(key);
    if (value !== undefined) passthroughEnv[key] = value;
  }
  const log = (message: string) => console.log(`${new Date().toISOString()} ${message}`);
  const runtime = createRuntime({
    functionsDir: Deno.env.get("HA_FUNCTIONS_DIR") || join(root, "supabase", "functions"),
    envFile,
    denoConfig: join(root, "deno.json"),
    functionsLogFile: join(stackDir, "logs", "functions.log"),
    wallClockMs: numberEnv("HA_EDGE_WALL_CLOCK_MS", 400_000),
    graceMs: numberEnv("HA_EDGE_GRACE_MS", 3_000),
    bootTimeoutMs: numberEnv("HA_EDGE_BOOT_TIMEOUT_MS", 120_000),
    passthroughEnv,
    log,
  });

  const server = Deno.serve({
    hostname: "127.0.0.1",
    port,
    onListen: () => log(`edge-runtime stand-in listening on 127.0.0.1:${port}`),
  }, runtime.handler);

  let stopping = false;
  const stopAll = async () => {
    if (stopping) return;
    stopping = true;
    log("stopping workers");
    await runtime.shutdown();
    await server.shutdown();
    log("stopped");
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", () => void stopAll());
  Deno.addSignalListener("SIGINT", () => void stopAll());

  await runtime.bootAll();
  log("initial boot finished");
}

if (import.meta.main) await main();
