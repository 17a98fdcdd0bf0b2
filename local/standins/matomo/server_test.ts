// Tests of the Matomo stand-in: one test per row of docs/matomo.md "Observed on a real Matomo
// 5.0.2" (bodies copied from that table), the rest of the modelled API, the control API, and the
// process itself over a real socket.
import assert from "node:assert/strict";
import {
  createMatomoStandin,
  type MatomoStandinHandler,
  type MatomoStandinOptions,
} from "./server.ts";

function randomHex(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

// Throw-away tokens, new on every run.
const TOKEN = randomHex();
const WRONG_TOKEN = randomHex();

const JSON_TYPE = "application/json; charset=utf-8";
const HTML_TYPE = "text/html; charset=utf-8";

type Pairs = [string, string][];

interface CallSpec {
  httpMethod?: string;
  path?: string;
  query?: Pairs;
  body?: Pairs;
  contentType?: string;
  ip?: string;
  signal?: AbortSignal;
}

interface Answer {
  status: number;
  type: string | null;
  body: string;
}

function standin(extra: Partial<MatomoStandinOptions> = {}): MatomoStandinHandler {
  return createMatomoStandin({ token: TOKEN, ...extra });
}

function client(ip: string) {
  return { remoteAddr: { transport: "tcp" as const, hostname: ip, port: 40000 } };
}

function request(spec: CallSpec): Request {
  const query = spec.query ? `?${new URLSearchParams(spec.query)}` : "";
  const init: RequestInit = {
    method: spec.httpMethod ?? (spec.body ? "POST" : "GET"),
    signal: spec.signal,
  };
  if (spec.body) {
    init.body = new URLSearchParams(spec.body).toString();
    init.headers = { "content-type": spec.contentType ?? "application/x-www-form-urlencoded" };
  }
  return new Request(`http://127.0.0.1${spec.path ?? "/index.php"}${query}`, init);
}

async function send(h: MatomoStandinHandler, spec: CallSpec): Promise<Answer> {
  const res = await h(request(spec), client(spec.ip ?? "127.0.0.1"));
  return { status: res.status, type: res.headers.get("content-type"), body: await res.text() };
}

/** `module`, `method`, `format` in the query string, as the product sends them. */
function apiQuery(method: string, format = "JSON"): Pairs {
  return [["module", "API"], ["method", method], ["format", format]];
}

/** The product's shape: API selectors in the query, token and arguments in the form body. */
function post(
  h: MatomoStandinHandler,
  method: string,
  args: Pairs,
  token = TOKEN,
): Promise<Answer> {
  return send(h, { query: apiQuery(method), body: [["token_auth", token], ...args] });
}

function addSiteArgs(domain: string): Pairs {
  return [["siteName", domain], ["urls[0]", `https://${domain}`]];
}

async function seed(h: MatomoStandinHandler, count: number): Promise<void> {
  for (let i = 1; i <= count; i++) {
    const answer = await addSite(h, `seed-${i}.example`);
    assert.equal(answer.body, `{"value":${i}}`);
  }
}

async function control(h: MatomoStandinHandler, route: string, body?: unknown): Promise<Response> {
  const init: RequestInit = body === undefined
    ? { method: route.startsWith("GET ") ? "GET" : "POST" }
    : {
      method: "POST",
      body: JSON.stringify(body),
      headers: { "content-type": "application/json" },
    };
  const path = route.replace(/^(GET|POST) /, "");
  return await h(new Request(`http://127.0.0.1/__standin/${path}`, init), client("127.0.0.1"));
}

function expect(answer: Answer, status: number, type: string, body: string): void {
  assert.deepEqual(answer, { status, type, body });
}

/** An API answer of HTTP 200 in JSON with exactly this body. */
function ok(answer: Answer, body: string): void {
  expect(answer, 200, JSON_TYPE, body);
}

function addSite(h: MatomoStandinHandler, domain: string, more: Pairs = []): Promise<Answer> {
  return post(h, "SitesManager.addSite", [...addSiteArgs(domain), ...more]);
}

function lookup(h: MatomoStandinHandler, url: string): Promise<Answer> {
  return post(h, "SitesManager.getSitesIdFromSiteUrl", [["url", url]]);
}

// ---- The observed table, row by row -------------------------------------------------------------

const ADD = "SitesManager.addSite";
const LOOKUP = "SitesManager.getSitesIdFromSiteUrl";
const specify = (name: string) =>
  `{"result":"error","message":"Please specify a value for '${name}'."}`;

/** The product's shape of a call: selectors in the query, the token and `args` in the body. */
const api = (method: string, args: Pairs): CallSpec => ({
  query: apiQuery(method),
  body: [["token_auth", TOKEN], ...args],
});
const SUPERUSER =
  `{"result":"error","message":"You can't access this resource as it requires a 'superuser' access."}`;
const refused = (how: string) =>
  `{"result":"error","message":"Unable to authenticate with the provided token. It is either ${how}."}`;

interface OneCallRow {
  row: string;
  /** Sites added first: seed-1.example, … */
  sites?: number;
  call: CallSpec;
  status?: number;
  body: string;
}

// Rows of the observed table (and of the request-shape rules) that are one call on a fresh stand-in.
const ONE_CALL_ROWS: OneCallRow[] = [
  {
    row: "a form body without the form Content-Type is ignored, as PHP ignores it",
    call: { ...api(ADD, addSiteArgs("example.com")), contentType: "text/plain" },
    body: specify("siteName"),
  },
  {
    row: 'addSite with a valid token in the POST body answers {"value":1}',
    call: api(ADD, addSiteArgs("example.com")),
    body: '{"value":1}',
  },
  {
    row: "addSite without siteName answers HTTP 200 with the 'Please specify' error",
    call: api(ADD, [["urls[0]", "https://example.com"]]),
    body: specify("siteName"),
  },
  {
    row: "addSite with an empty siteName answers the same error as a missing one",
    call: api(ADD, [["siteName", ""], ["urls[0]", "https://example.com"]]),
    body: specify("siteName"),
  },
  {
    row: "addSite without any urls is accepted",
    sites: 2,
    call: api(ADD, [["siteName", "no-urls"]]),
    body: '{"value":3}',
  },
  {
    row: "getSitesIdFromSiteUrl answers [] for a URL no site has",
    sites: 1,
    call: api(LOOKUP, [["url", "https://not-there.example"]]),
    body: "[]",
  },
  {
    row: "getSitesIdFromSiteUrl keeps path and query, so a page URL finds nothing",
    sites: 1,
    call: api(LOOKUP, [["url", "https://seed-1.example/some/page?x=1"]]),
    body: "[]",
  },
  {
    row: "getSitesIdFromSiteUrl without url answers the 'Please specify' error",
    call: api(LOOKUP, []),
    body: specify("url"),
  },
  {
    row: "a wrong token in the body with module/method/format in the query gets 401 JSON",
    call: {
      query: apiQuery(ADD),
      body: [["token_auth", WRONG_TOKEN], ...addSiteArgs("a.example")],
    },
    status: 401,
    body: refused("invalid or expired"),
  },
  {
    row: "a wrong token via GET gets 401 JSON with the POST-parameter message",
    call: {
      query: [...apiQuery(LOOKUP), ["url", "https://a.example"], ["token_auth", WRONG_TOKEN]],
    },
    status: 401,
    body: refused("invalid, expired or is required to be sent as a POST parameter"),
  },
  {
    row: "getSitesIdFromSiteUrl without a token answers 200 [] even when the site exists",
    sites: 1,
    call: { query: apiQuery(LOOKUP), body: [["url", "https://seed-1.example"]] },
    body: "[]",
  },
  {
    row: "a valid token in the query string of a POST, arguments in the body, is accepted",
    sites: 7,
    call: {
      query: [...apiQuery(ADD), ["token_auth", TOKEN]],
      body: addSiteArgs("mixed.example"),
    },
    body: '{"value":8}',
  },
  {
    row: "a valid token in the POST body is accepted for the lookup too",
    sites: 1,
    call: api(LOOKUP, [["url", "https://seed-1.example"]]),
    body: '[{"idsite":1}]',
  },
  {
    row: "format=json in lower case answers JSON",
    call: {
      query: apiQuery(ADD, "json"),
      body: [["token_auth", TOKEN], ...addSiteArgs("a.example")],
    },
    body: '{"value":1}',
  },
];

for (const { row, sites = 0, call, status = 200, body } of ONE_CALL_ROWS) {
  Deno.test(row, async () => {
    const h = standin();
    await seed(h, sites);
    expect(await send(h, call), status, JSON_TYPE, body);
  });
}

Deno.test("addSite does not deduplicate: the same name and URL again creates site 2", async () => {
  const h = standin();
  await addSite(h, "example.com");
  ok(await addSite(h, "example.com"), '{"value":2}');
});

Deno.test("addSite with urls as a plain string (not an array) is accepted", async () => {
  const h = standin();
  await seed(h, 3);
  ok(
    await post(h, "SitesManager.addSite", [["siteName", "string.example"], [
      "urls",
      "https://string.example",
    ]]),
    '{"value":4}',
  );
  const sites = await (await control(h, "GET sites")).json();
  assert.equal(sites[3].main_url, "https://string.example");
});

Deno.test("addSite with urls[0]=not a url is accepted and stored as http://not a url", async () => {
  const h = standin();
  await seed(h, 5);
  ok(
    await post(h, "SitesManager.addSite", [["siteName", "odd"], ["urls[0]", "not a url"]]),
    '{"value":6}',
  );
  const sites = await (await control(h, "GET sites")).json();
  assert.equal(sites[5].main_url, "http://not a url");
});

Deno.test("getSitesIdFromSiteUrl finds both duplicates, idsite as JSON integers", async () => {
  const h = standin();
  await addSite(h, "example.com");
  await addSite(h, "example.com");
  ok(await lookup(h, "https://example.com"), '[{"idsite":1},{"idsite":2}]');
});

Deno.test("getSitesIdFromSiteUrl normalises scheme, www., trailing slash and case", async () => {
  const h = standin();
  await addSite(h, "example.com");
  await addSite(h, "example.com");
  for (
    const url of [
      "http://example.com",
      "https://www.example.com",
      "https://example.com/",
      "example.com",
      "https://EXAMPLE.COM",
    ]
  ) {
    ok(await lookup(h, url), '[{"idsite":1},{"idsite":2}]');
  }
});

Deno.test("getSitesIdFromSiteUrl matches an alias URL (urls[1])", async () => {
  const h = standin();
  await seed(h, 4);
  await post(h, "SitesManager.addSite", [
    ["siteName", "aliased"],
    ["urls[0]", "https://main.example"],
    ["urls[1]", "https://alias.example"],
  ]);
  ok(await lookup(h, "https://alias.example"), '[{"idsite":5}]');
});

Deno.test("a wrong token with everything in the POST body gets 401 and Matomo's HTML page", async () => {
  const h = standin();
  for (
    const [method, args] of [
      ["SitesManager.addSite", addSiteArgs("example.com")],
      ["SitesManager.getSitesIdFromSiteUrl", [["url", "https://example.com"]]],
    ] as [string, Pairs][]
  ) {
    const answer = await send(h, {
      body: [
        ["module", "API"],
        ["method", method],
        ["format", "JSON"],
        ["token_auth", WRONG_TOKEN],
        ...args,
      ],
    });
    assert.equal(answer.status, 401);
    assert.equal(answer.type, HTML_TYPE, "format=JSON in the body is ignored");
    assert.ok(
      answer.body.includes(
        "<h2>Unable to authenticate with the provided token. It is either invalid or expired.</h2>",
      ),
      answer.body,
    );
  }
});

Deno.test("addSite with no token or an empty token_auth= gets 401 'superuser' JSON", async () => {
  const h = standin();
  expect(
    await send(h, { query: apiQuery("SitesManager.addSite"), body: addSiteArgs("example.com") }),
    401,
    JSON_TYPE,
    SUPERUSER,
  );
  expect(
    await post(h, "SitesManager.addSite", addSiteArgs("example.com"), ""),
    401,
    JSON_TYPE,
    SUPERUSER,
  );
  const sites = await (await control(h, "GET sites")).json();
  assert.deepEqual(sites, [], "nothing was created");
});

Deno.test("a valid token in the GET query string is accepted for addSite and the lookup", async () => {
  const h = standin();
  await seed(h, 6);
  ok(
    await send(h, {
      query: [...apiQuery("SitesManager.addSite"), ...addSiteArgs("get.example"), [
        "token_auth",
        TOKEN,
      ]],
    }),
    '{"value":7}',
  );
  ok(
    await send(h, {
      query: [...apiQuery("SitesManager.getSitesIdFromSiteUrl"), ["url", "https://get.example"], [
        "token_auth",
        TOKEN,
      ]],
    }),
    '[{"idsite":7}]',
  );
});

Deno.test("brute-force: as measured, after 4 + 17 wrong tokens the 18th further call gets 500", async () => {
  const h = standin();
  for (let i = 1; i <= 4; i++) {
    assert.equal(
      (await post(h, "SitesManager.getSitesIdFromSiteUrl", [["url", "a"]], WRONG_TOKEN)).status,
      401,
    );
  }
  const statuses: number[] = [];
  for (let i = 1; i <= 21; i++) {
    statuses.push(
      (await post(h, "SitesManager.getSitesIdFromSiteUrl", [["url", "a"]], WRONG_TOKEN)).status,
    );
  }
  assert.deepEqual(statuses, [...Array(17).fill(401), 500, 500, 500, 500]);
  const valid = await addSite(h, "example.com");
  assert.equal(valid.status, 500, "even a valid token is refused");
  assert.equal(valid.type, HTML_TYPE);
  assert.ok(
    valid.body.includes(
      "<h2>Too many failed logins. Please wait and try logging in again later.</h2>",
    ),
  );
});

Deno.test("brute-force: 20 failures still let a valid token in; the 21st blocks the IP", async () => {
  const h = standin();
  for (let i = 0; i < 20; i++) await post(h, "SitesManager.addSite", [], WRONG_TOKEN);
  assert.equal((await addSite(h, "a.example")).status, 200);
  assert.equal((await post(h, "SitesManager.addSite", [], WRONG_TOKEN)).status, 401);
  assert.equal((await addSite(h, "b.example")).status, 500);
  // Anonymous API requests from that IP are refused too; another IP is not affected.
  const anonymous = await send(h, {
    query: apiQuery("SitesManager.getSitesIdFromSiteUrl"),
    body: [["url", "x"]],
  });
  assert.equal(anonymous.status, 500);
  const other = await send(h, {
    query: apiQuery("SitesManager.addSite"),
    body: [["token_auth", TOKEN], ...addSiteArgs("c.example")],
    ip: "127.0.0.2",
  });
  assert.deepEqual([other.status, other.body], [200, '{"value":2}']);
});

Deno.test("brute-force: failures older than 60 minutes no longer count", async () => {
  let clock = Date.UTC(2025, 0, 1);
  const h = standin({ now: () => clock });
  for (let i = 0; i < 21; i++) await post(h, "SitesManager.addSite", [], WRONG_TOKEN);
  assert.equal((await addSite(h, "a.example")).status, 500);
  clock += 60 * 60 * 1000 - 1;
  assert.equal((await addSite(h, "a.example")).status, 500);
  clock += 1;
  assert.equal((await addSite(h, "a.example")).status, 200);
});

Deno.test("only_allow_secure_auth_tokens = 1: a valid token via GET gets 401, via POST body 200", async () => {
  const h = standin({ onlyAllowSecureAuthTokens: true });
  expect(
    await send(h, {
      query: [...apiQuery("SitesManager.addSite"), ...addSiteArgs("get.example"), [
        "token_auth",
        TOKEN,
      ]],
    }),
    401,
    JSON_TYPE,
    '{"result":"error","message":"Unable to authenticate with the provided token. It is either invalid, expired or is required to be sent as a POST parameter."}',
  );
  ok(await addSite(h, "post.example"), '{"value":1}');
});

// ---- The rest of the modelled API ---------------------------------------------------------------

const NOT_LAST =
  `{"result":"error","message":"It is not possible to delete this website as it is the only registered website. Add a new website first, then delete this one."}`;

Deno.test("deleteSite removes a site; its URL is then found no more", async () => {
  const h = standin();
  await seed(h, 2);
  ok(
    await post(h, "SitesManager.deleteSite", [["idSite", "1"]]),
    '{"result":"success","message":"ok"}',
  );
  const lookup = [["url", "https://seed-1.example"]] as Pairs;
  ok(await post(h, "SitesManager.getSitesIdFromSiteUrl", lookup), "[]");
  assert.equal(
    (await addSite(h, "new.example")).body,
    '{"value":3}',
  );
});

Deno.test("deleteSite refuses an unknown id, the last site and a caller without the token", async () => {
  const h = standin();
  await seed(h, 1);
  ok(
    await post(h, "SitesManager.deleteSite", [["idSite", "9"]]),
    `{"result":"error","message":"website id = 9 not found"}`,
  );
  ok(await post(h, "SitesManager.deleteSite", [["idSite", "1"]]), NOT_LAST);
  ok(await post(h, "SitesManager.deleteSite", []), specify("idSite"));
  const anonymous = { query: apiQuery("SitesManager.deleteSite"), body: [["idSite", "1"]] };
  expect(await send(h, anonymous as CallSpec), 401, JSON_TYPE, SUPERUSER);
});

Deno.test("/ serves the API like /index.php; any other path is nginx's 404", async () => {
  const h = standin();
  const root = await send(h, {
    path: "/",
    query: apiQuery("SitesManager.addSite"),
    body: [["token_auth", TOKEN], ...addSiteArgs("example.com")],
  });
  assert.deepEqual([root.status, root.body], [200, '{"value":1}']);
  const other = await send(h, {
    path: "/api.php",
    query: apiQuery("SitesManager.getSitesIdFromSiteUrl"),
  });
  assert.equal(other.status, 404);
  assert.ok(other.body.includes("<center><h1>404 Not Found</h1></center>"));
});

Deno.test("a parameter in the query string wins over the same one in the body", async () => {
  const h = standin();
  const answer = await send(h, {
    query: [...apiQuery("SitesManager.addSite"), ["siteName", "from-query"]],
    body: [["token_auth", TOKEN], ["siteName", "from-body"], [
      "method",
      "SitesManager.noSuchMethod",
    ]],
  });
  assert.equal(answer.body, '{"value":1}');
  const sites = await (await control(h, "GET sites")).json();
  assert.equal(sites[0].name, "from-query");
});

Deno.test("urls[]= entries become main URL and aliases in order, cleaned and de-duplicated", async () => {
  const h = standin();
  await post(h, "SitesManager.addSite", [
    ["siteName", "many"],
    ["urls[]", "https://one.example/"],
    ["urls[]", "two.example"],
    ["urls[]", "https://one.example"],
    ["urls[]", ""],
  ]);
  const [site] = await (await control(h, "GET sites")).json();
  assert.equal(site.main_url, "https://one.example");
  assert.deepEqual(site.alias_urls, ["http://two.example"]);
});

Deno.test("addSite refuses a URL that does not look like one, and an unknown timezone", async () => {
  const h = standin();
  ok(
    await post(h, "SitesManager.addSite", [["siteName", "x"], ["urls[0]", "https:/broken"]]),
    `{"result":"error","message":"The url 'https:\\/broken' is not a valid URL."}`,
  );
  ok(
    await post(h, "SitesManager.addSite", [...addSiteArgs("x.example"), [
      "timezone",
      "Mars/Olympus",
    ]]),
    `{"result":"error","message":"The timezone \\"Mars\\/Olympus\\" is not valid. Please enter a valid timezone."}`,
  );
  ok(
    await post(h, "SitesManager.addSite", [...addSiteArgs("x.example"), [
      "timezone",
      "Europe/Berlin",
    ]]),
    '{"value":1}',
  );
});

Deno.test("what the stand-in does not model is a 400 text/plain marked not-modelled", async () => {
  const h = standin();
  for (
    const spec of [
      { query: apiQuery("SitesManager.updateSite"), body: [["token_auth", TOKEN]] },
      { query: apiQuery("SitesManager.noSuchMethod"), body: [["token_auth", TOKEN]] },
      { query: apiQuery("UsersManager.getUsers"), body: [["token_auth", TOKEN]] },
      { query: apiQuery("SitesManager.addSite", "xml"), body: [["token_auth", TOKEN]] },
      {
        query: [["module", "API"], ["method", "SitesManager.addSite"]],
        body: [["token_auth", TOKEN]],
      },
      { query: [["module", "CoreHome"]] },
    ] as CallSpec[]
  ) {
    const res = await h(request(spec), client("127.0.0.1"));
    assert.equal(res.status, 400, JSON.stringify(spec));
    assert.equal(res.headers.get("x-matomo-standin"), "not-modelled");
    assert.match(await res.text(), /^matomo stand-in: .* is not modelled/);
  }
});

Deno.test("sites survive a restart through the state file; reset empties it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "matomo-standin-" });
  try {
    const stateFile = `${dir}/sites.json`;
    const first = standin({ stateFile });
    await addSite(first, "kept.example");
    const second = standin({ stateFile });
    ok(
      await post(second, "SitesManager.getSitesIdFromSiteUrl", [["url", "https://kept.example"]]),
      '[{"idsite":1}]',
    );
    assert.equal(
      (await addSite(second, "next.example")).body,
      '{"value":2}',
    );
    await control(second, "POST reset");
    const third = standin({ stateFile });
    assert.deepEqual(await (await control(third, "GET sites")).json(), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- Control API ---------------------------------------------------------------------------------

Deno.test("control: GET sites lists every site with main and alias URLs", async () => {
  const h = standin();
  await addSite(h, "example.com", [["urls[1]", "https://www.example.com"]]);
  const res = await control(h, "GET sites");
  assert.equal(res.status, 200);
  const [site] = await res.json();
  assert.deepEqual(
    [site.idsite, site.name, site.main_url, site.alias_urls],
    [1, "example.com", "https://example.com", ["https://www.example.com"]],
  );
});

Deno.test("control: GET requests logs keys and where the token was, never the token", async () => {
  const h = standin();
  await addSite(h, "example.com");
  await send(h, {
    query: [...apiQuery("SitesManager.getSitesIdFromSiteUrl"), ["url", "https://example.com"], [
      "token_auth",
      WRONG_TOKEN,
    ]],
  });
  await send(h, { query: apiQuery("SitesManager.getSitesIdFromSiteUrl"), body: [["url", "x"]] });
  const res = await control(h, "GET requests");
  const text = await res.text();
  assert.equal(text.includes(TOKEN), false);
  assert.equal(text.includes(WRONG_TOKEN), false);
  const log = JSON.parse(text);
  assert.deepEqual(
    log.map((
      e: Record<string, unknown>,
    ) => [e.seq, e.httpMethod, e.apiMethod, e.tokenIn, e.status]),
    [
      [1, "POST", "SitesManager.addSite", "body", 200],
      [2, "GET", "SitesManager.getSitesIdFromSiteUrl", "query", 401],
      [3, "POST", "SitesManager.getSitesIdFromSiteUrl", "none", 200],
    ],
  );
  assert.deepEqual(log[0].queryKeys, ["module", "method", "format"]);
  assert.deepEqual(log[0].bodyKeys, ["token_auth", "siteName", "urls[0]"]);
});

Deno.test("control: POST reset empties sites, log, fault and the brute-force counter", async () => {
  const h = standin();
  await seed(h, 2);
  for (let i = 0; i < 21; i++) await post(h, "SitesManager.addSite", [], WRONG_TOKEN);
  await control(h, "POST fault", { mode: "error500", methods: ["SitesManager.addSite"] });
  assert.equal((await control(h, "POST reset")).status, 200);
  assert.deepEqual(await (await control(h, "GET sites")).json(), []);
  assert.deepEqual(await (await control(h, "GET requests")).json(), []);
  assert.deepEqual(await (await control(h, "GET fault")).json(), { fault: null });
  ok(await addSite(h, "fresh.example"), '{"value":1}');
  ok(await post(h, "SitesManager.deleteSite", [["idSite", "1"]]), NOT_LAST);
});

Deno.test("control: POST unblock lifts the brute-force block and keeps the sites", async () => {
  const h = standin();
  await seed(h, 1);
  for (let i = 0; i < 21; i++) await post(h, "SitesManager.addSite", [], WRONG_TOKEN);
  assert.equal((await lookup(h, "x")).status, 500);
  await control(h, "POST unblock");
  ok(await addSite(h, "b.example"), '{"value":2}');
});

Deno.test("fault unavailable answers like nginx with PHP-FPM down: 502, or 503 when asked", async () => {
  const h = standin();
  await control(h, "POST fault", { mode: "unavailable" });
  const bad = await h(
    request({ query: apiQuery("SitesManager.getSitesIdFromSiteUrl") }),
    client("127.0.0.1"),
  );
  assert.deepEqual([bad.status, bad.headers.get("content-type"), bad.headers.get("server")], [
    502,
    "text/html",
    "nginx",
  ]);
  assert.ok((await bad.text()).includes("<center><h1>502 Bad Gateway</h1></center>"));
  await control(h, "POST fault", { mode: "unavailable", status: 503 });
  const busy = await send(h, { query: apiQuery("SitesManager.getSitesIdFromSiteUrl") });
  assert.equal(busy.status, 503);
  assert.ok(busy.body.includes("503 Service Temporarily Unavailable"));
});

Deno.test("fault error500 answers Matomo's HTML error page with status 500", async () => {
  const h = standin();
  await control(h, "POST fault", { mode: "error500" });
  const answer = await addSite(h, "example.com");
  assert.equal(answer.status, 500);
  assert.equal(answer.type, HTML_TYPE);
  assert.ok(answer.body.includes("<h2>SQLSTATE[HY000] [2002] Connection refused</h2>"));
  assert.deepEqual(await (await control(h, "GET sites")).json(), [], "nothing was created");
});

Deno.test("fault with methods applies to those API methods only", async () => {
  const h = standin();
  await control(h, "POST fault", { mode: "error500", methods: ["SitesManager.addSite"] });
  assert.equal((await lookup(h, "x")).status, 200);
  assert.equal((await addSite(h, "example.com")).status, 500);
});

Deno.test("fault with count is transient: only the next n matching requests fail", async () => {
  const h = standin();
  await control(h, "POST fault", { mode: "unavailable", count: 2 });
  const statuses = [];
  for (let i = 0; i < 3; i++) {
    statuses.push((await lookup(h, "x")).status);
  }
  assert.deepEqual(statuses, [502, 502, 200]);
  assert.deepEqual(await (await control(h, "GET fault")).json(), { fault: null });
  const log = await (await control(h, "GET requests")).json();
  assert.deepEqual(log.map((e: { fault: string | null }) => e.fault), [
    "unavailable",
    "unavailable",
    null,
  ]);
});

Deno.test("fault delay gives the normal answer ms later, and the log has the stand-in's own time", async () => {
  const h = standin();
  await control(h, "POST fault", { mode: "delay", ms: 120, methods: ["SitesManager.addSite"] });
  const started = performance.now();
  const added = await post(h, "SitesManager.addSite", addSiteArgs("delay.example.com"));
  assert.ok(performance.now() - started >= 115);
  assert.equal(added.status, 200);
  assert.match(added.body, /"value":1/);
  assert.equal(
    (await post(h, "SitesManager.getSitesIdFromSiteUrl", [["url", "https://delay.example.com"]]))
      .status,
    200,
  );
  const log = await (await control(h, "GET requests")).json();
  const [delayed, plain] = log.map((e: { fault: string | null; duration_ms: number }) => e);
  assert.equal(delayed.fault, "delay");
  assert.ok(delayed.duration_ms >= 115 && plain.duration_ms < 100, JSON.stringify(log));
});

/** A stand-in with fault `mode` set, and one lookup sent to it. */
async function faulted(mode: string, signal?: AbortSignal) {
  const h = standin();
  await control(h, "POST fault", { mode });
  return { h, pending: h(request({ query: apiQuery(LOOKUP), signal }), client("127.0.0.1")) };
}

Deno.test("fault hang never answers until reset, which releases it with nginx's 504", async () => {
  const { h, pending } = await faulted("hang");
  let settled = false;
  pending.then(() => settled = true);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(settled, false);
  const [entry] = await (await control(h, "GET requests")).json();
  assert.deepEqual([entry.fault, entry.status], ["hang", null]);
  await control(h, "POST reset");
  const res = await pending;
  assert.equal(res.status, 504);
  await res.body?.cancel();
});

Deno.test("fault hang lets go when the client gives up", async () => {
  const abort = new AbortController();
  const { pending } = await faulted("hang", abort.signal);
  abort.abort();
  const res = await pending;
  assert.equal(res.status, 504);
  await res.body?.cancel();
});

Deno.test("fault close gives a response whose body fails, so no byte reaches the client", async () => {
  const { h, pending } = await faulted("close");
  await assert.rejects((await pending).text(), /connection dropped/);
  const [entry] = await (await control(h, "GET requests")).json();
  assert.deepEqual([entry.fault, entry.status], ["close", null]);
});

Deno.test("fault none clears the fault", async () => {
  const h = standin();
  await control(h, "POST fault", { mode: "error500" });
  assert.deepEqual(await (await control(h, "POST fault", { mode: "none" })).json(), {
    fault: null,
  });
  assert.equal((await lookup(h, "x")).status, 200);
});

Deno.test("control: a bad fault body is 400 with the reason, and the fault is unchanged", async () => {
  const h = standin();
  for (
    const [body, reason] of [
      [{ mode: "explode" }, /mode must be one of/],
      [{ mode: "hang", count: 0 }, /count must be a positive integer/],
      [{ mode: "hang", methods: [] }, /methods must be a non-empty array/],
      [{ mode: "error500", status: 503 }, /status applies to mode unavailable only/],
      [{ mode: "unavailable", status: 500 }, /status must be 502 or 503/],
      [{ mode: "hang", every: 2 }, /unknown field\(s\): every/],
      [[1], /body must be a JSON object/],
    ] as [unknown, RegExp][]
  ) {
    const res = await control(h, "POST fault", body);
    assert.equal(res.status, 400);
    assert.match((await res.json()).error, reason);
  }
  assert.deepEqual(await (await control(h, "GET fault")).json(), { fault: null });
});

Deno.test("control: unknown routes are 404 and wrong HTTP methods 405", async () => {
  const h = standin();
  const missing = await control(h, "GET nothing-here");
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
  const wrong = await control(h, "GET reset");
  assert.deepEqual([wrong.status, wrong.headers.get("allow")], [405, "POST"]);
  await wrong.body?.cancel();
});

// ---- The process, over a real socket ----------------------------------------------------------

async function startProcess(stackDir: string) {
  await Deno.mkdir(`${stackDir}/matomo`, { recursive: true });
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      "--allow-net=127.0.0.1",
      `--allow-read=${stackDir}/matomo`,
      `--allow-write=${stackDir}/matomo`,
      "--allow-env",
      new URL("./server.ts", import.meta.url).pathname,
    ],
    env: {
      MATOMO_STANDIN_TOKEN: TOKEN,
      HA_MATOMO_PORT: "0",
      HA_STACK_DIR: stackDir,
      NO_COLOR: "1",
    },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  let baseUrl: string | undefined;
  while (baseUrl === undefined) {
    const { value, done } = await lines.read();
    if (done) throw new Error(`server exited before listening: ${seen}`);
    seen += value;
    baseUrl = /listening on (http:\/\/127\.0\.0\.1:\d+)\//.exec(seen)?.[1];
  }
  // Keep reading the request log so the pipe never fills.
  const drained = (async () => {
    while (!(await lines.read()).done) { /* discard */ }
  })();
  const stop = async () => {
    child.kill("SIGTERM");
    const status = await child.status;
    await drained;
    return status;
  };
  return { baseUrl, stop };
}

Deno.test("the server process serves the API on a real socket and keeps sites across a restart", async () => {
  const stackDir = await Deno.makeTempDir({ prefix: "matomo-standin-stack-" });
  try {
    const first = await startProcess(stackDir);
    const api = (base: string, method: string, args: Pairs) =>
      fetch(`${base}/index.php?${new URLSearchParams(apiQuery(method))}`, {
        method: "POST",
        body: new URLSearchParams([["token_auth", TOKEN], ...args]),
      });
    const added = await api(first.baseUrl, "SitesManager.addSite", addSiteArgs("socket.example"));
    assert.deepEqual([added.status, added.headers.get("content-type"), await added.text()], [
      200,
      JSON_TYPE,
      '{"value":1}',
    ]);

    // A dropped connection and a hang, as a real client sees them.
    await fetch(`${first.baseUrl}/__standin/fault`, {
      method: "POST",
      body: JSON.stringify({ mode: "close", count: 1 }),
    }).then((r) => r.body?.cancel());
    await assert.rejects(api(first.baseUrl, "API.getMatomoVersion", []));
    await fetch(`${first.baseUrl}/__standin/fault`, {
      method: "POST",
      body: JSON.stringify({ mode: "hang", count: 1 }),
    }).then((r) => r.body?.cancel());
    await assert.rejects(
      fetch(`${first.baseUrl}/index.php?module=API&method=API.getMatomoVersion`, {
        signal: AbortSignal.timeout(300),
      }),
      { name: "TimeoutError" },
    );
    const health = await (await fetch(`${first.baseUrl}/__standin/health`)).json();
    assert.equal(health.ok, true);
    assert.equal((await first.stop()).code, 0);

    const second = await startProcess(stackDir);
    const found = await api(second.baseUrl, "SitesManager.getSitesIdFromSiteUrl", [[
      "url",
      "socket.example",
    ]]);
    assert.equal(await found.text(), '[{"idsite":1}]');
    assert.equal((await second.stop()).code, 0);
  } finally {
    await Deno.remove(stackDir, { recursive: true });
  }
});
