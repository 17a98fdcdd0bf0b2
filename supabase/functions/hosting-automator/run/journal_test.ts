import assert from "node:assert/strict";
import { HostingError } from "../core/errors.ts";
import { createRedactor } from "../core/redact.ts";
import { FakeStore, job, memoryLog } from "../testing/fakes.ts";
import { createJournal } from "./journal.ts";

const SECRET = "journal-secret-value-99";

function journalWith(store = new FakeStore()) {
  const { log, lines } = memoryLog();
  const claim = job({ attempt: 3 });
  const journal = createJournal({ store, log, redact: createRedactor([SECRET]) }, claim);
  return { journal, store, lines, claim };
}

Deno.test("a recorded step is one event with the claim token and one log line", async () => {
  const { journal, store, lines, claim } = journalWith();
  await journal.record("certificate", "skipped", "CERTIFICATE_VALID", "kept", 12.6);
  assert.deepEqual(store.events, [{
    siteId: claim.site_id,
    attempt: 3,
    step: "certificate",
    outcome: "skipped",
    code: "CERTIFICATE_VALID",
    message: "kept",
    durationMs: 12.6,
    claimToken: claim.claim_token,
    kind: claim.kind,
  }]);
  assert.deepEqual(lines, [{
    level: "info",
    event: "step",
    site_id: claim.site_id,
    domain: "example.com",
    attempt: 3,
    step: "certificate",
    outcome: "skipped",
    code: "CERTIFICATE_VALID",
    duration_ms: 13,
    msg: "kept",
  }]);
});

Deno.test("the log level follows the outcome: error, warn, info", async () => {
  const { journal, lines } = journalWith();
  await journal.record("site", "error", "SITE_CONFLICT");
  await journal.record("analytics", "warning", "MATOMO_HTTP");
  await journal.record("site", "ok", "SITE_CREATED");
  assert.deepEqual(lines.map((l) => l.level), ["error", "warn", "info"]);
});

Deno.test("secrets are masked in the event and the log line", async () => {
  const { journal, store, lines } = journalWith();
  await journal.record("site", "error", "CLPCTL_FAILED", `output: ${SECRET}`);
  assert.equal(store.events[0].message, "output: ***");
  assert.equal(lines[0].msg, "output: ***");
});

Deno.test("a failed event write is logged, never thrown", async () => {
  const store = new FakeStore();
  store.recordEvent = () => Promise.reject(new Error(`hosting_record_event: reset ${SECRET}`));
  const { journal, lines, claim } = journalWith(store);
  await journal.record("site", "ok", "SITE_CREATED");
  assert.deepEqual(lines[1], {
    level: "error",
    event: "event_not_recorded",
    site_id: claim.site_id,
    step: "site",
    code: "DATABASE_ERROR",
    msg: "hosting_record_event: reset ***",
  });
});

Deno.test("a timed step records its outcome and returns its value", async () => {
  const { journal, store } = journalWith();
  const value = await journal.timed(
    "site",
    () => Promise.resolve({ value: 7, outcome: "ok" as const, code: "SITE_CREATED", message: "m" }),
  );
  assert.equal(value, 7);
  assert.deepEqual(store.trail, ["site:ok:SITE_CREATED"]);
});

Deno.test("a timed step that throws is recorded as an error and rethrown as a HostingError", async () => {
  const { journal, store } = journalWith();
  const thrown = new HostingError("DNS_NOT_READY", "not yet", { step: "certificate" });
  await assert.rejects(journal.timed("certificate", () => Promise.reject(thrown)), thrown);
  await assert.rejects(
    journal.timed("analytics", () => Promise.reject(new TypeError("boom"))),
    (error) => error instanceof HostingError && error.code === "INTERNAL",
  );
  assert.deepEqual(store.trail, ["certificate:error:DNS_NOT_READY", "analytics:error:INTERNAL"]);
  assert.equal(store.events[1].message, "unexpected error: boom");
});
