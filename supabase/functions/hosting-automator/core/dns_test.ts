import assert from "node:assert/strict";
import {
  certificateNames,
  dnsQueries,
  dnsVerdict,
  isIpAddress,
  normalizeAddress,
  readAnswer,
} from "./dns.ts";

const NAMES: Array<[string, string[], string]> = [
  ["example.com", ["example.com", "www.example.com"], "an apex covers its www. name too"],
  ["www.example.com", ["www.example.com", "example.com"], "a www. name covers its apex too"],
  ["example.co.uk", ["example.co.uk", "www.example.co.uk"], "an apex under a two-label suffix"],
  ["www.example.co.uk", ["www.example.co.uk", "example.co.uk"], "its www. name"],
  ["blog.example.com", ["blog.example.com"], "another subdomain covers itself only"],
  ["www.blog.example.com", ["www.blog.example.com"], "www. of a subdomain is itself only"],
];

for (const [domain, names, why] of NAMES) {
  Deno.test(`the certificate for ${domain} covers ${names.join(" and ")}: ${why}`, () => {
    assert.deepEqual(certificateNames(domain), names);
  });
}

Deno.test("an apex is queried for A and AAAA of both names, as DoH JSON query strings", () => {
  assert.deepEqual(
    dnsQueries("example.com", "https://cloudflare-dns.com/dns-query").map((q) => q.url),
    [
      "https://cloudflare-dns.com/dns-query?name=example.com&type=A",
      "https://cloudflare-dns.com/dns-query?name=example.com&type=AAAA",
      "https://cloudflare-dns.com/dns-query?name=www.example.com&type=A",
      "https://cloudflare-dns.com/dns-query?name=www.example.com&type=AAAA",
    ],
  );
});

const ANSWERS: Array<[string, "A" | "AAAA", number, string, unknown]> = [
  [
    "Status 0 gives the records of the asked type",
    "A",
    200,
    '{"Status":0,"Answer":[{"name":"example.com","type":1,"data":"203.0.113.7"}]}',
    { ok: true, addresses: ["203.0.113.7"] },
  ],
  [
    "a CNAME step in the answer is left out",
    "A",
    200,
    '{"Status":0,"Answer":[{"name":"www.example.com","type":5,"data":"example.com."},' +
    '{"name":"example.com","type":1,"data":"203.0.113.7"}]}',
    { ok: true, addresses: ["203.0.113.7"] },
  ],
  [
    "AAAA reads type 28 only",
    "AAAA",
    200,
    '{"Status":0,"Answer":[{"name":"example.com","type":28,"data":"2001:db8::7"}]}',
    { ok: true, addresses: ["2001:db8::7"] },
  ],
  ["Status 0 without Answer is no record", "A", 200, '{"Status":0}', { ok: true, addresses: [] }],
  ["Status 3 (NXDOMAIN) is no record", "A", 200, '{"Status":3}', { ok: true, addresses: [] }],
  [
    "Status 2 (SERVFAIL) cannot tell",
    "A",
    200,
    '{"Status":2}',
    { ok: false, reason: "DNS status 2" },
  ],
  ["HTTP 503 cannot tell", "A", 503, "busy", { ok: false, reason: "HTTP 503" }],
  ["a body that is not JSON cannot tell", "A", 200, "<html>", {
    ok: false,
    reason: "not a JSON answer",
  }],
  ["JSON without Status cannot tell", "A", 200, "{}", { ok: false, reason: "no Status" }],
  [
    "an Answer that is not a list cannot tell",
    "A",
    200,
    '{"Status":0,"Answer":{}}',
    { ok: false, reason: "Answer is not a list" },
  ],
  [
    "a record without data cannot tell",
    "A",
    200,
    '{"Status":0,"Answer":[{"type":1}]}',
    { ok: false, reason: "a record without data" },
  ],
];

for (const [why, type, status, body, expected] of ANSWERS) {
  Deno.test(`reading a DoH answer: ${why}`, () => {
    assert.deepEqual(readAnswer(type, status, body), expected);
  });
}

const SERVER = ["203.0.113.7", "2001:db8::7"];

Deno.test("every name pointing only at the server's addresses is ready", () => {
  const verdict = dnsVerdict({
    "example.com": ["203.0.113.7", "2001:0db8:0:0::7"],
    "www.example.com": ["203.0.113.7"],
  }, SERVER);
  assert.equal(verdict.ready, true);
});

Deno.test("a name pointing elsewhere is not ready, and the message says what it points at", () => {
  assert.deepEqual(
    dnsVerdict({ "example.com": ["198.51.100.9"], "www.example.com": ["203.0.113.7"] }, SERVER),
    {
      ready: false,
      message: "not pointing at this server (203.0.113.7, 2001:db8::7) yet: " +
        "example.com → 198.51.100.9; Let's Encrypt was not asked",
    },
  );
});

Deno.test("a name with no record (or NXDOMAIN) is not ready", () => {
  assert.deepEqual(dnsVerdict({ "example.com": ["203.0.113.7"], "www.example.com": [] }, SERVER), {
    ready: false,
    message: "not pointing at this server (203.0.113.7, 2001:db8::7) yet: " +
      "www.example.com → no A/AAAA record; Let's Encrypt was not asked",
  });
});

Deno.test("one of several records pointing elsewhere is not ready (a half-moved domain)", () => {
  const verdict = dnsVerdict({ "blog.example.com": ["203.0.113.7", "198.51.100.9"] }, SERVER);
  assert.equal(verdict.ready, false);
  assert.match(verdict.message, /blog\.example\.com → 203\.0\.113\.7, 198\.51\.100\.9/);
});

Deno.test("IPv6 addresses compare in any spelling", () => {
  assert.equal(normalizeAddress("2001:DB8::7"), normalizeAddress("2001:0db8:0:0:0:0:0:0007"));
  assert.equal(normalizeAddress("::1"), "0:0:0:0:0:0:0:1");
  assert.equal(normalizeAddress("203.0.113.7"), "203.0.113.7");
});

const ADDRESSES: Array<[string, boolean]> = [
  ["203.0.113.7", true],
  ["2001:db8::7", true],
  ["::1", true],
  ["2001:db8:0:0:0:0:0:7", true],
  ["256.0.0.1", false],
  ["203.0.113", false],
  ["example.com", false],
  ["2001:db8:::7", false],
  ["2001:db8::7::1", false],
  ["[2001:db8::7]", false],
];

for (const [text, valid] of ADDRESSES) {
  Deno.test(`${text} is ${valid ? "" : "not "}an IP address for HOSTING_SERVER_ADDRESSES`, () => {
    assert.equal(isIpAddress(text), valid);
  });
}
