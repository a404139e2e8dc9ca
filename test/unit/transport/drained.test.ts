/**
 * drained(): every writer's wait for "drain" (src/transport/drained.ts).
 * Waiters on one stream share one pair of listeners; a close wakes them
 * with false; a stream already closed never makes anyone wait.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { drained } from "../../../src/transport/drained.js";

/** A writable that takes nothing until `release()` (a peer that does not read). */
function stuck(): { stream: Writable; release: () => void } {
  let pending: (() => void) | undefined;
  const stream = new Writable({
    highWaterMark: 4,
    write(_chunk, _encoding, callback) {
      pending = () => callback();
    },
  });
  assert.equal(stream.write(Buffer.alloc(8)), false);
  return { stream, release: () => pending?.() };
}

test("twenty waiters on one stream add one drain and one close listener, and all wake on drain", async () => {
  const { stream, release } = stuck();
  const drainBefore = stream.listenerCount("drain");
  const closeBefore = stream.listenerCount("close");
  const waits = Array.from({ length: 20 }, () => drained(stream));
  assert.equal(stream.listenerCount("drain"), drainBefore + 1);
  assert.equal(stream.listenerCount("close"), closeBefore + 1);
  release();
  assert.deepEqual(
    await Promise.all(waits),
    Array.from({ length: 20 }, () => true),
  );
  assert.equal(stream.listenerCount("drain"), drainBefore);
  assert.equal(stream.listenerCount("close"), closeBefore);
  // A later wait is a new one.
  assert.equal(stream.write(Buffer.alloc(8)), false);
  const again = drained(stream);
  stream.destroy();
  assert.equal(await again, false);
});

test("a close wakes every waiter with false and leaves no listener", async () => {
  const { stream } = stuck();
  const closeBefore = stream.listenerCount("close");
  const waits = [drained(stream), drained(stream), drained(stream)];
  stream.destroy();
  assert.deepEqual(await Promise.all(waits), [false, false, false]);
  assert.equal(stream.listenerCount("drain"), 0);
  assert.equal(stream.listenerCount("close"), closeBefore);
});

test("a stream closed already answers false at once (its close has passed: waiting would hang)", async () => {
  const { stream } = stuck();
  stream.destroy();
  await new Promise((resolve) => stream.once("close", resolve));
  const outcome = await Promise.race([
    drained(stream),
    new Promise((resolve) => setTimeout(() => resolve("still waiting"), 200)),
  ]);
  assert.equal(outcome, false);
});
