/** src/logging/output-budget.ts: the token bucket that bounds how much plugin output the host logs. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { OutputBudget } from "../../../src/logging/output-budget.js";

/** A budget of 2 lines / 100 bytes per second (bursts the same), on a clock the test moves. */
function budget(): {
  b: OutputBudget;
  changes: Array<[boolean, number]>;
  advance: (ms: number) => void;
} {
  let now = 0;
  const changes: Array<[boolean, number]> = [];
  const b = new OutputBudget(
    (dropping, dropped) => changes.push([dropping, dropped]),
    2,
    100,
    2,
    100,
    () => now,
  );
  return { b, changes, advance: (ms) => (now += ms) };
}

test("admits lines within the burst, then drops and says so once", () => {
  const { b, changes } = budget();
  assert.deepEqual(
    [b.admit(10), b.admit(10), b.admit(10), b.admit(10)],
    [true, true, false, false],
  );
  assert.deepEqual(changes, [[true, 0]]);
});

test("a line larger than the bytes left is dropped even with lines left", () => {
  const { b } = budget();
  assert.equal(b.admit(90), true);
  assert.equal(b.admit(20), false);
});

test("refills over time and reports how many lines were lost when dropping ends", () => {
  const { b, changes, advance } = budget();
  b.admit(1);
  b.admit(1);
  b.admit(1);
  b.admit(1);
  advance(1_000);
  assert.equal(b.admit(1), true);
  assert.deepEqual(changes, [
    [true, 0],
    [false, 2],
  ]);
});

test("flush() reports lines dropped since the last report, once, and nothing when none were", () => {
  const { b, changes } = budget();
  b.flush();
  assert.deepEqual(changes, []);
  for (let i = 0; i < 5; i++) b.admit(1);
  b.flush();
  b.flush();
  assert.deepEqual(changes, [
    [true, 0],
    [false, 3],
  ]);
});
