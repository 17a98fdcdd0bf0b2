import assert from "node:assert/strict";
import { join } from "node:path";
import { isFunctionName, listFunctions } from "./functions_dir.ts";

Deno.test("only folders with an index.ts count, and _shared and tests are skipped", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ha-functions-dir-" });
  try {
    for (const name of ["beta", "alpha", "_shared", "tests", "no-entry", "9bad"]) {
      await Deno.mkdir(join(dir, name));
      if (name !== "no-entry") await Deno.writeTextFile(join(dir, name, "index.ts"), "");
    }
    await Deno.writeTextFile(join(dir, "loose.ts"), "");
    assert.deepEqual(await listFunctions(dir), ["alpha", "beta"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a missing functions directory lists no functions", async () => {
  assert.deepEqual(await listFunctions("/nonexistent/ha-functions"), []);
});

Deno.test("function names follow the Supabase CLI rule", () => {
  assert.equal(isFunctionName("hosting-automator"), true);
  assert.equal(isFunctionName("a_b1"), true);
  assert.equal(isFunctionName("_shared"), false);
  assert.equal(isFunctionName("tests"), false);
  assert.equal(isFunctionName("1x"), false);
  assert.equal(isFunctionName("a.b"), false);
});
