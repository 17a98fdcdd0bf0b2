// The pg_net stand-in (extension + worker.ts) against the Postgres of a running local stack.

import assert from "node:assert/strict";
import { connectStackDb, dbTest, eventually, type Sql } from "./test_helpers.ts";

interface Received {
  method: string;
  path: string;
  headers: Headers;
  body: string;
}

type ResponseRow = {
  id: string;
  status_code: number | null;
  content_type: string | null;
  headers: Record<string, string> | null;
  content: string | null;
  timed_out: boolean | null;
  error_msg: string | null;
};

/** A local HTTP receiver that records every request; /ok answers 201 JSON, /slow takes 3 s. */
async function withReceiver(
  run: (base: string, received: Received[]) => Promise<void>,
): Promise<void> {
  const received: Received[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const url = new URL(request.url);
    received.push({
      method: request.method,
      path: url.pathname + url.search,
      headers: request.headers,
      body: await request.text(),
    });
    if (url.pathname === "/slow") {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 3000);
        request.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve();
        });
      });
      return new Response("too late");
    }
    if (url.pathname === "/ok") {
      return Response.json({ ok: true }, { status: 201, headers: { "x-reply": "yes" } });
    }
    return new Response(null, { status: 204 });
  });
  try {
    await run(`http://127.0.0.1:${server.addr.port}`, received);
  } finally {
    await server.shutdown();
  }
}

async function withPgNet(run: (sql: Sql) => Promise<void>): Promise<void> {
  const sql = await connectStackDb();
  try {
    await sql`create extension if not exists pg_net with schema extensions`;
    await sql`select net.check_worker_is_up()`;
    await run(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

function pgNetTest(name: string, run: (sql: Sql) => Promise<void>): void {
  dbTest(name, () => withPgNet(run));
}

/** A pg_net test with a receiver: `base` is its URL, `received` what reached it. */
function receiverTest(
  name: string,
  run: (sql: Sql, base: string, received: Received[]) => Promise<void>,
): void {
  dbTest(
    name,
    () => withPgNet((sql) => withReceiver((base, received) => run(sql, base, received))),
  );
}

function responseOf(sql: Sql, id: string): Promise<ResponseRow> {
  return eventually(`net._http_response row ${id}`, async () => {
    const [row] = await sql<ResponseRow[]>`select * from net._http_response where id = ${id}`;
    return row;
  });
}

pgNetTest(
  "net.http_post, http_get and http_delete have pg_net's signatures and defaults",
  async (sql) => {
    const rows = await sql<{ name: string; args: string }[]>`
      select p.proname as name, pg_get_function_arguments(p.oid) as args
      from pg_proc p where p.pronamespace = 'net'::regnamespace
        and p.proname in ('http_get', 'http_post', 'http_delete')
      order by p.proname`;
    assert.deepEqual(rows.map((row) => ({ ...row })), [
      {
        name: "http_delete",
        args: "url text, params jsonb DEFAULT '{}'::jsonb, headers jsonb DEFAULT '{}'::jsonb, " +
          "timeout_milliseconds integer DEFAULT 5000, body jsonb DEFAULT NULL::jsonb",
      },
      {
        name: "http_get",
        args: "url text, params jsonb DEFAULT '{}'::jsonb, headers jsonb DEFAULT '{}'::jsonb, " +
          "timeout_milliseconds integer DEFAULT 5000",
      },
      {
        name: "http_post",
        args: "url text, body jsonb DEFAULT '{}'::jsonb, params jsonb DEFAULT '{}'::jsonb, " +
          `headers jsonb DEFAULT '{"Content-Type": "application/json"}'::jsonb, ` +
          "timeout_milliseconds integer DEFAULT 5000",
      },
    ]);
  },
);

receiverTest(
  "a committed net.http_post reaches the receiver and its response lands in net._http_response",
  async (sql, base, received) => {
    const [{ id }] = await sql<{ id: string }[]>`
        select net.http_post(
          url := ${base + "/ok"},
          body := ${sql.json({ site_id: "s-1", nested: { n: 1 } })},
          params := ${sql.json({ "a b": "c&d" })},
          headers := ${sql.json({ apikey: "k-test", "Content-Type": "application/json" })},
          timeout_milliseconds := 3000
        ) as id`;

    const response = await responseOf(sql, id);
    const [request] = received;
    assert.equal(received.length, 1);
    assert.equal(request.method, "POST");
    assert.equal(request.path, "/ok?a%20b=c%26d");
    assert.equal(request.headers.get("apikey"), "k-test");
    assert.equal(request.headers.get("content-type"), "application/json");
    assert.equal(request.headers.get("user-agent"), "pg_net/0.20.4");
    assert.deepEqual(JSON.parse(request.body), { site_id: "s-1", nested: { n: 1 } });

    assert.equal(response.status_code, 201);
    assert.equal(response.content_type, "application/json");
    assert.equal(response.headers?.["x-reply"], "yes");
    assert.deepEqual(JSON.parse(response.content ?? "null"), { ok: true });
    assert.equal(response.timed_out, false);
    assert.equal(response.error_msg, null);
  },
);

receiverTest(
  "a queued request is sent only once its transaction commits, and never after a rollback",
  async (sql, base, received) => {
    const session = await sql.reserve();
    try {
      await session`begin`;
      const [{ id: committedId }] = await session<{ id: string }[]>`
          select net.http_post(url := ${base + "/committed"}) as id`;
      // The worker polls every second as well: it must not see the uncommitted row.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.equal(received.length, 0);
      await session`commit`;
      await responseOf(sql, committedId);
      assert.deepEqual(received.map((r) => r.path), ["/committed"]);

      await session`begin`;
      const [{ id: rolledBackId }] = await session<{ id: string }[]>`
          select net.http_post(url := ${base + "/rolled-back"}) as id`;
      await session`rollback`;
      // Requests go out in id order, so once a later one is answered the earlier one is gone.
      const [{ id: laterId }] = await sql<{ id: string }[]>`
          select net.http_post(url := ${base + "/later"}) as id`;
      await responseOf(sql, laterId);

      assert.deepEqual(received.map((r) => r.path), ["/committed", "/later"]);
      const leftovers = await sql`
          select id from net.http_request_queue where id = ${rolledBackId}
          union all select id from net._http_response where id = ${rolledBackId}`;
      assert.equal(leftovers.length, 0);
    } finally {
      session.release();
    }
  },
);

receiverTest(
  "a request slower than timeout_milliseconds is recorded as timed out",
  async (sql, base) => {
    const [{ id }] = await sql<{ id: string }[]>`
        select net.http_post(url := ${base + "/slow"}, timeout_milliseconds := 300) as id`;
    const response = await responseOf(sql, id);

    assert.equal(response.timed_out, true);
    assert.equal(response.status_code, null);
    assert.equal(response.content, null);
    const match = response.error_msg?.match(
      /^Timeout of 300 ms reached\. Total time: (\d+\.\d{6}) ms \(DNS time: .*\)$/,
    );
    assert.ok(match, `unexpected error_msg: ${response.error_msg}`);
    const totalMs = Number(match[1]);
    assert.ok(totalMs >= 300 && totalMs < 2000, `total time ${totalMs} ms`);
  },
);

dbTest("an unreachable server is recorded with libcurl's error text", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = listener.addr.port;
  listener.close();
  await withPgNet(async (sql) => {
    const [{ id }] = await sql<{ id: string }[]>`
      select net.http_get(url := ${`http://127.0.0.1:${closedPort}/`}) as id`;
    const response = await responseOf(sql, id);

    assert.equal(response.error_msg, "Couldn't connect to server");
    assert.equal(response.timed_out, false);
    assert.equal(response.status_code, null);
  });
});

receiverTest(
  "net.http_get and net.http_delete send their method, url-encoded params, headers and body",
  async (sql, base, received) => {
    const [{ id: getId }] = await sql<{ id: string }[]>`
        select net.http_get(
          url := ${base + "/get?fixed=1"},
          params := ${sql.json({ q: "x y/ü" })},
          headers := ${sql.json({ "x-trace": "t1" })}
        ) as id`;
    const [{ id: deleteId }] = await sql<{ id: string }[]>`
        select net.http_delete(url := ${base + "/delete"}, body := ${sql.json({ k: 1 })}) as id`;
    assert.equal((await responseOf(sql, getId)).status_code, 204);
    assert.equal((await responseOf(sql, deleteId)).status_code, 204);

    const get = received.find((r) => r.path.startsWith("/get"));
    const del = received.find((r) => r.path.startsWith("/delete"));
    assert.equal(get?.method, "GET");
    assert.equal(get?.path, "/get?fixed=1&q=x%20y%2F%C3%BC");
    assert.equal(get?.headers.get("x-trace"), "t1");
    assert.equal(del?.method, "DELETE");
    assert.deepEqual(JSON.parse(del?.body ?? "null"), { k: 1 });
  },
);

pgNetTest("net.http_post refuses a Content-Type other than application/json", async (sql) => {
  const url = `http://127.0.0.1:9/refused-${crypto.randomUUID()}`;
  await assert.rejects(
    sql`select net.http_post(url := ${url}, headers := ${
      sql.json({ "Content-Type": "text/plain" })
    })`,
    (error: Error) => error.message === 'Content-Type header must be "application/json"',
  );
  const queued = await sql`select id from net.http_request_queue where url = ${url}`;
  assert.equal(queued.length, 0);
});

pgNetTest("net.http_post refuses a malformed url", async (sql) => {
  await assert.rejects(
    sql`select net.http_post(url := 'not a url')`,
    (error: Error) => error.message === "URL using bad/illegal format or missing URL",
  );
});

receiverTest(
  "a batch is committed whole: a fast answer waits for the slow request queued with it",
  async (sql, base, received) => {
    const [{ slow, fast }] = await sql<{ slow: string; fast: string }[]>`
        select net.http_post(url := ${base + "/slow"}, timeout_milliseconds := 800) as slow,
               net.http_post(url := ${base + "/ok"}) as fast`;
    await eventually(
      "the fast request to arrive",
      () => Promise.resolve(received.some((r) => r.path === "/ok") || undefined),
    );
    // Well before the slow request's 800 ms deadline, but long after the fast answer came back.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const [early] = await sql`select id from net._http_response where id = ${fast}`;
    assert.equal(early, undefined, "the fast answer must not be visible before the batch ends");

    const slowRow = await responseOf(sql, slow);
    const [times] = await sql<{ same: boolean }[]>`
        select count(distinct created) = 1 as same from net._http_response
        where id in (${slow}, ${fast})`;
    assert.equal(slowRow.timed_out, true);
    assert.equal(times.same, true);
  },
);

pgNetTest("responses older than pg_net.ttl are deleted by the worker", async (sql) => {
  const [{ id }] = await sql<{ id: string }[]>`
      insert into net._http_response (id, status_code, created)
      values (-nextval('net.http_request_queue_id_seq'), 200, now() - interval '7 hours')
      returning id`;
  await eventually("the expired response to be deleted", async () => {
    const rows = await sql`select id from net._http_response where id = ${id}`;
    return rows.length === 0 ? true : undefined;
  }, 5000);
});

receiverTest(
  "net.worker_restart() makes the worker reconnect, and requests still go out",
  async (sql, base) => {
    const workerPids = () =>
      sql<{ pid: number }[]>`
          select pid from pg_stat_activity where application_name ilike 'pg_net % worker'`;
    const before = new Set((await workerPids()).map((row) => row.pid));
    const [{ reloaded }] = await sql<{ reloaded: boolean }[]>`
        select net.worker_restart() as reloaded`;
    assert.equal(reloaded, true);

    await eventually("a new worker connection", async () => {
      const now = await workerPids();
      return now.length > 0 && now.every((row) => !before.has(row.pid)) ? true : undefined;
    });
    await sql`select net.check_worker_is_up()`;
    const [{ id }] = await sql<{ id: string }[]>`select net.http_get(${base + "/ok"}) as id`;
    assert.equal((await responseOf(sql, id)).status_code, 201);
  },
);
