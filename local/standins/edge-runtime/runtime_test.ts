// Tests of the edge-runtime stand-in against the fixture functions in testdata/functions.
// They spawn real worker processes; run with: deno test --allow-all local/standins/edge-runtime
import assert from "node:assert/strict";
import { join } from "node:path";
import { createRuntime, DENO_PASSTHROUGH_ENV, type Runtime } from "./runtime.ts";

const FUNCTIONS_DIR = new URL("./testdata/functions", import.meta.url).pathname;
const DENO_CONFIG = new URL("../../../deno.json", import.meta.url).pathname;

const DOTENV = [
  "PLAIN=plain value",
  "SINGLE='single quoted'",
  'DOUBLE="line1\\nline2"',
  "SUPABASE_URL=http://127.0.0.1:1",
].join("\n");

interface Fixture {
  runtime: Runtime;
  logFile: string;
  envFile: string;
  passthroughEnv: Record<string, string>;
  close(): Promise<void>;
}

async function startFixture(overrides: { wallClockMs?: number } = {}): Promise<Fixture> {
  const dir = await Deno.makeTempDir({ prefix: "ha-edge-runtime-test-" });
  const envFile = join(dir, "functions.env");
  await Deno.writeTextFile(envFile, DOTENV);
  const logFile = join(dir, "functions.log");
  const passthroughEnv: Record<string, string> = {};
  for (const key of DENO_PASSTHROUGH_ENV) {
    const value = Deno.env.get(key);
    if (value !== undefined) passthroughEnv[key] = value;
  }
  const runtime = createRuntime({
    functionsDir: FUNCTIONS_DIR,
    envFile,
    denoConfig: DENO_CONFIG,
    functionsLogFile: logFile,
    wallClockMs: overrides.wallClockMs ?? 400_000,
    graceMs: 3_000,
    bootTimeoutMs: 60_000,
    passthroughEnv,
    log: () => {},
  });
  await runtime.bootAll();
  return {
    runtime,
    logFile,
    envFile,
    passthroughEnv,
    async close() {
      await runtime.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function call(runtime: Runtime, path: string, init?: RequestInit) {
  const response = await runtime.handler(new Request(`http://edge.local${path}`, init));
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch { /* plain text */ }
  return { status: response.status, body: body as Record<string, unknown>, text, response };
}

async function logLines(logFile: string): Promise<Record<string, unknown>[]> {
  const text = await Deno.readTextFile(logFile).catch(() => "");
  return text.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
}

async function waitForLog(
  logFile: string,
  match: (line: Record<string, unknown>) => boolean,
  timeoutMs = 10_000,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const found = (await logLines(logFile)).find(match);
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no matching line in ${logFile}:\n${await Deno.readTextFile(logFile)}`);
}

async function waitForExit(pid: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      await Deno.stat(`/proc/${pid}`);
    } catch {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`process ${pid} still running`);
}

Deno.test("edge-runtime stand-in serves functions like hosted user workers", async (t) => {
  const fixture = await startFixture();
  const { runtime, logFile } = fixture;
  try {
    await t.step("the function's Deno.serve handler answers through the runtime", async () => {
      const { status, body } = await call(runtime, "/probe/info?x=1");
      assert.equal(status, 200);
      assert.equal(body.method, "GET");
      assert.equal(body.path, "/probe/info", "the worker sees the original path");
      assert.equal(body.search, "?x=1");
      assert.equal(body.hasWaitUntil, true);
    });

    await t.step("method, headers, body and status pass through both ways", async () => {
      const { status, body, response } = await call(runtime, "/probe/echo", {
        method: "POST",
        headers: { "content-type": "application/json", "x-probe": "yes" },
        body: '{"a":1}',
      });
      assert.equal(status, 201);
      assert.equal(response.headers.get("content-type"), "application/json");
      assert.equal(body.method, "POST");
      assert.equal(body.body, '{"a":1}');
      assert.equal((body.headers as Record<string, string>)["x-probe"], "yes");
    });

    await t.step("a default-export fetch module is served as well", async () => {
      const { status, text } = await call(runtime, "/served-default/deep/path");
      assert.equal(status, 200);
      assert.equal(text, "default export saw /served-default/deep/path");
    });

    await t.step(
      "env is exactly the dotenv entries, SB_EXECUTION_ID and Deno's needs",
      async () => {
        const { body } = await call(runtime, "/probe/info");
        const env = body.env as Record<string, string>;
        assert.deepEqual(
          Object.keys(env).sort(),
          [
            "DOUBLE",
            "PLAIN",
            "SB_EXECUTION_ID",
            "SINGLE",
            "SUPABASE_URL",
            ...Object.keys(fixture.passthroughEnv),
          ].sort(),
        );
        assert.equal(env.PLAIN, "plain value");
        assert.equal(env.SINGLE, "single quoted");
        assert.equal(env.DOUBLE, "line1\\nline2", "backslash-n is passed literally");
        assert.match(env.SB_EXECUTION_ID, /^[0-9a-f-]{36}$/);
        assert.equal(env.HA_STACK_DIR, undefined, "the parent's own settings do not leak");
      },
    );

    await t.step("Deno.Command is denied inside a worker", async () => {
      const { body } = await call(runtime, "/probe/run");
      assert.deepEqual(body, { ran: false, error: "NotCapable" });
    });

    await t.step("EdgeRuntime.waitUntil work completes after the response", async () => {
      const started = Date.now();
      const { status, body } = await call(runtime, "/probe/background?id=after&ms=400");
      assert.equal(status, 202);
      assert.equal(body.accepted, "after");
      assert.ok(Date.now() - started < 400, "the response does not wait for the background work");
      assert.equal(
        (await logLines(logFile)).some((l) => l.id === "after"),
        false,
        "background work not finished yet at response time",
      );
      const done = await waitForLog(
        logFile,
        (l) => l.event === "background-done" && l.id === "after",
      );
      assert.equal(done.pid, body.pid);
    });

    await t.step(
      "a rejected waitUntil promise is logged, and the worker keeps serving",
      async () => {
        const before = (await call(runtime, "/probe/info")).body.pid;
        assert.equal((await call(runtime, "/probe/reject")).status, 200);
        const line = await waitForLog(logFile, (l) => l.source === "edge-runtime");
        assert.equal(line.message, "EdgeRuntime.waitUntil promise rejected");
        assert.match(String(line.error), /background failure/);
        assert.equal((await call(runtime, "/probe/info")).body.pid, before);
      },
    );

    await t.step(
      "SIGTERM fires beforeunload(termination) and lets waitUntil work finish",
      async () => {
        const { body } = await call(runtime, "/probe/background?id=draining&ms=700");
        const pid = body.pid as number;
        assert.equal(runtime.workerPid("probe"), pid);
        Deno.kill(pid, "SIGTERM");
        await waitForExit(pid);
        const lines = await logLines(logFile);
        const unload = lines.findIndex((l) => l.event === "beforeunload" && l.pid === pid);
        const drained = lines.findIndex((l) =>
          l.event === "background-done" && l.id === "draining"
        );
        assert.ok(unload >= 0, "beforeunload was dispatched");
        assert.equal(lines[unload].reason, "termination");
        assert.ok(drained > unload, "the background work finished after beforeunload, before exit");
      },
    );

    await t.step("a dead worker is restarted on the next request", async () => {
      const { status, body } = await call(runtime, "/probe/info");
      assert.equal(status, 200);
      const pid = body.pid as number;
      Deno.kill(pid, "SIGKILL");
      await waitForExit(pid);
      const again = await call(runtime, "/probe/info");
      assert.equal(again.status, 200);
      assert.notEqual(again.body.pid, pid);
      assert.notEqual(
        (again.body.env as Record<string, string>).SB_EXECUTION_ID,
        (body.env as Record<string, string>).SB_EXECUTION_ID,
        "each worker gets its own execution id",
      );
    });

    await t.step("a rewritten functions.env reaches a fresh worker, like secrets set", async () => {
      const before = await call(runtime, "/probe/info");
      const oldPid = before.body.pid as number;
      await Deno.writeTextFile(fixture.envFile, DOTENV + "\nADDED=later\n");
      const after = await call(runtime, "/probe/info");
      assert.equal(after.status, 200);
      assert.notEqual(after.body.pid, oldPid);
      assert.equal((after.body.env as Record<string, string>).ADDED, "later");
      await waitForExit(oldPid);
      const unload = await waitForLog(
        logFile,
        (l) => l.event === "beforeunload" && l.pid === oldPid,
      );
      assert.equal(unload.reason, "termination");
      await Deno.writeTextFile(fixture.envFile, DOTENV);
    });

    await t.step("an unknown function and a tests folder are not found", async () => {
      for (const path of ["/nope", "/tests/x", "/_shared/json.ts", "/"]) {
        const { status, body } = await call(runtime, path);
        assert.equal(status, 404, path);
        assert.deepEqual(body, { code: "NOT_FOUND", message: "Requested function was not found" });
      }
    });

    await t.step("a function that throws while loading answers 503 BOOT_ERROR", async () => {
      const { status, body } = await call(runtime, "/broken");
      assert.equal(status, 503);
      assert.deepEqual(body, {
        code: "BOOT_ERROR",
        message: "Worker failed to boot (please check logs)",
      });
      assert.match(await Deno.readTextFile(logFile), /broken on purpose/);
    });

    await t.step("health lists each function's worker state once booted", async () => {
      const { status, body } = await call(runtime, "/_internal/health");
      assert.equal(status, 200);
      assert.equal(body.message, "ok");
      const functions = body.functions as Record<string, string>;
      assert.equal(functions.probe, "running");
      assert.equal(functions.broken, "failed");
      assert.equal(functions.tests, undefined);
    });
  } finally {
    await fixture.close();
  }
});

Deno.test("the wall-clock limit fires beforeunload(wall_clock) and a fresh worker takes over", async () => {
  const fixture = await startFixture({ wallClockMs: 1_500 });
  try {
    const first = await call(fixture.runtime, "/probe/info");
    const pid = first.body.pid as number;
    const unload = await waitForLog(
      fixture.logFile,
      (l) => l.event === "beforeunload" && l.pid === pid,
    );
    assert.equal(unload.reason, "wall_clock");
    await waitForExit(pid);
    const next = await call(fixture.runtime, "/probe/info");
    assert.equal(next.status, 200);
    assert.notEqual(next.body.pid, pid);
  } finally {
    await fixture.close();
  }
});
