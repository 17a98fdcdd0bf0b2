// DNS-over-HTTPS stand-in: the JSON flavour of a public resolver (Cloudflare's, Google's), as far
// as the Hosting Automator's DNS check uses it (supabase/functions/hosting-automator/core/dns.ts).
//
// Replaces: https://cloudflare-dns.com/dns-query with `accept: application/dns-json`:
// `GET /dns-query?name=<name>&type=A|AAAA` → `{"Status":0,"Answer":[{"name","type":1|28,"TTL",
// "data"}]}` (Status 3, NXDOMAIN, without Answer for a name that does not exist). A missing or bad
// `name`/`type` is 400, as Cloudflare answers it.
// Differs: no recursion, no CNAME chains, no DNSSEC flags (TC/RD/RA/AD/CD are given as a resolver
// sets them for a plain answer); only A and AAAA are modelled: another type is 400 here.
// By default every name has one A record, 127.0.0.1 (the local stack's server), and no AAAA.
//
// Control API (JSON, the stand-in's own), under `/__standin/`:
//   GET health | records | queries;  POST reset (every name back to the default, log cleared);
//   POST records with {"name": "a.example", "addresses"?: ["192.0.2.1", "2001:db8::1"],
//     "absent"?: true, "fault"?: "unavailable"|"hang"}  (one name; `addresses: []` = no record,
//     `absent` = NXDOMAIN, `fault` = a 503 page or no answer until the client leaves, for that name);
//   POST default with {"addresses": [...]} (what an unconfigured name answers).
// The query log keeps "name type status" per query, oldest first.

export const CONTROL_PREFIX = "/__standin/";

export interface NameConfig {
  addresses?: string[];
  absent?: boolean;
  fault?: "unavailable" | "hang";
}

const json = (status: number, body: unknown, type = "application/json") =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": type } });

const TYPES: Record<string, number> = { A: 1, AAAA: 28, "1": 1, "28": 28 };

export function createDnsStandin() {
  const defaults: NameConfig & { addresses: string[] } = { addresses: ["127.0.0.1"] };
  let names = new Map<string, NameConfig>();
  let queries: string[] = [];

  function answer(url: URL, signal: AbortSignal): Response | Promise<Response> {
    const name = (url.searchParams.get("name") ?? "").toLowerCase().replace(/\.$/, "");
    const type = TYPES[(url.searchParams.get("type") ?? "A").toUpperCase()];
    if (!name || type === undefined) {
      queries.push(`${name} ${url.searchParams.get("type")} 400`);
      return json(400, { error: "Invalid query name or type" });
    }
    const config = names.get(name) ?? defaults;
    const typeName = type === 1 ? "A" : "AAAA";
    if (config.fault === "unavailable") {
      queries.push(`${name} ${typeName} 503`);
      return new Response("<html><body>503 Service Unavailable</body></html>", {
        status: 503,
        headers: { "content-type": "text/html" },
      });
    }
    if (config.fault === "hang") {
      queries.push(`${name} ${typeName} hang`);
      return new Promise((resolve) =>
        signal.addEventListener("abort", () => resolve(new Response(null, { status: 499 })))
      );
    }
    const base = { TC: false, RD: true, RA: true, AD: false, CD: false };
    const question = [{ name: `${name}.`, type }];
    if (config.absent) {
      queries.push(`${name} ${typeName} NXDOMAIN`);
      return json(200, { Status: 3, ...base, Question: question }, "application/dns-json");
    }
    const data = (config.addresses ?? []).filter((a) => a.includes(":") === (type === 28));
    queries.push(`${name} ${typeName} ${data.join(",") || "-"}`);
    return json(200, {
      Status: 0,
      ...base,
      Question: question,
      ...(data.length
        ? { Answer: data.map((d) => ({ name: `${name}.`, type, TTL: 300, data: d })) }
        : {}),
    }, "application/dns-json");
  }

  async function control(req: Request, route: string): Promise<Response> {
    if (req.method === "GET" && route === "health") return json(200, { ok: true, pid: Deno.pid });
    if (req.method === "GET" && route === "records") {
      return json(200, { default: defaults, names: Object.fromEntries(names) });
    }
    if (req.method === "GET" && route === "queries") return json(200, queries);
    if (req.method === "POST" && route === "reset") {
      names = new Map();
      queries = [];
      defaults.addresses = ["127.0.0.1"];
      return json(200, { ok: true });
    }
    if (req.method === "POST" && (route === "records" || route === "default")) {
      const body = await req.json().catch(() => null) as NameConfig & { name?: unknown } | null;
      const problem = checkConfig(body, route === "records");
      if (problem) return json(400, { error: problem });
      if (route === "default") defaults.addresses = body!.addresses!;
      else {
        const { name, ...config } = body!;
        names.set(String(name).toLowerCase(), config);
      }
      return json(200, { ok: true });
    }
    return json(404, { error: `no control route ${req.method} ${route}` });
  }

  return async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    if (url.pathname.startsWith(CONTROL_PREFIX)) {
      return await control(req, url.pathname.slice(CONTROL_PREFIX.length));
    }
    if (url.pathname === "/dns-query" && req.method === "GET") return await answer(url, req.signal);
    return json(404, { error: "not found" });
  };
}

function checkConfig(body: unknown, named: boolean): string | undefined {
  if (typeof body !== "object" || body === null) return "the body must be a JSON object";
  const config = body as NameConfig & { name?: unknown };
  if (named && (typeof config.name !== "string" || config.name === "")) return "name is required";
  if (!named && !Array.isArray(config.addresses)) return "addresses is required";
  if (
    config.addresses !== undefined &&
    (!Array.isArray(config.addresses) || config.addresses.some((a) => typeof a !== "string"))
  ) return "addresses must be a list of strings";
  if (config.fault !== undefined && config.fault !== "unavailable" && config.fault !== "hang") {
    return 'fault must be "unavailable" or "hang"';
  }
  return undefined;
}

async function main() {
  const port = Number(Deno.env.get("HA_DNS_PORT"));
  if (!Number.isInteger(port) || port <= 0) throw new Error("HA_DNS_PORT is not set");
  const handler = createDnsStandin();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port,
    onListen: ({ hostname, port }) => {
      console.log(`dns stand-in listening on http://${hostname}:${port}/dns-query`);
    },
  }, async (req) => {
    const response = await handler(req);
    const url = new URL(req.url);
    console.log(
      `${new Date().toISOString()} ${req.method} ${url.pathname}${url.search} ${response.status}`,
    );
    return response;
  });
  const stop = async () => {
    // Hanging queries would hold a graceful shutdown forever; give it a second.
    await Promise.race([server.shutdown(), new Promise((r) => setTimeout(r, 1000))]);
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  await server.finished;
}

if (import.meta.main) await main();
