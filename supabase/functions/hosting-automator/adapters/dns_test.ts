import assert from "node:assert/strict";
import { createResolver } from "./dns.ts";

const URL_ = "https://dns.example.net/dns-query";

function fakeFetch(answer: (url: URL, init?: RequestInit) => Response | Promise<Response>) {
  const seen: Array<{ url: string; accept: string | null }> = [];
  const fetchFn = (async (input: string | URL | Request, init?: RequestInit) => {
    seen.push({ url: String(input), accept: new Headers(init?.headers).get("accept") });
    return await answer(new URL(String(input)), init);
  }) as typeof fetch;
  return { seen, fetchFn };
}

const records = (url: URL, table: Record<string, string[]>) => {
  const type = url.searchParams.get("type") === "AAAA" ? 28 : 1;
  const data = (table[url.searchParams.get("name") ?? ""] ?? [])
    .filter((a) => a.includes(":") === (type === 28));
  return Response.json({ Status: 0, Answer: data.map((d) => ({ name: "x", type, data: d })) });
};

Deno.test("resolving asks A and AAAA of both names with accept: application/dns-json", async () => {
  const { seen, fetchFn } = fakeFetch((url) =>
    records(url, { "example.com": ["203.0.113.7", "2001:db8::7"], "www.example.com": ["1.2.3.4"] })
  );
  const resolution = await createResolver({ url: URL_, timeoutMs: 1000 }, fetchFn)
    .resolve("example.com");
  assert.deepEqual(resolution, {
    ok: true,
    seen: { "example.com": ["203.0.113.7", "2001:db8::7"], "www.example.com": ["1.2.3.4"] },
  });
  assert.equal(seen.length, 4);
  assert.ok(seen.every((s) => s.accept === "application/dns-json"));
});

Deno.test("NXDOMAIN for a name is seen as no address, not as a resolver failure", async () => {
  const { fetchFn } = fakeFetch((url) =>
    url.searchParams.get("name") === "www.example.com"
      ? Response.json({ Status: 3 })
      : records(url, { "example.com": ["203.0.113.7"] })
  );
  assert.deepEqual(
    await createResolver({ url: URL_, timeoutMs: 1000 }, fetchFn).resolve("example.com"),
    { ok: true, seen: { "example.com": ["203.0.113.7"], "www.example.com": [] } },
  );
});

Deno.test("a network error is the resolver unavailable", async () => {
  const { fetchFn } = fakeFetch(() => Promise.reject(new TypeError("connection refused")));
  assert.deepEqual(
    await createResolver({ url: URL_, timeoutMs: 1000 }, fetchFn).resolve("blog.example.com"),
    { ok: false, reason: "A blog.example.com: connection refused" },
  );
});

Deno.test("a non-2xx answer is the resolver unavailable", async () => {
  const { fetchFn } = fakeFetch(() => new Response("busy", { status: 503 }));
  assert.deepEqual(
    await createResolver({ url: URL_, timeoutMs: 1000 }, fetchFn).resolve("blog.example.com"),
    { ok: false, reason: "A blog.example.com: HTTP 503" },
  );
});

Deno.test("a body that is not DNS JSON is the resolver unavailable", async () => {
  const { fetchFn } = fakeFetch(() => new Response("<html>"));
  const resolution = await createResolver({ url: URL_, timeoutMs: 1000 }, fetchFn)
    .resolve("blog.example.com");
  assert.deepEqual(resolution, { ok: false, reason: "A blog.example.com: not a JSON answer" });
});

Deno.test("a resolver that hangs is unavailable after the one deadline", async () => {
  const { fetchFn } = fakeFetch((_url, init) =>
    new Promise((_resolve, reject) => {
      init?.signal?.addEventListener("abort", () => reject(init.signal?.reason));
    })
  );
  const started = performance.now();
  const resolution = await createResolver({ url: URL_, timeoutMs: 50 }, fetchFn)
    .resolve("example.com");
  assert.deepEqual(resolution, { ok: false, reason: "A example.com: no answer within 50 ms" });
  assert.ok(performance.now() - started < 1000);
});
