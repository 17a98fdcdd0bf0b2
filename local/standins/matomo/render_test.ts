import assert from "node:assert/strict";
import {
  matomoErrorPage,
  nginxErrorPage,
  phpJsonEncode,
  renderApiError,
  renderApiValue,
} from "./render.ts";

Deno.test("phpJsonEncode escapes slashes and non-ASCII like PHP's json_encode", () => {
  assert.equal(
    phpJsonEncode({ u: "https://é.example/€" }),
    '{"u":"https:\\/\\/\\u00e9.example\\/\\u20ac"}',
  );
  assert.equal(phpJsonEncode([{ idsite: 1 }]), '[{"idsite":1}]');
});

Deno.test('a scalar renders as {"value":…}, a list as itself and void as success', () => {
  assert.equal(renderApiValue(7), '{"value":7}');
  assert.equal(renderApiValue("5.0.2"), '{"value":"5.0.2"}');
  assert.equal(renderApiValue([]), "[]");
  assert.equal(renderApiValue(null), '{"result":"success","message":"ok"}');
});

Deno.test("errors render as result/message JSON with newlines flattened", () => {
  assert.equal(renderApiError("a\nb 'c'"), `{"result":"error","message":"a b 'c'"}`);
});

Deno.test("Matomo's error page carries the escaped message in an h2", () => {
  const page = matomoErrorPage("Bad <token>");
  assert.ok(page.startsWith("<!DOCTYPE html>"));
  assert.ok(page.includes("<h2>Bad &lt;token&gt;</h2>"));
});

Deno.test("nginx's error pages use CRLF and the reason phrase", () => {
  assert.equal(
    nginxErrorPage(502),
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n" +
      "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
  );
  assert.ok(nginxErrorPage(504).includes("504 Gateway Time-out"));
});
