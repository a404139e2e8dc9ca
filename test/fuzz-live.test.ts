/**
 * fuzz/live.ts in `npm test`: a short pass of the live byte fuzzer against
 * each target (`npm run fuzz` runs 100,000 cases each), and the memory
 * verdict that fails a long run whose server keeps growing.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { TARGETS, fuzzTarget, stillGrowing, type FuzzResult } from "../fuzz/live.js";

/** Cases per target here: seconds each, where `npm run fuzz` takes minutes. */
const CASES = 2_000;

for (const name of Object.keys(TARGETS) as Array<keyof typeof TARGETS>) {
  test(`live fuzz, ${name}: ${CASES} random and mutated connections, no hang, the server still serves`, async () => {
    const target = await TARGETS[name]();
    try {
      const r = await fuzzTarget(target, { cases: CASES, seed: 8 });
      assert.deepEqual(r.failures, []);
      assert.equal(r.hangs, 0);
      assert.equal(r.deadChecks, 0);
      assert.equal(r.cases, CASES);
      await target.alive();
    } finally {
      await target.close();
    }
  });
}

const run = (cases: number, mid: number, after: number): FuzzResult => ({
  target: "t",
  cases,
  hangs: 0,
  deadChecks: 0,
  memory: "server heap",
  memoryBeforeMb: 10,
  memoryMidMb: mid,
  memoryAfterMb: after,
  elapsedMs: 1,
  failures: [],
});

test("memory verdict: growth in the second half beyond 20% and 2 MB is reported as unbounded", () => {
  // The framed target before its fix (11 -> 54 MB, faster towards the end).
  assert.equal(
    stillGrowing(run(100_000, 25, 54.5)),
    "server heap still growing in the second half of the run: 25 -> 54.5 MB (unbounded allocation?)",
  );
  assert.match(stillGrowing(run(100_000, 20, 24.1)) ?? "", /20 -> 24.1 MB/);
  assert.match(stillGrowing(run(100_000, 5, 7.1)) ?? "", /5 -> 7.1 MB/);
});

test("memory verdict: a flat second half, small growth, or a short run passes", () => {
  assert.equal(stillGrowing(run(100_000, 12.5, 12.7)), undefined);
  assert.equal(stillGrowing(run(100_000, 20, 24)), undefined);
  assert.equal(stillGrowing(run(100_000, 5, 7)), undefined);
  assert.equal(stillGrowing(run(100_000, 190, 150)), undefined);
  assert.equal(stillGrowing(run(19_999, 10, 50)), undefined);
  assert.match(stillGrowing(run(20_000, 10, 50)) ?? "", /10 -> 50 MB/);
});
