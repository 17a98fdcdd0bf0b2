import assert from "node:assert/strict";
import { parseCalls, parseGateway, stats, table, verdict } from "./bench_stats.ts";

Deno.test("stats gives nearest-rank median and p95", () => {
  const values = Array.from({ length: 20 }, (_, i) => 20 - i); // 20 … 1
  assert.deepEqual(stats(values), { n: 20, median: 10, p95: 19, min: 1, max: 20 });
  assert.deepEqual(stats([7]), { n: 1, median: 7, p95: 7, min: 7, max: 7 });
});

Deno.test("a gateway line's arrival is its logged time minus its duration", () => {
  const [line] = parseGateway(
    "2026-12-01T08:00:00.500Z api gateway stand-in listening on 127.0.0.1:1\n" +
      "2026-12-01T08:00:01.250Z POST /functions/v1/hosting-automator 202 50ms\n",
  );
  assert.deepEqual(line, {
    arrived: Date.parse("2026-12-01T08:00:01.200Z"),
    method: "POST",
    path: "/functions/v1/hosting-automator",
    status: 202,
    durationMs: 50,
  });
});

Deno.test("calls.log lines give verb, domain, exit code and the stand-in's own duration", () => {
  const [call] = parseCalls(
    "2026-12-01T08:00:01.000Z\tsite:add:static\ta.example.net\t0\troot\t1012\t--domainName=a\n",
  );
  assert.deepEqual(call, {
    at: Date.parse("2026-12-01T08:00:01.000Z"),
    verb: "site:add:static",
    domain: "a.example.net",
    exit: 0,
    durationMs: 1012,
  });
  assert.throws(
    () => parseCalls("2026-12-01T08:00:01.000Z\tsite:add:static\ta\t0\troot\t--domainName=a\n"),
    /without duration_ms/,
  );
});

Deno.test("a verdict is met below its bound, or at it when inclusive", () => {
  assert.equal(verdict("x", 149.9, "ms", 150).met, true);
  assert.equal(verdict("x", 150, "ms", 150).met, false);
  assert.equal(verdict("x", 1.1, "×", 1.1, true).met, true);
  assert.equal(verdict("x", NaN, "ms", 150).met, false);
  assert.deepEqual(verdict("requests", 1000, "", 5, true), {
    figure: "requests",
    value: "1000",
    target: "≤ 5",
    met: false,
  });
  assert.match(table([verdict("warm", 83.2, "ms", 150)]), /warm\s+83\.2 ms\s+< 150 ms\s+met$/);
});
