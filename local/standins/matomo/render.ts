// Matomo stand-in, part 2 of 4: the bytes Matomo 5 and its nginx front send back.
//
// Replaces: Matomo's JSON API renderer (plugins/API/Renderer/Json.php), its HTML error page
// (Piwik_GetErrorMessagePage with the Morpheus simpleLayout templates) and nginx's own error pages.
// Follows: docs/matomo.md, table "Observed on a real Matomo 5.0.2" (Content-Types,
// `{"value":N}`, `[{"idsite":N}]`, `{"result":"error","message":…}`), PHP's default json_encode
// (`/` sent as `\/`, non-ASCII as `\uXXXX`), and a void result as Matomo's
// `{"result":"success","message":"ok"}`. Differs: no XML renderer (the product asks for JSON); in
// the HTML pages only the `<h2>message</h2>` line is observed, the rest follows the templates (a
// Matomo 5 page has more styling). JSONP (`callback=`) is not modelled.

export const JSON_TYPE = "application/json; charset=utf-8";
export const HTML_TYPE = "text/html; charset=utf-8";

/** A value returned by an API method, as Matomo would hold it in PHP; null for void. */
export type ApiValue = string | number | boolean | null | ApiValue[] | {
  [column: string]: ApiValue;
};

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

/** The body of a successful API answer: void as success, scalars wrapped as `{"value":…}`. */
export function renderApiValue(value: ApiValue): string {
  if (value === null) return phpJsonEncode({ result: "success", message: "ok" });
  return phpJsonEncode(typeof value === "object" ? value : { value });
}

/** The body of an API error (`{"result":"error","message":…}`); newlines become spaces. */
export function renderApiError(message: string): string {
  return phpJsonEncode({ result: "error", message: message.replace(/\r?\n/g, " ") });
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
