import assert from "node:assert/strict";
import { isHostingError } from "../core/errors.ts";
import { AUTH_PAUSE_MS, createMatomoClient } from "./matomo.ts";

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
  // Not a second failure: no request is made (MATOMO_PAUSED is not counted as one).
  assert.equal((await rejection(client.addSite("b.example.com"))).code, "MATOMO_PAUSED");
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

// --- lockout protection (docs/matomo.md#brute-force-lockout) ------------------------------------

const WRONG_TOKEN = () =>
  jsonAnswer({
    result: "error",
    message: "Unable to authenticate with the provided token. It is either invalid or expired.",
  }, 401);

/** A clock for the client that moves only when told. */
function clock(start = Date.parse("2026-11-26T12:00:00Z")) {
  const state = { ms: start };
  return { now: () => state.ms, advance: (ms: number) => (state.ms += ms), state };
}

Deno.test("20 concurrent lookups with a wrong token send exactly one request; after the hour one more", async () => {
  const time = clock();
  const { seen, fetchFn } = fakeFetch(WRONG_TOKEN);
  const client = createMatomoClient(
    { url: BASE, token: TOKEN, timeoutMs: 1000 },
    fetchFn,
    time.now,
  );
  const lookups = Array.from({ length: 20 }, (_, i) => client.findSiteIds(`s${i}.example.com`));
  const errors = await Promise.all(lookups.map(rejection));
  assert.equal(seen.length, 1);
  assert.deepEqual(errors.map((e) => e.code), [
    "MATOMO_AUTH",
    ...Array.from({ length: 19 }, () => "MATOMO_PAUSED"),
  ], "the one that was sent failed; the 19 others were not sent");
  assert.equal(AUTH_PAUSE_MS, 3_600_000);
  assert.deepEqual(client.pausedUntil(), new Date("2026-11-26T13:00:00Z"));
  assert.match(errors[19].message, /^Matomo is not called until 2026-11-26T13:00:00\.000Z/);

  time.advance(AUTH_PAUSE_MS - 1);
  assert.equal((await rejection(client.addSite("late.example.com"))).code, "MATOMO_PAUSED");
  assert.equal(seen.length, 1, "still paused one millisecond before the hour");

  time.advance(1);
  assert.equal(client.pausedUntil(), null);
  const again = Array.from({ length: 20 }, (_, i) => client.findSiteIds(`t${i}.example.com`));
  await Promise.all(again.map(rejection));
  assert.equal(seen.length, 2, "after the hour exactly one more request is tried");
  assert.deepEqual(client.pausedUntil(), new Date("2026-11-26T14:00:00Z"));
});

Deno.test("a blocked IP pauses calls for the hour too", async () => {
  const time = clock();
  const { seen, fetchFn } = fakeFetch(() =>
    new Response(
      "<html><h2>Error: You are blocked. Too many failed logins from your IP address.</h2></html>",
      { status: 500, headers: { "content-type": "text/html" } },
    )
  );
  const client = createMatomoClient(
    { url: BASE, token: TOKEN, timeoutMs: 1000 },
    fetchFn,
    time.now,
  );
  const [first, second] = await Promise.all([
    rejection(client.findSiteIds("a.example.com")),
    rejection(client.findSiteIds("b.example.com")),
  ]);
  assert.equal(first.code, "MATOMO_BLOCKED");
  assert.equal(second.code, "MATOMO_PAUSED");
  assert.equal(seen.length, 1);
  assert.deepEqual(client.pausedUntil(), new Date(time.now() + AUTH_PAUSE_MS));
});

Deno.test("until one call succeeded, calls go one at a time; afterwards side by side", async () => {
  let inFlight = 0;
  let most = 0;
  const { seen, fetchFn } = fakeFetch(async () => {
    most = Math.max(most, ++inFlight);
    await new Promise((resolve) => setTimeout(resolve, 5));
    inFlight--;
    return jsonAnswer([{ idsite: 3 }]);
  });
  const client = createMatomoClient({ url: BASE, token: TOKEN, timeoutMs: 1000 }, fetchFn);
  await Promise.all([1, 2, 3].map((i) => client.findSiteIds(`s${i}.example.com`)));
  assert.equal(seen.length, 3);
  assert.equal(most, 1, "before the token is known to work: one at a time");

  most = 0;
  await Promise.all([4, 5, 6].map((i) => client.findSiteIds(`s${i}.example.com`)));
  assert.equal(most, 3, "once a call succeeded: side by side");
});

Deno.test("a failure that is not about the token neither pauses nor stops the next call", async () => {
  let calls = 0;
  const { seen, fetchFn } = fakeFetch(() =>
    ++calls === 1 ? new Response("oops", { status: 500 }) : jsonAnswer([])
  );
  const client = createMatomoClient({ url: BASE, token: TOKEN, timeoutMs: 1000 }, fetchFn);
  assert.equal((await rejection(client.findSiteIds("example.com"))).code, "MATOMO_HTTP");
  assert.equal(client.pausedUntil(), null);
  assert.deepEqual(await client.findSiteIds("example.com"), []);
  assert.equal(seen.length, 2);
});

Deno.test("a pause learnt from the database stops every call until it ends", async () => {
  const time = clock();
  const { seen, fetchFn } = fakeFetch(() => jsonAnswer([{ idsite: 4 }]));
  const client = createMatomoClient(
    { url: BASE, token: TOKEN, timeoutMs: 1000 },
    fetchFn,
    time.now,
  );
  const until = new Date("2026-11-26T12:30:00Z");
  client.pauseUntil(until);
  assert.deepEqual(client.pausedUntil(), until);
  const error = await rejection(client.findSiteIds("example.com"));
  assert.equal(error.code, "MATOMO_PAUSED");
  assert.equal(
    error.message,
    "Matomo is not called until 2026-11-26T12:30:00.000Z (it refused the token)",
  );
  assert.equal(seen.length, 0);

  // An earlier end never shortens the pause.
  client.pauseUntil(new Date("2026-11-26T12:10:00Z"));
  assert.deepEqual(client.pausedUntil(), until);

  time.advance(30 * 60_000);
  assert.equal(client.pausedUntil(), null);
  assert.deepEqual(await client.findSiteIds("example.com"), [4]);
  assert.equal(seen.length, 1);
});
