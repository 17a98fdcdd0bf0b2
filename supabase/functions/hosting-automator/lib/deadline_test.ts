import assert from "node:assert/strict";
import { withDeadline } from "./deadline.ts";

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

class Timeout extends Error {}

/** A promise and the functions that settle it, for work the test finishes by hand. */
function manual<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

Deno.test("work that finishes in time gives its value and clears the timer", async () => {
  // Deno's op sanitizer fails this test if the 10 s timer is left running.
  let expired = false;
  const value = await withDeadline(
    delay(5).then(() => "done"),
    10_000,
    () => new Timeout(),
    () => {
      expired = true;
    },
  );
  assert.equal(value, "done");
  assert.equal(expired, false);
});

Deno.test("work that fails in time gives its own error", async () => {
  const failure = new Error("refused");
  await assert.rejects(withDeadline(Promise.reject(failure), 10_000, () => new Timeout()), failure);
});

Deno.test("work past the deadline rejects with the timeout error after calling onExpire", async () => {
  const order: string[] = [];
  const work = manual<string>();
  const started = Date.now();
  const result = withDeadline(
    work.promise,
    30,
    () => {
      order.push("onTimeout");
      return new Timeout("too slow");
    },
    () => order.push("onExpire"),
  );
  await assert.rejects(result, (error) => error instanceof Timeout && error.message === "too slow");
  assert.ok(Date.now() - started >= 25, "rejected before the deadline");
  assert.deepEqual(order, ["onExpire", "onTimeout"]);
  work.resolve("late");
});

Deno.test("a result that arrives after the deadline is ignored", async () => {
  const work = manual<string>();
  const result = withDeadline(work.promise, 10, () => new Timeout());
  await assert.rejects(result, Timeout);
  work.resolve("late");
  await delay(5);
});

Deno.test("a failure that arrives after the deadline is swallowed, never unhandled", async () => {
  // An unhandled rejection would fail this test (Deno reports it as an uncaught error).
  const work = manual<string>();
  const result = withDeadline(work.promise, 10, () => new Timeout());
  await assert.rejects(result, Timeout);
  work.reject(new Error("late failure"));
  await delay(10);
});

Deno.test("onExpire runs once, even if the work settles later", async () => {
  let calls = 0;
  const work = manual<number>();
  await assert.rejects(
    withDeadline(work.promise, 10, () => new Timeout(), () => calls++),
    Timeout,
  );
  work.resolve(1);
  await delay(20);
  assert.equal(calls, 1);
});

Deno.test("an onExpire that throws still gives the timeout error and throws nothing else", async () => {
  // A cancel hook that throws (a closed stream, say) must not become an uncaught exception in
  // the timer callback, which would end the whole isolate.
  const uncaught: unknown[] = [];
  const onError = (event: ErrorEvent) => {
    uncaught.push(event.error);
    event.preventDefault();
  };
  globalThis.addEventListener("error", onError);
  try {
    const work = manual<string>();
    await assert.rejects(
      withDeadline(work.promise, 10, () => new Timeout("deadline"), () => {
        throw new Error("cancel failed");
      }),
      Timeout,
    );
    await delay(10);
    assert.deepEqual(uncaught.map((e) => (e as Error)?.message), []);
  } finally {
    globalThis.removeEventListener("error", onError);
  }
});

Deno.test("a deadline that is not a positive finite number is refused at once", () => {
  for (const ms of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(
      () => withDeadline(Promise.resolve(1), ms, () => new Timeout()),
      RangeError,
      String(ms),
    );
  }
});
