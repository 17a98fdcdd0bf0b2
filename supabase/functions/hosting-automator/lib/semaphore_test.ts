import assert from "node:assert/strict";
import { Semaphore } from "./semaphore.ts";

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A task the test finishes by hand, recording when it starts. */
function gate(started: string[], name: string) {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return {
    open,
    task: async () => {
      started.push(name);
      await opened;
      return name;
    },
  };
}

Deno.test("never more than the permitted number of tasks run at once, and all of them run", async () => {
  const semaphore = new Semaphore(3);
  let running = 0;
  let peak = 0;
  const results = await Promise.all(
    Array.from({ length: 12 }, (_, i) =>
      semaphore.run(async () => {
        running++;
        peak = Math.max(peak, running);
        assert.ok(semaphore.inUse <= 3);
        await delay(2 + (i % 3));
        running--;
        return i;
      })),
  );
  assert.equal(peak, 3);
  assert.deepEqual(results, Array.from({ length: 12 }, (_, i) => i));
  assert.equal(semaphore.inUse, 0);
});

Deno.test("waiting tasks start first come, first served", async () => {
  const semaphore = new Semaphore(1);
  const started: string[] = [];
  const gates = ["a", "b", "c", "d", "e"].map((name) => gate(started, name));
  const runs = gates.map((g) => semaphore.run(g.task));
  await delay(0);
  assert.deepEqual(started, ["a"]);
  // Finish them out of order: the next to start is still the longest waiting.
  gates[0].open();
  await delay(0);
  assert.deepEqual(started, ["a", "b"]);
  gates[3].open(); // d may finish early, but it has not started; b still holds the permit
  await delay(0);
  assert.deepEqual(started, ["a", "b"]);
  gates[1].open();
  await delay(0);
  assert.deepEqual(started, ["a", "b", "c"]);
  gates[2].open();
  gates[4].open();
  assert.deepEqual(await Promise.all(runs), ["a", "b", "c", "d", "e"]);
  assert.deepEqual(started, ["a", "b", "c", "d", "e"]);
});

Deno.test("inUse counts the holders, and a freed permit passes straight to a waiter", async () => {
  const semaphore = new Semaphore(2);
  const started: string[] = [];
  const [a, b, c] = ["a", "b", "c"].map((name) => gate(started, name));
  assert.equal(semaphore.inUse, 0);
  const runs = [semaphore.run(a.task), semaphore.run(b.task), semaphore.run(c.task)];
  await delay(0);
  assert.equal(semaphore.inUse, 2);
  assert.deepEqual(started, ["a", "b"]);
  a.open();
  await delay(0);
  assert.equal(semaphore.inUse, 2);
  assert.deepEqual(started, ["a", "b", "c"]);
  b.open();
  c.open();
  await Promise.all(runs);
  assert.equal(semaphore.inUse, 0);
});

Deno.test("a task that fails gives its error and frees its permit", async () => {
  const semaphore = new Semaphore(1);
  const failure = new Error("task failed");
  await assert.rejects(semaphore.run(() => Promise.reject(failure)), failure);
  await assert.rejects(
    semaphore.run(() => {
      throw failure;
    }),
    failure,
  );
  assert.equal(semaphore.inUse, 0);
  assert.equal(await semaphore.run(() => Promise.resolve("next")), "next");
});

Deno.test("a number of permits that is not a positive integer is refused", () => {
  for (const permits of [0, -1, 1.5, Number.NaN]) {
    assert.throws(() => new Semaphore(permits), RangeError, String(permits));
  }
  assert.equal(new Semaphore(1).permits, 1);
});
