import assert from "node:assert/strict";
import { type BodyIssue, parseBody, type Work } from "./request.ts";

const ID = "3f0c1a2b-4d5e-4f60-8a7b-9c0d1e2f3a4b";

function work(text: string): Work {
  const parsed = parseBody(text);
  assert.equal(parsed.ok, true, parsed.ok ? "" : JSON.stringify(parsed.issues));
  if (!parsed.ok) throw new Error("unreachable");
  return parsed.work;
}

function issues(text: string): BodyIssue[] {
  const parsed = parseBody(text);
  assert.equal(parsed.ok, false, `expected ${text} to be refused`);
  if (parsed.ok) throw new Error("unreachable");
  assert.ok(parsed.issues.length > 0);
  return parsed.issues;
}

const webhook = (type: string, record: unknown, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ type, table: "sites", schema: "public", record, old_record: null, ...extra });

Deno.test("a site_id body asks for that one site", () => {
  assert.deepEqual(work(JSON.stringify({ site_id: ID })), {
    siteId: ID,
    wait: false,
    dryRun: false,
  });
});

Deno.test("an empty object asks for every due site", () => {
  assert.deepEqual(work("{}"), { siteId: undefined, wait: false, dryRun: false });
});

Deno.test("an empty or blank body counts as an empty object", () => {
  assert.deepEqual(work(""), { siteId: undefined, wait: false, dryRun: false });
  assert.deepEqual(work("  \n"), { siteId: undefined, wait: false, dryRun: false });
});

Deno.test("wait and dry_run are read with every body shape", () => {
  assert.deepEqual(work(JSON.stringify({ site_id: ID, wait: true, dry_run: true })), {
    siteId: ID,
    wait: true,
    dryRun: true,
  });
  assert.deepEqual(work(JSON.stringify({ wait: true })), {
    siteId: undefined,
    wait: true,
    dryRun: false,
  });
  assert.deepEqual(work(JSON.stringify({ dry_run: true, wait: false })), {
    siteId: undefined,
    wait: false,
    dryRun: true,
  });
  assert.deepEqual(work(webhook("UPDATE", { id: ID }, { wait: true })), {
    siteId: ID,
    wait: true,
    dryRun: false,
  });
});

Deno.test("options that are not booleans are refused", () => {
  assert.deepEqual(issues(JSON.stringify({ wait: "yes" })).map((i) => i.path), ["wait"]);
  assert.deepEqual(issues(JSON.stringify({ site_id: ID, dry_run: 1 })).map((i) => i.path), [
    "dry_run",
  ]);
});

Deno.test("a Database Webhook INSERT asks for the inserted row", () => {
  assert.deepEqual(
    work(webhook("INSERT", { id: ID, domain: "example.com", status_dns: "active" })),
    { siteId: ID, wait: false, dryRun: false },
  );
});

Deno.test("a Database Webhook UPDATE asks for the updated row", () => {
  assert.deepEqual(
    work(
      webhook("UPDATE", { id: ID, status_dns: "active" }, {
        old_record: { id: ID, status_dns: "pending" },
      }),
    ),
    { siteId: ID, wait: false, dryRun: false },
  );
});

Deno.test("a Database Webhook DELETE is refused: there is no site to provision", () => {
  assert.deepEqual(issues(webhook("DELETE", null, { old_record: { id: ID } })), [
    { path: "record", message: "a DELETE event has no site to provision" },
  ]);
});

Deno.test("a webhook for another table or schema is refused", () => {
  assert.deepEqual(issues(webhook("INSERT", { id: ID }, { table: "users" })).map((i) => i.path), [
    "table",
  ]);
  assert.deepEqual(issues(webhook("INSERT", { id: ID }, { schema: "auth" })).map((i) => i.path), [
    "schema",
  ]);
});

Deno.test("a webhook of an unknown type or without a usable record id is refused", () => {
  assert.deepEqual(issues(webhook("TRUNCATE", { id: ID })).map((i) => i.path), ["type"]);
  assert.deepEqual(issues(webhook("INSERT", { domain: "example.com" })).map((i) => i.path), [
    "record.id",
  ]);
  assert.deepEqual(issues(webhook("INSERT", { id: "42" })).map((i) => i.path), ["record.id"]);
  assert.ok(issues(JSON.stringify({ type: "INSERT" })).length >= 2);
});

Deno.test("unknown keys are refused next to site_id and in an otherwise empty body", () => {
  assert.deepEqual(issues(JSON.stringify({ site_id: ID, domain: "example.com" })).length, 1);
  assert.deepEqual(issues(JSON.stringify({ siteId: ID })).length, 1);
  assert.deepEqual(issues(JSON.stringify({ all: true })).length, 1);
});

Deno.test("a site_id that is not a uuid is refused at site_id", () => {
  for (const id of ["42", "not-a-uuid", "", `${ID}x`, 42, null]) {
    assert.deepEqual(
      issues(JSON.stringify({ site_id: id })).map((i) => i.path),
      ["site_id"],
      String(id),
    );
  }
});

Deno.test("a body that is not valid JSON is refused", () => {
  for (const text of ["{", "site_id=1", "{'site_id': 1}"]) {
    assert.deepEqual(issues(text), [{ path: "", message: "the body is not valid JSON" }], text);
  }
});

Deno.test("a JSON body that is not an object is refused", () => {
  for (const text of ["[]", `[{"site_id":"${ID}"}]`, "null", '"text"', "42", "true"]) {
    assert.deepEqual(issues(text), [{ path: "", message: "the body must be a JSON object" }], text);
  }
});

Deno.test("action deprovision asks to remove the named site, keeping analytics unless told", () => {
  assert.deepEqual(work(JSON.stringify({ site_id: ID, action: "deprovision" })), {
    siteId: ID,
    wait: false,
    dryRun: false,
    deprovision: { deleteAnalytics: false },
  });
  assert.deepEqual(
    work(
      JSON.stringify({ site_id: ID, action: "deprovision", delete_analytics: true, wait: true }),
    ),
    { siteId: ID, wait: true, dryRun: false, deprovision: { deleteAnalytics: true } },
  );
  assert.deepEqual(work(JSON.stringify({ site_id: ID, action: "provision" })), {
    siteId: ID,
    wait: false,
    dryRun: false,
  });
});

Deno.test("delete_analytics without deprovision, an unknown action, or deprovision without a site are refused", () => {
  assert.equal(
    issues(JSON.stringify({ site_id: ID, delete_analytics: true }))[0].path,
    "delete_analytics",
  );
  assert.equal(issues(JSON.stringify({ site_id: ID, action: "delete" }))[0].path, "action");
  assert.ok(issues(JSON.stringify({ action: "deprovision" })).length > 0);
});
