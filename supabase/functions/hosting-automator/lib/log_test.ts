import assert from "node:assert/strict";
import { createRedactor } from "../core/redact.ts";
import { createLogger } from "./log.ts";

const NOW = new Date("2025-01-01T12:00:00.000Z");
const SECRET = "sb_secret_do_not_log_me";

function capture() {
  const lines: string[] = [];
  const log = createLogger(createRedactor([SECRET]), (line) => lines.push(line), () => NOW);
  return { lines, log };
}

Deno.test("each call writes one JSON line: ts, level and event first, then the fields", () => {
  const { lines, log } = capture();
  log("info", "step", { site_id: "s1", domain: "example.com", attempt: 2, duration_ms: 15 });
  assert.equal(lines.length, 1);
  assert.ok(!lines[0].includes("\n"));
  assert.equal(
    lines[0],
    '{"ts":"2025-01-01T12:00:00.000Z","level":"info","event":"step","site_id":"s1",' +
      '"domain":"example.com","attempt":2,"duration_ms":15}',
  );
});

Deno.test("a call without fields writes only ts, level and event", () => {
  const { lines, log } = capture();
  log("warn", "beforeunload");
  assert.deepEqual(JSON.parse(lines[0]), {
    ts: "2025-01-01T12:00:00.000Z",
    level: "warn",
    event: "beforeunload",
  });
});

Deno.test("undefined fields are left out, null and zero are kept", () => {
  const { lines, log } = capture();
  log("error", "finish", {
    code: undefined,
    msg: "m",
    outcome: undefined,
    attempt: 0,
    extra: null,
  });
  const record = JSON.parse(lines[0]);
  assert.deepEqual(Object.keys(record), ["ts", "level", "event", "msg", "attempt", "extra"]);
  assert.equal(record.attempt, 0);
  assert.equal(record.extra, null);
});

Deno.test("a secret in a string field is masked", () => {
  const { lines, log } = capture();
  log("error", "request_failed", { msg: `bad key ${SECRET} given` });
  assert.equal(JSON.parse(lines[0]).msg, "bad key *** given");
  assert.ok(!lines[0].includes(SECRET));
});

Deno.test("a secret in the event name or inside a nested value is masked", () => {
  const { lines, log } = capture();
  log("info", `event-${SECRET}`, { detail: { inner: [`x ${SECRET} y`] } });
  assert.ok(!lines[0].includes(SECRET), lines[0]);
  const record = JSON.parse(lines[0]);
  assert.equal(record.event, "event-***");
  assert.deepEqual(record.detail, { inner: ["x *** y"] });
});

Deno.test("a private key in a field is masked", () => {
  const { lines, log } = capture();
  const armour = "PRIVATE KEY-----";
  log("error", "x", {
    msg: `got -----BEGIN OPENSSH ${armour}\nAAAA\n-----END OPENSSH ${armour} back`,
  });
  assert.equal(JSON.parse(lines[0]).msg, "got *** back");
});

Deno.test("the line stays valid JSON when a nested value holds the start of a private key", () => {
  // A truncated key (say, the first 200 characters of an error) has no END line to stop at.
  const { lines, log } = capture();
  const armour = "PRIVATE KEY-----";
  log("error", "x", { error: { message: `-----BEGIN OPENSSH ${armour}\nAAAA` }, attempt: 1 });
  const record = JSON.parse(lines[0]);
  assert.equal(record.error.message, "***");
  assert.equal(record.attempt, 1);
});

Deno.test("a secret holding a quote or a backslash is masked inside a nested value too", () => {
  // JSON escapes " and \, so the serialised line no longer contains the secret as written.
  const passphrase = 'pass"phrase\\with-quote';
  const lines: string[] = [];
  const log = createLogger(createRedactor([passphrase]), (line) => lines.push(line), () => NOW);
  log("error", "x", { msg: `top ${passphrase}`, error: { message: `nested ${passphrase}` } });
  const record = JSON.parse(lines[0]);
  assert.equal(record.msg, "top ***");
  assert.equal(record.error.message, "nested ***");
});

Deno.test("the default clock stamps the current time", () => {
  const lines: string[] = [];
  const log = createLogger((text) => text, (line) => lines.push(line));
  const before = Date.now();
  log("debug", "tick");
  const ts = Date.parse(JSON.parse(lines[0]).ts);
  assert.ok(ts >= before && ts <= Date.now());
});
