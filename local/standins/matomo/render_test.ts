import assert from "node:assert/strict";
import {
  matomoErrorPage,
  nginxErrorPage,
  phpJsonEncode,
  renderApiError,
  renderApiValue,
} from "./render.ts";

const HEAD = '<?xml version="1.0" encoding="utf-8" ?>\n';

Deno.test("phpJsonEncode escapes slashes and non-ASCII like PHP's json_encode", () => {
  assert.equal(
    phpJsonEncode({ u: "https://é.example/€" }),
    '{"u":"https:\\/\\/\\u00e9.example\\/\\u20ac"}',
  );
  assert.equal(phpJsonEncode([{ idsite: 1 }]), '[{"idsite":1}]');
});

Deno.test('a scalar renders as {"value":…} in JSON and <result>…</result> in XML', () => {
  assert.equal(renderApiValue("json", 7), '{"value":7}');
  assert.equal(renderApiValue("json", "5.0.2"), '{"value":"5.0.2"}');
  assert.equal(renderApiValue("xml", 7), `${HEAD}<result>7</result>`);
  assert.equal(renderApiValue("xml", ""), `${HEAD}<result />`);
});

Deno.test("a list of rows renders as nested row elements; an empty list as <result />", () => {
  assert.equal(
    renderApiValue("xml", [{ idsite: 1 }, { idsite: 2 }]),
    `${HEAD}<result>\n\t<row>\n\t\t<idsite>1</idsite>\n\t</row>\n\t<row>\n\t\t<idsite>2</idsite>\n\t</row>\n</result>`,
  );
  assert.equal(renderApiValue("xml", []), `${HEAD}<result />`);
  assert.equal(renderApiValue("json", []), "[]");
});

Deno.test("a single row is wrapped in one <row>, with empty values as empty elements", () => {
  assert.equal(
    renderApiValue("xml", { idsite: 1, name: "a & <b>", group: "" }),
    `${HEAD}<result>\n\t<row>\n\t\t<idsite>1</idsite>\n\t\t<name>a &amp; &lt;b&gt;</name>\n\t\t<group />\n\t</row>\n</result>`,
  );
});

Deno.test("a row holding a list renders the list's items as row elements", () => {
  assert.equal(
    renderApiValue("xml", [{ idsite: 1, alias_urls: ["https://a"] }]),
    `${HEAD}<result>\n\t<row>\n\t\t<idsite>1</idsite>\n\t\t<alias_urls>\n\t\t\t<row>https://a</row>\n\t\t</alias_urls>\n\t</row>\n</result>`,
  );
});

Deno.test("errors render as result/message JSON with newlines flattened, or an XML error element", () => {
  assert.equal(renderApiError("json", "a\nb 'c'"), `{"result":"error","message":"a b 'c'"}`);
  assert.equal(
    renderApiError("xml", 'say "x"'),
    `${HEAD}<result>\n\t<error message="say &quot;x&quot;" />\n</result>`,
  );
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
