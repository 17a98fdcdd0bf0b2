// Which headers a proxy passes on: shared by the gateway stand-in (Kong → edge runtime) and the
// edge-runtime stand-in's supervisor (→ the function's worker).

/** Hop-by-hop and transport headers that a proxy must not forward (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "te",
  "trailer",
  "host",
  "content-length",
  "accept-encoding",
]);

/** The request headers to send upstream. */
export function forwardedRequestHeaders(headers: Headers): Headers {
  const out = new Headers();
  for (const [key, value] of headers) {
    if (!HOP_BY_HOP.has(key)) out.set(key, value);
  }
  return out;
}

/** The response headers to relay back (fetch has already decoded any content-encoding). */
export function relayedResponseHeaders(headers: Headers): Headers {
  const out = new Headers();
  for (const [key, value] of headers) {
    if (!HOP_BY_HOP.has(key) && key !== "content-encoding") out.set(key, value);
  }
  return out;
}
