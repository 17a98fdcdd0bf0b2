import assert from "node:assert/strict";
import { isHostingError } from "../core/errors.ts";
import { createMatomoClient } from "./matomo.ts";

const TOKEN = "0123456789abcdef0123456789abcdef";
const BASE = "https://analytics.example.com/";

interface Seen {
  url: string;
  method: string;
  contentType: string | null;
  body: string;
  redirect: RequestRedirect | undefined;
}

function fakeFetch(answer: (seen: Seen) => Response | Promise<Response>) {
  const seen: Seen[] = [];
  const fetchFn = (async (input: string | URL | Request, init?: RequestInit) => {
    const request: Seen = {
      url: String(input),
      method: init?.method ?? "GET",
      contentType: new Headers(init?.headers).get("content-type"),
      body: String(init?.body ?? ""),
      redirect: init?.redirect,
    };
    seen.push(request);
    return await answer(request);
  }) as typeof fetch;
  return { seen, fetchFn };
}

const jsonAnswer = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8" },
  });

async function rejection(promise: Promise<unknown>) {
  try {
    await promise;
  } catch (error) {
    assert.ok(isHostingError(error), `not a HostingError: ${error}`);
    return error;
  }
  assert.fail("expected a rejection");
}

Deno.test("the lookup is a POST with module/method/format in the query and the token only in the body", async () => {
  const { seen, fetchFn } = fakeFetch(() => jsonAnswer([{ idsite: 5 }]));
  const client = createMatomoClient({ url: BASE, token: TOKEN, timeoutMs: 1000 }, fetchFn);
  assert.deepEqual(await client.findSiteIds("example.com"), [5]);
  const [request] = seen;
  assert.equal(request.method, "POST");
  assert.equal(
    request.url,
    "https://analytics.example.com/index.php?module=API&method=SitesManager.getSitesIdFromSiteUrl&format=JSON",
  );
  assert.equal(request.contentType, "application/x-www-form-urlencoded");
  assert.equal(request.redirect, "manual");
  const body = new URLSearchParams(request.body);
  assert.equal(body.get("token_auth"), TOKEN);
  assert.equal(body.get("url"), "https://example.com");
  assert.ok(!request.url.includes(TOKEN));
});

Deno.test("addSite sends siteName and urls[0] and returns the new idsite", async () => {
  const { seen, fetchFn } = fakeFetch(() => jsonAnswer({ value: 9 }));
  const client = createMatomoClient({ url: BASE, token: TOKEN, timeoutMs: 1000 }, fetchFn);
  assert.equal(await client.addSite("example.com"), 9);
  const body = new URLSearchParams(seen[0].body);
  assert.equal(body.get("siteName"), "example.com");
  assert.equal(body.get("urls[0]"), "https://example.com");
  assert.match(seen[0].url, /method=SitesManager\.addSite&/);
});

Deno.test("a refused connection is MATOMO_UNREACHABLE", async () => {
  const { fetchFn } = fakeFetch(() => {
    throw new TypeError("error sending request: Connection refused (os error 111)");
  });
  const client = createMatomoClient({ url: BASE, token: TOKEN, timeoutMs: 1000 }, fetchFn);
  const error = await rejection(client.findSiteIds("example.com"));
  assert.equal(error.code, "MATOMO_UNREACHABLE");
});

Deno.test("no answer within the deadline is MATOMO_TIMEOUT", async () => {
  const fetchFn =
    ((_input: string | URL | Request, init?: RequestInit) =>
      new Promise<Response>((_resolve, reject) => {
        init?.signal?.addEventListener("abort", () => reject(init.signal!.reason));
      })) as typeof fetch;
  const client = createMatomoClient({ url: BASE, token: TOKEN, timeoutMs: 20 }, fetchFn);
  const error = await rejection(client.findSiteIds("example.com"));
  assert.equal(error.code, "MATOMO_TIMEOUT");
});

Deno.test("after a 401 the client makes no further call in the same run", async () => {
  const { seen, fetchFn } = fakeFetch(() =>
    jsonAnswer({
      result: "error",
      message: "Unable to authenticate with the provided token. It is either invalid or expired.",
    }, 401)
  );
  const client = createMatomoClient({ url: BASE, token: TOKEN, timeoutMs: 1000 }, fetchFn);
  assert.equal((await rejection(client.findSiteIds("a.example.com"))).code, "MATOMO_AUTH");
  assert.equal((await rejection(client.addSite("b.example.com"))).code, "MATOMO_AUTH");
  assert.equal(seen.length, 1);
});

Deno.test("an API error on 200 is not taken for success, and does not stop the run", async () => {
  let calls = 0;
  const { fetchFn } = fakeFetch(() =>
    ++calls === 1
      ? jsonAnswer({ result: "error", message: "Please specify a value for 'siteName'." })
      : jsonAnswer({ value: 3 })
  );
  const client = createMatomoClient({ url: BASE, token: TOKEN, timeoutMs: 1000 }, fetchFn);
  assert.equal((await rejection(client.addSite("example.com"))).code, "MATOMO_API_ERROR");
  assert.equal(await client.addSite("example.com"), 3);
});

Deno.test("a redirect is an HTTP error, never followed with the token", async () => {
  const { seen, fetchFn } = fakeFetch(() =>
    new Response("", { status: 301, headers: { location: "https://elsewhere.example/" } })
  );
  const client = createMatomoClient({ url: BASE, token: TOKEN, timeoutMs: 1000 }, fetchFn);
  const error = await rejection(client.findSiteIds("example.com"));
  assert.equal(error.code, "MATOMO_HTTP");
  assert.match(error.message, /HTTP 301/);
  assert.equal(seen.length, 1);
});
