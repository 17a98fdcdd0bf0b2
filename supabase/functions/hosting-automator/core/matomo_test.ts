import assert from "node:assert/strict";
import type { ErrorCode } from "./errors.ts";
import {
  addSiteRequest,
  deleteSiteRequest,
  describeRequest,
  type HttpAnswer,
  type Interpreted,
  lookupRequest,
  matomoRequest,
  readAddSite,
  readDeleteSite,
  readLookup,
  siteUrl,
} from "./matomo.ts";

const TOKEN = "0123456789abcdef0123456789abcdef";
const BASE = "https://analytics.example.com";

// --- request shape (docs/matomo.md#request-shape) ------------------------------------------------

Deno.test("the query string holds exactly module, method and format", () => {
  const request = lookupRequest(BASE, TOKEN, "example.com");
  const url = new URL(request.url);
  assert.equal(url.origin + url.pathname, "https://analytics.example.com/index.php");
  assert.deepEqual([...url.searchParams], [
    ["module", "API"],
    ["method", "SitesManager.getSitesIdFromSiteUrl"],
    ["format", "JSON"],
  ]);
  assert.equal(request.method, "SitesManager.getSitesIdFromSiteUrl");
});

Deno.test("the token is sent in the body and never in the URL", () => {
  for (
    const request of [
      lookupRequest(BASE, TOKEN, "example.com"),
      addSiteRequest(BASE, TOKEN, "example.com"),
    ]
  ) {
    assert.equal(request.body.get("token_auth"), TOKEN);
    assert.ok(!request.url.includes(TOKEN), request.url);
    assert.ok(!request.url.includes("token_auth"), request.url);
  }
});

Deno.test("the lookup asks for the site's https URL", () => {
  const request = lookupRequest(BASE, TOKEN, "example.com");
  assert.deepEqual([...request.body], [["token_auth", TOKEN], ["url", "https://example.com"]]);
  assert.equal(siteUrl("example.com"), "https://example.com");
});

Deno.test("addSite sends the domain as the name and the https URL as urls[0]", () => {
  const request = addSiteRequest(BASE, TOKEN, "example.com");
  assert.equal(request.method, "SitesManager.addSite");
  assert.equal(new URL(request.url).searchParams.get("method"), "SitesManager.addSite");
  assert.deepEqual([...request.body], [
    ["token_auth", TOKEN],
    ["siteName", "example.com"],
    ["urls[0]", "https://example.com"],
  ]);
  // An array element, never a comma-separated string (docs/matomo.md#request-shape).
  assert.equal(request.body.has("urls"), false);
  assert.equal(
    request.body.toString(),
    `token_auth=${TOKEN}&siteName=example.com&urls%5B0%5D=https%3A%2F%2Fexample.com`,
  );
});

Deno.test("a base URL with a path or trailing slashes gives one index.php below it", () => {
  assert.equal(
    matomoRequest("https://example.org/matomo///", TOKEN, "SitesManager.addSite", []).url,
    "https://example.org/matomo/index.php?module=API&method=SitesManager.addSite&format=JSON",
  );
  assert.equal(
    matomoRequest("http://127.0.0.1:8080", TOKEN, "SitesManager.addSite", []).url,
    "http://127.0.0.1:8080/index.php?module=API&method=SitesManager.addSite&format=JSON",
  );
});

Deno.test("describeRequest shows the token as *** and leaves the request itself intact", () => {
  const request = addSiteRequest(BASE, TOKEN, "example.com");
  const described = describeRequest(request);
  assert.deepEqual(described, {
    method: "POST",
    url: `${BASE}/index.php?module=API&method=SitesManager.addSite&format=JSON`,
    body: "token_auth=***&siteName=example.com&urls[0]=https://example.com",
  });
  assert.ok(!JSON.stringify(described).includes(TOKEN));
  assert.equal(request.body.get("token_auth"), TOKEN);
});

// --- answers (docs/matomo.md#observed-answers, measured on a real Matomo 5.0.2) -----------------

const json = (body: string, status = 200): HttpAnswer => ({
  status,
  contentType: "application/json; charset=utf-8",
  body,
});
const html = (h2: string, status: number): HttpAnswer => ({
  status,
  contentType: "text/html; charset=utf-8",
  body: `<!DOCTYPE html>\n<html><head><title>Matomo › Error</title></head><body>\n` +
    `<div class="header"><h1>Error</h1></div>\n<div class="box"><h2>${h2}</h2>\n` +
    `<p>Go back to Matomo</p></div></body></html>`,
});
const xml = (body: string): HttpAnswer => ({
  status: 200,
  contentType: "text/xml; charset=utf-8",
  body: `<?xml version="1.0" encoding="utf-8" ?>\n${body}`,
});

const BAD_TOKEN_H2 =
  "Unable to authenticate with the provided token. It is either invalid or expired.";
const BAD_TOKEN_JSON =
  '{"result":"error","message":"Unable to authenticate with the provided token. It is either invalid or expired."}';
const SUPERUSER_JSON =
  `{"result":"error","message":"You can't access this resource as it requires a 'superuser' access."}`;
const BLOCKED_H2 = "Too many failed logins. Please wait and try logging in again later.";
const PROXY_502: HttpAnswer = {
  status: 502,
  contentType: "text/html",
  body: "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n" +
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
};

const READERS: Array<(answer: HttpAnswer) => Interpreted<unknown>> = [readLookup, readAddSite];

function failure(result: Interpreted<unknown>, code: ErrorCode): string {
  assert.equal(result.ok, false, `expected ${code}, got ${JSON.stringify(result)}`);
  if (result.ok) throw new Error("unreachable");
  assert.equal(result.error.code, code);
  assert.equal(result.error.step, "analytics");
  return result.error.message;
}

Deno.test("a lookup that finds sites gives their ids as numbers, lowest first", () => {
  assert.deepEqual(readLookup(json('[{"idsite":1},{"idsite":2}]')), { ok: true, value: [1, 2] });
  assert.deepEqual(readLookup(json('[{"idsite":12},{"idsite":5}]')), { ok: true, value: [5, 12] });
  assert.deepEqual(readLookup(json('[{"idsite":5}]')), { ok: true, value: [5] });
});

Deno.test("a lookup accepts idsite as a numeric string", () => {
  assert.deepEqual(readLookup(json('[{"idsite":"7"}]')), { ok: true, value: [7] });
  assert.deepEqual(readLookup(json('[{"idsite":"10"},{"idsite":9}]')), {
    ok: true,
    value: [9, 10],
  });
});

Deno.test("a lookup that finds nothing gives an empty list", () => {
  assert.deepEqual(readLookup(json("[]")), { ok: true, value: [] });
});

Deno.test("a lookup whose rows carry no usable idsite is a bad response", () => {
  for (
    const body of [
      '[{"idsite":0}]',
      '[{"idsite":"7a"}]',
      '[{"id":7}]',
      "[null]",
      '[{"idsite":1.5}]',
    ]
  ) {
    assert.match(
      failure(readLookup(json(body)), "MATOMO_BAD_RESPONSE"),
      /not a list of idsite/,
      body,
    );
  }
  assert.match(
    failure(readLookup(json('{"value":7}')), "MATOMO_BAD_RESPONSE"),
    /not a list of idsite/,
  );
});

Deno.test("a wrong token answered with Matomo's 401 HTML page is an auth failure", () => {
  for (const read of READERS) {
    const message = failure(read(html(BAD_TOKEN_H2, 401)), "MATOMO_AUTH");
    assert.ok(message.endsWith(`: HTTP 401: ${BAD_TOKEN_H2}`), message);
    assert.ok(!message.includes("<"), message);
  }
});

Deno.test("a wrong token answered with 401 JSON is an auth failure with Matomo's message", () => {
  const message = failure(readLookup(json(BAD_TOKEN_JSON, 401)), "MATOMO_AUTH");
  assert.equal(
    message,
    "SitesManager.getSitesIdFromSiteUrl: HTTP 401: Unable to authenticate with the provided " +
      "token. It is either invalid or expired.",
  );
});

Deno.test("a missing superuser access is an auth failure on Matomo 5 (401) and Matomo 4 (200)", () => {
  assert.equal(
    failure(readAddSite(json(SUPERUSER_JSON, 401)), "MATOMO_AUTH"),
    "SitesManager.addSite: HTTP 401: You can't access this resource as it requires a 'superuser' access.",
  );
  assert.equal(
    failure(readAddSite(json(SUPERUSER_JSON, 200)), "MATOMO_AUTH"),
    "SitesManager.addSite: You can't access this resource as it requires a 'superuser' access.",
  );
  failure(readLookup(json(SUPERUSER_JSON, 200)), "MATOMO_AUTH");
});

Deno.test("brute-force protection (500 HTML) is a block, not an HTTP error", () => {
  for (const read of READERS) {
    const message = failure(read(html(BLOCKED_H2, 500)), "MATOMO_BLOCKED");
    assert.ok(message.endsWith(`: HTTP 500: ${BLOCKED_H2}`), message);
  }
});

Deno.test("an API error answered 200 with result error is an API error with its message", () => {
  assert.equal(
    failure(
      readLookup(json(`{"result":"error","message":"Please specify a value for 'url'."}`)),
      "MATOMO_API_ERROR",
    ),
    "SitesManager.getSitesIdFromSiteUrl: Please specify a value for 'url'.",
  );
  assert.equal(
    failure(
      readAddSite(json(`{"result":"error","message":"Please specify a value for 'siteName'."}`)),
      "MATOMO_API_ERROR",
    ),
    "SitesManager.addSite: Please specify a value for 'siteName'.",
  );
  assert.equal(
    failure(
      readAddSite(
        json(
          '{"result":"error","message":"Creating, updating, and deleting sites has been disabled."}',
        ),
      ),
      "MATOMO_API_ERROR",
    ),
    "SitesManager.addSite: Creating, updating, and deleting sites has been disabled.",
  );
  failure(
    readLookup(
      json(
        `{"result":"error","message":"The method 'noSuchMethod' does not exist or is not available ` +
          `in the module '\\\\Piwik\\\\Plugins\\\\SitesManager\\\\API'."}`,
      ),
    ),
    "MATOMO_API_ERROR",
  );
});

Deno.test("an XML answer (format not applied) is a bad response, not success", () => {
  assert.match(
    failure(
      readLookup(xml("<result><row><idsite>1</idsite></row></result>")),
      "MATOMO_BAD_RESPONSE",
    ),
    /expected JSON, got text\/xml/,
  );
  failure(readLookup(xml("<result />")), "MATOMO_BAD_RESPONSE");
  failure(readAddSite(xml("<result>9</result>")), "MATOMO_BAD_RESPONSE");
});

Deno.test("a proxy's 502 page is an HTTP error naming the status", () => {
  for (const read of READERS) {
    const message = failure(read(PROXY_502), "MATOMO_HTTP");
    assert.match(message, /: HTTP 502: 502 Bad Gateway/);
  }
});

Deno.test("invalid JSON under a JSON content type is a bad response", () => {
  failure(readLookup(json('[{"idsite":1}')), "MATOMO_BAD_RESPONSE");
  failure(readAddSite(json("<html>oops</html>")), "MATOMO_BAD_RESPONSE");
  failure(
    readAddSite({ status: 200, contentType: "", body: '{"value":1}' }),
    "MATOMO_BAD_RESPONSE",
  );
});

Deno.test("addSite success gives the new id, as an integer or a numeric string", () => {
  assert.deepEqual(readAddSite(json('{"value":1}')), { ok: true, value: 1 });
  assert.deepEqual(readAddSite(json('{"value":"7"}')), { ok: true, value: 7 });
});

Deno.test("addSite without a positive whole id is a bad response", () => {
  for (const body of ['{"value":0}', '{"value":"x"}', "{}", "[]", "null", "7", '{"value":-3}']) {
    assert.match(failure(readAddSite(json(body)), "MATOMO_BAD_RESPONSE"), /no site id in/, body);
  }
});

Deno.test("a 401 or 403 with any body is an auth failure, and a 404 an HTTP error", () => {
  failure(readLookup({ status: 403, contentType: "text/plain", body: "Forbidden" }), "MATOMO_AUTH");
  failure(
    readLookup({ status: 404, contentType: "text/html", body: "<h1>Not Found</h1>" }),
    "MATOMO_HTTP",
  );
});

// --- deleteSite (removal only) ---------------------------------------------------------------

const answered = (body: string, status = 200, contentType = "application/json; charset=utf-8") => ({
  status,
  contentType,
  body,
});

Deno.test("deleteSite sends only the given idsite, the token in the body", () => {
  const request = deleteSiteRequest(BASE, TOKEN, 42);
  assert.equal(new URL(request.url).searchParams.get("method"), "SitesManager.deleteSite");
  assert.deepEqual([...request.body], [["token_auth", TOKEN], ["idSite", "42"]]);
  assert.equal(describeRequest(request).body, "token_auth=***&idSite=42");
});

Deno.test("deleteSite's void success is deleted; an unknown id is already gone", () => {
  assert.deepEqual(readDeleteSite(answered('{"result":"success","message":"ok"}')), {
    ok: true,
    value: "deleted",
  });
  assert.deepEqual(
    readDeleteSite(answered('{"result":"error","message":"website id = 42 not found"}')),
    { ok: true, value: "not_found" },
  );
});

Deno.test("deleteSite's other refusals are errors with Matomo's codes", () => {
  const code = (answer: ReturnType<typeof answered>) => {
    const read = readDeleteSite(answer);
    return read.ok ? "ok" : read.error.code;
  };
  assert.equal(
    code(answered(
      '{"result":"error","message":"It is not possible to delete this website as it is the only registered website."}',
    )),
    "MATOMO_API_ERROR",
  );
  assert.equal(
    code(answered(
      '{"result":"error","message":"Unable to authenticate with the provided token. It is either invalid or expired."}',
      401,
    )),
    "MATOMO_AUTH",
  );
  assert.equal(code(answered('{"value":true}')), "MATOMO_BAD_RESPONSE");
  assert.equal(code(answered("<html></html>", 502, "text/html")), "MATOMO_HTTP");
});
