import assert from "node:assert/strict";
import { join } from "node:path";
import { loadFunctionRoutes, parseFunctionSettings } from "./function_config.ts";

Deno.test("verify_jwt and enabled are read per [functions.<name>] section", () => {
  const settings = parseFunctionSettings(`
project_id = "x"
[api]
verify_jwt = false # not a function section

[functions.hosting-automator]
enabled = true
# comment
verify_jwt = false   # service-to-service
entrypoint = "./functions/hosting-automator/index.ts"

[functions."quoted-name"]
enabled = false

[functions.other.sub]
verify_jwt = false
`);
  assert.deepEqual(Object.fromEntries(settings), {
    "hosting-automator": { enabled: true, verifyJwt: false },
    "quoted-name": { enabled: false },
  });
});

Deno.test("routes are the served folders, verify_jwt defaulting to true, disabled ones left out", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ha-function-config-" });
  try {
    for (const name of ["open", "guarded", "off", "_shared"]) {
      await Deno.mkdir(join(dir, "functions", name), { recursive: true });
      await Deno.writeTextFile(join(dir, "functions", name, "index.ts"), "");
    }
    await Deno.writeTextFile(
      join(dir, "config.toml"),
      "[functions.open]\nverify_jwt = false\n[functions.off]\nenabled = false\n",
    );
    const routes = await loadFunctionRoutes(join(dir, "functions"), join(dir, "config.toml"));
    assert.deepEqual(Object.fromEntries(routes), {
      guarded: { enabled: true, verifyJwt: true },
      open: { enabled: true, verifyJwt: false },
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the repository's config.toml turns verify_jwt off for hosting-automator", () => {
  const toml = Deno.readTextFileSync(new URL("../../../supabase/config.toml", import.meta.url));
  assert.equal(parseFunctionSettings(toml).get("hosting-automator")?.verifyJwt, false);
});
