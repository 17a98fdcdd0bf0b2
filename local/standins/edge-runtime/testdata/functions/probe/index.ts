// Test fixture for the edge-runtime stand-in: a function that reports what its worker sees.
import { json, logLine } from "../_shared/json.ts";

interface EdgeRuntimeApi {
  waitUntil<T>(promise: Promise<T>): Promise<T>;
}
const edgeRuntime = (globalThis as unknown as { EdgeRuntime?: EdgeRuntimeApi }).EdgeRuntime;

addEventListener("beforeunload", (event) => {
  const reason = (event as CustomEvent<{ reason?: string }>).detail?.reason;
  logLine({ fn: "probe", event: "beforeunload", reason, pid: Deno.pid });
});

Deno.serve(async (request) => {
  const url = new URL(request.url);
  const action = url.pathname.split("/")[2] ?? "";
  switch (action) {
    case "info":
      return json({
        method: request.method,
        path: url.pathname,
        search: url.search,
        pid: Deno.pid,
        env: Deno.env.toObject(),
        hasWaitUntil: typeof edgeRuntime?.waitUntil === "function",
      });
    case "echo":
      return json({
        method: request.method,
        body: await request.text(),
        headers: Object.fromEntries(request.headers),
      }, 201);
    case "run":
      try {
        await new Deno.Command("true").output();
        return json({ ran: true });
      } catch (err) {
        return json({ ran: false, error: (err as Error).name });
      }
    case "background": {
      const id = url.searchParams.get("id") ?? "none";
      const ms = Number(url.searchParams.get("ms") ?? "100");
      edgeRuntime!.waitUntil((async () => {
        await new Promise((resolve) => setTimeout(resolve, ms));
        logLine({ fn: "probe", event: "background-done", id, pid: Deno.pid });
      })());
      return json({ accepted: id, pid: Deno.pid }, 202);
    }
    case "reject":
      edgeRuntime!.waitUntil(Promise.reject(new Error("background failure")));
      return json({ ok: true });
    default:
      return json({ error: "unknown action" }, 404);
  }
});
