import assert from "node:assert/strict";
import { DotenvSyntaxError, parseDotenv } from "./dotenv.ts";

Deno.test("plain, single-quoted and double-quoted values are read as written", () => {
  const env = parseDotenv(
    [
      "PLAIN=value with spaces  ",
      "SINGLE='  kept  '",
      'DOUBLE="double"',
      "EMPTY=",
      "export EXPORTED=yes",
    ].join("\n"),
  );
  assert.deepEqual(env, {
    PLAIN: "value with spaces",
    SINGLE: "  kept  ",
    DOUBLE: "double",
    EMPTY: "",
    EXPORTED: "yes",
  });
});

Deno.test("backslash-n stays literal in every quoting style", () => {
  const env = parseDotenv(
    "A=one\\ntwo\nB='one\\ntwo'\nC=\"one\\ntwo\"\n",
  );
  assert.equal(env.A, "one\\ntwo");
  assert.equal(env.B, "one\\ntwo");
  assert.equal(env.C, "one\\ntwo");
});

Deno.test("an escaped double quote inside double quotes becomes a quote", () => {
  assert.equal(parseDotenv('JSON="{\\"default\\":\\"x\\"}"').JSON, '{"default":"x"}');
});

Deno.test("json inside single quotes is kept byte for byte", () => {
  assert.equal(
    parseDotenv(`SUPABASE_SECRET_KEYS='{"default":"sb_secret_abc"}'`).SUPABASE_SECRET_KEYS,
    '{"default":"sb_secret_abc"}',
  );
});

Deno.test("comments and blank lines are skipped and an inline comment ends a plain value", () => {
  const env = parseDotenv("# header\n\nA=1 # trailing\nB='x # not a comment' # comment\nC=a#b\n");
  assert.deepEqual(env, { A: "1", B: "x # not a comment", C: "a#b" });
});

Deno.test("a quoted value may span lines, as a pasted PEM key does", () => {
  const env = parseDotenv("KEY='-----BEGIN\nabc\n-----END'\nNEXT=1");
  assert.equal(env.KEY, "-----BEGIN\nabc\n-----END");
  assert.equal(env.NEXT, "1");
});

Deno.test("a repeated key keeps the last value", () => {
  assert.equal(parseDotenv("A=1\nA=2").A, "2");
});

Deno.test("a line without a key, a bad key or an unterminated quote is rejected with its line", () => {
  assert.throws(() => parseDotenv("A=1\nnot an assignment"), (err: unknown) => {
    assert.ok(err instanceof DotenvSyntaxError);
    assert.equal(err.line, 2);
    return true;
  });
  assert.throws(() => parseDotenv("1BAD=x"), /invalid key "1BAD"/);
  assert.throws(() => parseDotenv("A='open"), /unterminated '-quoted value for A/);
  assert.throws(() => parseDotenv("A='x' junk"), /unexpected text after the quoted value of A/);
});
