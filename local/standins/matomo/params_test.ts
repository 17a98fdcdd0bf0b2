import assert from "node:assert/strict";
import {
  mergeGetWins,
  phpArrayFromPairs,
  type PhpValue,
  phpValues,
  readPhpRequest,
  splitPhpName,
} from "./params.ts";

/** A PHP array as plain nested objects, for readable assertions (order shown by entries). */
function plain(value: PhpValue): unknown {
  return typeof value === "string" ? value : [...value].map(([k, v]) => [k, plain(v)]);
}

Deno.test("splitPhpName reads base name and bracket path as PHP does", () => {
  assert.deepEqual(splitPhpName("urls[0]"), { base: "urls", path: ["0"] });
  assert.deepEqual(splitPhpName("urls[]"), { base: "urls", path: [""] });
  assert.deepEqual(splitPhpName("a[b][c]tail"), { base: "a", path: ["b", "c"] });
  assert.deepEqual(splitPhpName("site.name x"), { base: "site_name_x", path: [] });
  assert.deepEqual(splitPhpName("a[b"), { base: "a_b", path: [] });
  assert.equal(splitPhpName("[0]"), null);
});

Deno.test("indexed and appended array entries keep the order they were sent in", () => {
  const got = phpArrayFromPairs([["urls[1]", "b"], ["urls[0]", "a"], ["urls[]", "c"]]);
  assert.deepEqual(plain(got), [["urls", [["1", "b"], ["0", "a"], ["2", "c"]]]]);
  assert.deepEqual(phpValues(got.get("urls")!), ["b", "a", "c"]);
});

Deno.test("a plain name stays a string and a later duplicate replaces it", () => {
  const got = phpArrayFromPairs([["urls", "https://a"], ["x", "1"], ["urls", "https://b"]]);
  assert.deepEqual(plain(got), [["urls", "https://b"], ["x", "1"]]);
});

Deno.test("a scalar followed by an array entry of the same name becomes an array", () => {
  const got = phpArrayFromPairs([["urls", "s"], ["urls[0]", "a"]]);
  assert.deepEqual(plain(got), [["urls", [["0", "a"]]]]);
});

Deno.test("nested names build nested arrays", () => {
  const got = phpArrayFromPairs([["s[W][0][name]", "n"], ["s[W][0][value]", "v"]]);
  assert.deepEqual(plain(got), [["s", [["W", [["0", [["name", "n"], ["value", "v"]]]]]]]]);
});

Deno.test("$_GET + $_POST keeps GET's value for a key in both, and POST-only keys", () => {
  const merged = mergeGetWins(
    phpArrayFromPairs([["method", "A.b"]]),
    phpArrayFromPairs([["method", "C.d"], ["token_auth", "t"]]),
  );
  assert.deepEqual(plain(merged), [["method", "A.b"], ["token_auth", "t"]]);
});

Deno.test("readPhpRequest reads the query always and a form body only for POST", async () => {
  const body = "token_auth=t&urls%5B0%5D=https%3A%2F%2Fa.example&siteName=a+b";
  const headers = { "content-type": "application/x-www-form-urlencoded; charset=UTF-8" };
  const posted = await readPhpRequest(
    new Request("http://h/index.php?module=API&x=1", { method: "POST", body, headers }),
  );
  assert.deepEqual(posted.queryKeys, ["module", "x"]);
  assert.deepEqual(posted.bodyKeys, ["token_auth", "urls[0]", "siteName"]);
  assert.equal(posted.post.get("siteName"), "a b");
  assert.deepEqual(phpValues(posted.post.get("urls")!), ["https://a.example"]);

  const put = await readPhpRequest(new Request("http://h/", { method: "PUT", body, headers }));
  assert.equal(put.post.size, 0);
  const json = await readPhpRequest(
    new Request("http://h/", {
      method: "POST",
      body: '{"a":1}',
      headers: { "content-type": "application/json" },
    }),
  );
  assert.equal(json.post.size, 0);
});
