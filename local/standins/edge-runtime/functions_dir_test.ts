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
  const valid = ["hosting-automator", "a_b1"];
  for (const name of [...valid, "_shared", "tests", "1x", "a.b"]) {
    assert.equal(isFunctionName(name), valid.includes(name), name);
  }
});
