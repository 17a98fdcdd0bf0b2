// The DoH stand-in in-process: no socket, no stack.
import assert from "node:assert/strict";
import { createDnsStandin } from "./server.ts";

const BASE = "http://127.0.0.1:1";

async function query(handler: ReturnType<typeof createDnsStandin>, name: string, type: string) {
  const response = await handler(
    new Request(`${BASE}/dns-query?name=${name}&type=${type}`, {
      headers: { accept: "application/dns-json" },
    }),
  );
  return { status: response.status, body: await response.json().catch(() => null) };
}

const configure = (handler: ReturnType<typeof createDnsStandin>, body: unknown) =>
  handler(new Request(`${BASE}/__standin/records`, { method: "POST", body: JSON.stringify(body) }));

Deno.test("by default every name has one A record, 127.0.0.1, and no AAAA", async () => {
  const handler = createDnsStandin();
  const a = await query(handler, "anything.example", "A");
  assert.equal(a.status, 200);
  assert.equal(a.body.Status, 0);
  assert.deepEqual(a.body.Answer, [{
    name: "anything.example.",
    type: 1,
    TTL: 300,
    data: "127.0.0.1",
  }]);
  const aaaa = await query(handler, "anything.example", "AAAA");
  assert.equal(aaaa.body.Status, 0);
  assert.equal(aaaa.body.Answer, undefined);
});

Deno.test("a configured name answers its own A and AAAA records", async () => {
  const handler = createDnsStandin();
  await configure(handler, { name: "moved.example", addresses: ["192.0.2.1", "2001:db8::1"] });
  assert.deepEqual(
    (await query(handler, "moved.example", "A")).body.Answer.map((r: { data: string }) => r.data),
    ["192.0.2.1"],
  );
  assert.deepEqual((await query(handler, "moved.example", "AAAA")).body.Answer[0].type, 28);
});

Deno.test("a name marked absent is NXDOMAIN (Status 3)", async () => {
  const handler = createDnsStandin();
  await configure(handler, { name: "gone.example", absent: true });
  const answer = await query(handler, "gone.example", "A");
  assert.equal(answer.body.Status, 3);
});

Deno.test("a name marked unavailable answers 503; hang answers only when the client leaves", async () => {
  const handler = createDnsStandin();
  await configure(handler, { name: "down.example", fault: "unavailable" });
  assert.equal((await query(handler, "down.example", "A")).status, 503);
  await configure(handler, { name: "slow.example", fault: "hang" });
  const controller = new AbortController();
  const pending = handler(
    new Request(`${BASE}/dns-query?name=slow.example&type=A`, { signal: controller.signal }),
  );
  const raced = await Promise.race([
    pending.then(() => "answered"),
    new Promise((r) => setTimeout(() => r("hangs"), 50)),
  ]);
  assert.equal(raced, "hangs");
  controller.abort();
  await pending;
});

Deno.test("the query log and reset", async () => {
  const handler = createDnsStandin();
  await configure(handler, { name: "x.example", addresses: [] });
  await query(handler, "x.example", "A");
  await query(handler, "y.example", "A");
  const log = await (await handler(new Request(`${BASE}/__standin/queries`))).json();
  assert.deepEqual(log, ["x.example A -", "y.example A 127.0.0.1"]);
  await handler(new Request(`${BASE}/__standin/reset`, { method: "POST" }));
  assert.deepEqual(await (await handler(new Request(`${BASE}/__standin/queries`))).json(), []);
  assert.equal((await query(handler, "x.example", "A")).body.Answer[0].data, "127.0.0.1");
});

Deno.test("a bad query or control body is 400", async () => {
  const handler = createDnsStandin();
  assert.equal((await query(handler, "", "A")).status, 400);
  assert.equal((await query(handler, "a.example", "MX")).status, 400);
  assert.equal((await configure(handler, { addresses: ["1.2.3.4"] })).status, 400);
  assert.equal((await configure(handler, { name: "a.example", fault: "slow" })).status, 400);
});
