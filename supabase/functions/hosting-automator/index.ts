// Entry point of the Edge Function, and the only place that reads the environment: settings are
// checked once, the real adapters wired (app.ts), and the handler served.

import { createApp } from "./app.ts";

type EdgeRuntimeGlobal = { EdgeRuntime?: { waitUntil(work: Promise<unknown>): void } };
const edgeRuntime = (globalThis as EdgeRuntimeGlobal).EdgeRuntime;

const app = createApp(Deno.env.toObject(), (work) => edgeRuntime?.waitUntil(work));

// The platform announces the end of this instance (wall clock, CPU, memory, termination): record
// it and give the running sites back instead of leaving them to their leases.
addEventListener("beforeunload", (event) => {
  const reason = (event as CustomEvent<{ reason?: string }>).detail?.reason ?? "unknown";
  app.log("warn", "beforeunload", { msg: reason });
  const released = app.interrupt(reason);
  edgeRuntime?.waitUntil(released.finally(() => app.closeConnections()));
});

Deno.serve(app.fetch);
