// Matomo stand-in, part 2 of 4: the bytes Matomo 5 and its nginx front send back.
//
// Replaces: Matomo's API renderers (plugins/API/Renderer/{Json,Xml}.php and
// core/DataTable/Renderer/Xml.php), its HTML error page (Piwik_GetErrorMessagePage with the
// Morpheus simpleLayout templates) and nginx's own error pages. Follows:
// docs/matomo.md#observed-answers (Content-Types, `{"value":N}`, `[{"idsite":N}]`,
// `{"result":"error","message":…}`), and PHP's default json_encode (`/` sent as `\/`, non-ASCII as
// `\uXXXX`). Differs: the observed table prints XML bodies compacted and without the declaration;
// here they carry the `<?xml …?>` line, tabs and newlines that core/DataTable/Renderer/Xml.php
// writes. In the HTML pages only the `<h2>message</h2>` line is observed; the rest of the page
// follows the templates (a Matomo 5 page has more styling). JSONP (`callback=`) is not modelled.

export const JSON_TYPE = "application/json; charset=utf-8";
export const XML_TYPE = "text/xml; charset=utf-8";
export const HTML_TYPE = "text/html; charset=utf-8";

/** A value returned by an API method, as Matomo would hold it in PHP. */
export type ApiValue = string | number | boolean | null | ApiValue[] | ApiRow;
export interface ApiRow {
  [column: string]: ApiValue;
}

export type ApiFormat = "json" | "xml";

const XML_DECLARATION = '<?xml version="1.0" encoding="utf-8" ?>\n';

/** PHP `json_encode($value)` with default flags. */
export function phpJsonEncode(value: ApiValue): string {
  return JSON.stringify(value)
    .replaceAll("/", "\\/")
    .replace(/[\u0080-\uffff]/g, (ch) => "\\u" + ch.charCodeAt(0).toString(16).padStart(4, "0"));
}

/** PHP `htmlspecialchars($s, ENT_COMPAT)`: single quotes stay literal. */
export function htmlSpecialChars(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");
}

/** Renderer::formatValueXml for a scalar. */
function xmlValue(value: string | number | boolean | null): string {
  if (value === null) return "";
  if (typeof value === "boolean") return value ? "1" : "0";
  if (typeof value === "number") return String(value);
  return htmlSpecialChars(value);
}

function isRow(value: ApiValue): value is ApiRow {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** core/DataTable/Renderer/Xml.php::renderArray, for lists and rows. */
function xmlArray(array: ApiValue[] | ApiRow, prefix: string): string {
  const assoc = isRow(array);
  const entries: [string, ApiValue][] = assoc
    ? Object.entries(array)
    : array.map((v, i) => [String(i), v]);
  const hasNested = entries.some(([, v]) => typeof v === "object" && v !== null);
  // Root associative arrays without nested arrays are wrapped in one <row> (backward compatibility).
  const wrap = prefix === "\t" && assoc && !hasNested && entries.length > 1;
  let out = "";
  let inner = prefix;
  if (wrap) {
    out += `${prefix}<row>\n`;
    inner += "\t";
  }
  for (const [key, value] of entries) {
    const open = assoc ? `<${key}>` : "<row>";
    const close = assoc ? `</${key}>` : "</row>";
    const empty = assoc ? `<${key} />` : "<row/>";
    if (typeof value === "object" && value !== null) {
      out += `${inner}${open}\n${xmlArray(value, inner + "\t")}${inner}${close}\n`;
    } else {
      const text = xmlValue(value);
      out += text === "" ? `${inner}${empty}\n` : `${inner}${open}${text}${close}\n`;
    }
  }
  if (wrap) out += `${prefix}</row>\n`;
  return out;
}

/** The body of a successful API answer. Scalars are wrapped as `{"value":…}` in JSON. */
export function renderApiValue(format: ApiFormat, value: ApiValue): string {
  const scalar = typeof value !== "object" || value === null;
  if (format === "json") return phpJsonEncode(scalar ? { value } : value);
  if (scalar) {
    const text = xmlValue(value);
    return XML_DECLARATION + (text === "" ? "<result />" : `<result>${text}</result>`);
  }
  const empty = Array.isArray(value) ? value.length === 0 : Object.keys(value).length === 0;
  if (empty) return XML_DECLARATION + "<result />";
  return `${XML_DECLARATION}<result>\n${xmlArray(value, "\t")}</result>`;
}

/** The body of an API error (`{"result":"error","message":…}`); newlines become spaces in JSON. */
export function renderApiError(format: ApiFormat, message: string): string {
  if (format === "json") {
    return phpJsonEncode({ result: "error", message: message.replace(/\r?\n/g, " ") });
  }
  return `${XML_DECLARATION}<result>\n\t<error message="${
    htmlSpecialChars(message)
  }" />\n</result>`;
}

export function contentTypeFor(format: ApiFormat): string {
  return format === "json" ? JSON_TYPE : XML_TYPE;
}

/** Matomo's HTML error page (Piwik_GetErrorMessagePage), e.g. for a token refused outside the API. */
export function matomoErrorPage(message: string): string {
  return [
    "<!DOCTYPE html>",
    "<html>",
    "<head>",
    '\t<meta charset="utf-8">',
    '\t<meta name="robots" content="noindex,nofollow">',
    "\t<title>Matomo &rsaquo; Error</title>",
    '\t<link rel="shortcut icon" href="plugins/CoreHome/images/favicon.png" />',
    "</head>",
    '<body id="simple">',
    "",
    '<div class="logo">',
    '\t<img title="Matomo" alt="Matomo" src="plugins/Morpheus/images/logo.svg"/>',
    "</div>",
    "",
    '<div class="box">',
    "",
    '\t<div class="header">',
    "\t\t<h1>An error occurred</h1>",
    "\t</div>",
    "",
    '\t<div class="content">' + `<h2>${htmlSpecialChars(message)}</h2>` +
    '<p><a href="javascript:window.history.back();">Go Back</a>' +
    ' | <a href="index.php">Go to Matomo</a></p>  ',
    "    </div>",
    "",
    "</div>",
    "</body>",
    "</html>",
    "",
  ].join("\n");
}

const NGINX_REASONS: Record<number, string> = {
  404: "404 Not Found",
  502: "502 Bad Gateway",
  503: "503 Service Temporarily Unavailable",
  504: "504 Gateway Time-out",
};

/** nginx's built-in error page (CRLF line ends, `Content-Type: text/html`, no charset). */
export function nginxErrorPage(status: 404 | 502 | 503 | 504): string {
  const reason = NGINX_REASONS[status];
  return `<html>\r\n<head><title>${reason}</title></head>\r\n<body>\r\n` +
    `<center><h1>${reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n`;
}
