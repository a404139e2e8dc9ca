/**
 * bench/batches.ts: the 1 MiB scenario's sample shape (bench/run.ts,
 * bench/mib-ab.ts) is the same for every contender. The contenders are
 * fakes that record their calls (no timings are measured).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { interleavedBatches } from "../bench/batches.js";
import { shuffled } from "../bench/stats.js";
import { seededRandom } from "../chaos/seeded-random.js";

test("interleavedBatches: every contender gets the same batches, each after its warm calls, in a fresh order per batch (fake contenders)", async () => {
  const log: string[] = [];
  const returned = new Map<string, number[]>();
  let next = 0;
  const fake = (key: string) =>
    [
      key,
      {
        unary: async (n: number, size: number): Promise<number[]> => {
          log.push(`${key} ${n}×${size}`);
          const values = Array.from({ length: n }, () => next++);
          if (n === 5) returned.set(key, [...(returned.get(key) ?? []), ...values]);
          return values;
        },
      },
    ] as const;
  const contenders = ["a", "b", "c", "d"].map(fake);
  const random = seededRandom(7);
  const orders: string[][] = [];
  const shuffle = <T>(items: readonly T[]): T[] => {
    const out = shuffled(items, random);
    orders.push(out.map((c) => (c as unknown as readonly [string])[0]));
    return out;
  };
  const pooled = await interleavedBatches(
    contenders,
    { batches: 3, warm: 2, n: 5, size: 1024 },
    shuffle,
  );
  assert.equal(orders.length, 3, "one fresh order per batch");
  assert.ok(new Set(orders.map((o) => o.join())).size > 1, "the orders differ");
  const expected = orders.flat().flatMap((key) => [`${key} 2×1024`, `${key} 5×1024`]);
  assert.deepEqual(log, expected, "each batch: warm calls, then measured ones");
  assert.deepEqual([...pooled.keys()], ["a", "b", "c", "d"]);
  for (const [key, values] of pooled) {
    assert.equal(values.length, 15, `${key}: 3 batches of 5 measured calls`);
    assert.deepEqual(values, returned.get(key), `${key}: its measured calls only, in order`);
  }
});

test("interleavedBatches refuses a shape without measured calls or with a count that is not whole (fake contender)", async () => {
  const calls: number[] = [];
  const fake = [["a", { unary: async (n: number) => (calls.push(n), []) }]] as const;
  for (const shape of [
    { batches: 0, warm: 2, n: 20 },
    { batches: 5, warm: 2, n: 0 },
    { batches: Number("x"), warm: 2, n: 20 },
    { batches: 5, warm: -1, n: 20 },
    { batches: 1.5, warm: 2, n: 20 },
  ])
    await assert.rejects(interleavedBatches(fake, { ...shape, size: 1 }, shuffled), RangeError);
  assert.deepEqual(calls, [], "no call made");
});
