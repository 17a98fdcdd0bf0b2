// performRequest: how one queued pg_net request becomes one net._http_response row.

import assert from "node:assert/strict";
import { curlErrorText, performRequest, type QueuedRequest, timeoutMessage } from "./worker.ts";

function queued(overrides: Partial<QueuedRequest> = {}): QueuedRequest {
  return {
    id: "7",
    method: "POST",
    url: "http://127.0.0.1:1/hook",
    headers: { "Content-Type": "application/json" },
    body: new TextEncoder().encode('{"a":1}'),
    timeout_milliseconds: 1000,
    ...overrides,
  };
}

function recordingFetch(answer: () => Promise<Response>) {
  const calls: Array<{ url: string; init: RequestInit }> = [];
  const fetchImpl = (url: string, init: RequestInit) => {
    calls.push({ url, init });
    return answer();
  };
  return { calls, fetchImpl };
}

Deno.test("a successful answer is recorded with status, content type, headers and content", async () => {
  const { calls, fetchImpl } = recordingFetch(() =>
    Promise.resolve(
      new Response('{"accepted":1}', {
        status: 202,
        headers: { "Content-Type": "application/json", "X-Run": "r1" },
      }),
    )
  );
  const row = await performRequest(queued(), fetchImpl);

  assert.deepEqual(row, {
    id: "7",
    status_code: 202,
    content_type: "application/json",
    headers: { "content-type": "application/json", "x-run": "r1" },
    content: '{"accepted":1}',
    timed_out: false,
    error_msg: null,
  });
  assert.equal(calls.length, 1);
  assert.equal(calls[0].init.method, "POST");
  assert.equal(calls[0].init.redirect, "follow");
  const sent = new Headers(calls[0].init.headers);
  assert.equal(sent.get("user-agent"), "pg_net/0.20.4");
  assert.equal(sent.get("content-type"), "application/json");
});

Deno.test("a body without a Content-Type is sent as a form, as curl does", async () => {
  const { calls, fetchImpl } = recordingFetch(() => Promise.resolve(new Response(null)));
  await performRequest(queued({ method: "DELETE", headers: null }), fetchImpl);

  assert.equal(
    new Headers(calls[0].init.headers).get("content-type"),
    "application/x-www-form-urlencoded",
  );
});

Deno.test("an empty answer is stored as null content and a body ends at its first NUL", async () => {
  const empty = await performRequest(queued(), () => Promise.resolve(new Response("")));
  const withNul = await performRequest(
    queued(),
    () => Promise.resolve(new Response(new Uint8Array([104, 105, 0, 33]))),
  );

  assert.equal(empty.content, null);
  assert.equal(withNul.content, "hi");
});

Deno.test("a header holding a line break is refused and nothing is sent", async () => {
  const { calls, fetchImpl } = recordingFetch(() => Promise.resolve(new Response(null)));
  const row = await performRequest(queued({ headers: { "x-bad": "a\r\nInjected: 1" } }), fetchImpl);

  assert.equal(calls.length, 0);
  assert.equal(row.error_msg, 'header "x-bad" contains a carriage return or line feed');
  assert.equal(row.timed_out, false);
  assert.equal(row.status_code, null);
});

Deno.test("only http and https urls are sent, as with pg_net's curl protocols", async () => {
  const { calls, fetchImpl } = recordingFetch(() => Promise.resolve(new Response(null)));
  const row = await performRequest(queued({ url: "file:///etc/passwd" }), fetchImpl);

  assert.equal(calls.length, 0);
  assert.equal(row.error_msg, "Unsupported protocol");
});

Deno.test("a request still running at its deadline is aborted and recorded as timed out", async () => {
  let signal: AbortSignal | undefined;
  const hanging = (_url: string, init: RequestInit) => {
    signal = init.signal ?? undefined;
    return new Promise<Response>((_resolve, reject) => {
      init.signal?.addEventListener("abort", () => reject(init.signal?.reason));
    });
  };
  const clock = [1000, 1057.5];
  const row = await performRequest(
    queued({ timeout_milliseconds: 50 }),
    hanging,
    () => clock.shift()!,
  );

  assert.equal(signal?.aborted, true);
  assert.equal(row.timed_out, true);
  assert.equal(row.status_code, null);
  assert.equal(
    row.error_msg,
    "Timeout of 50 ms reached. Total time: 57.500000 ms (DNS time: 0.000000 ms, " +
      "TCP/SSL handshake time: 0.000000 ms, HTTP Request/Response time: 57.500000 ms)",
  );
});

Deno.test("a timeout below 1 ms is refused instead of meaning 'no timeout'", async () => {
  const { calls, fetchImpl } = recordingFetch(() => Promise.resolve(new Response(null)));
  const row = await performRequest(queued({ timeout_milliseconds: 0 }), fetchImpl);

  assert.equal(calls.length, 0);
  assert.equal(row.error_msg, "timeout_milliseconds must be at least 1, got 0");
});

Deno.test("Deno's fetch errors are reported with libcurl's texts", () => {
  const cases: Array<[string, string]> = [
    [
      "error sending request for url (http://127.0.0.1:1/): client error (Connect): tcp connect error: Connection refused (os error 111)",
      "Couldn't connect to server",
    ],
    [
      "error sending request for url (http://nowhere.invalid/): client error (Connect): dns error: failed to lookup address information: Name or service not known",
      "Couldn't resolve host name",
    ],
    [
      "error sending request for url (https://127.0.0.1/): client error (Connect): invalid peer certificate: UnknownIssuer",
      "SSL peer certificate or SSH remote key was not OK",
    ],
    [
      "error sending request for url (http://127.0.0.1/): client error (SendRequest): connection closed before message completed",
      "Server returned nothing (no headers, no data)",
    ],
    ["something nobody mapped", "something nobody mapped"],
  ];
  for (const [denoText, curlText] of cases) {
    assert.equal(curlErrorText(new TypeError(denoText)), curlText, denoText);
  }
});

Deno.test("the timeout message has pg_net's shape with six decimals", () => {
  assert.equal(
    timeoutMessage(5000, 5001.25),
    "Timeout of 5000 ms reached. Total time: 5001.250000 ms (DNS time: 0.000000 ms, " +
      "TCP/SSL handshake time: 0.000000 ms, HTTP Request/Response time: 5001.250000 ms)",
  );
});
