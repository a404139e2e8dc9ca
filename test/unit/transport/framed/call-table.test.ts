/**
 * src/transport/framed/call-table.ts: the open calls of a framed connection
 * by id, as a Map would keep them, for every id the wire can carry.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { CallTable } from "../../../../src/transport/framed/call-table.js";

test("set, get, has, delete and size, as a Map", () => {
  const t = new CallTable<string>();
  assert.equal(t.size, 0);
  t.set(1, "a");
  t.set(2, "b");
  t.set(1, "a2"); // replacing does not count twice
  assert.equal(t.size, 2);
  assert.equal(t.get(1), "a2");
  assert.equal(t.has(2), true);
  assert.equal(t.has(3), false);
  assert.equal(t.get(3), undefined);
  assert.equal(t.delete(1), true);
  assert.equal(t.delete(1), false, "a second delete finds nothing");
  assert.equal(t.size, 1);
  assert.equal(t.has(1), false);
});

test("ids across the whole u32 range, 0 and 2^32-1 (not an array index) included", () => {
  const t = new CallTable<number>();
  const ids = [0, 1, 0xfffffff0, 0xfffffffe, 0xffffffff, 1234567];
  for (const id of ids) t.set(id, id * 2);
  assert.equal(t.size, ids.length);
  for (const id of ids) assert.equal(t.get(id), id * 2);
  for (const id of ids) assert.equal(t.delete(id), true);
  assert.equal(t.size, 0);
  assert.deepEqual(t.values(), []);
});

test("values() is a snapshot: deleting while walking it visits every call once", () => {
  const t = new CallTable<{ id: number }>();
  for (let id = 1; id <= 100; id++) t.set(id, { id });
  const seen: number[] = [];
  for (const call of t.values()) {
    seen.push(call.id);
    t.delete(call.id);
    t.delete(call.id + 1);
  }
  assert.equal(seen.length, 100, "a call deleted before its turn is still visited in the snapshot");
  assert.equal(new Set(seen).size, 100, "each once");
  assert.equal(t.size, 0);
});

test("churn as 64 callers make it: the table ends empty and every id maps to its own call", () => {
  const t = new CallTable<{ id: number }>();
  let next = 1;
  const open: number[] = [];
  for (let i = 0; i < 64; i++) {
    t.set(next, { id: next });
    open.push(next++);
  }
  for (let round = 0; round < 10_000; round++) {
    const id = open.shift() as number;
    assert.equal(t.get(id)?.id, id);
    assert.equal(t.delete(id), true);
    t.set(next, { id: next });
    open.push(next++);
  }
  assert.equal(t.size, 64);
  for (const id of open) t.delete(id);
  assert.equal(t.size, 0);
});

test("ids that share a slot (1024 apart: a multiple of the slots) are kept apart, each found and removed once", () => {
  const t = new CallTable<string>();
  t.set(5, "a");
  t.set(5 + 1024, "b"); // the slot is taken: kept beside it
  t.set(5 + 2048, "c");
  assert.equal(t.size, 3);
  assert.deepEqual([t.get(5), t.get(1029), t.get(2053)], ["a", "b", "c"]);
  assert.deepEqual(t.values().sort(), ["a", "b", "c"]);
  assert.equal(t.delete(5), true);
  assert.equal(t.get(5), undefined);
  assert.equal(t.get(1029), "b", "still found once its slot is free");
  // Set again while its slot is free: replaced where it is, not added twice.
  t.set(1029, "b2");
  assert.equal(t.size, 2);
  assert.deepEqual(t.values().sort(), ["b2", "c"]);
  t.set(5, "a2"); // the free slot is used again
  assert.equal(t.size, 3);
  assert.equal(t.delete(1029), true);
  assert.equal(t.delete(1029), false);
  assert.equal(t.delete(2053), true);
  assert.equal(t.get(5), "a2");
  assert.equal(t.size, 1);
});

test("a long stream among 5,000 later calls: every id maps to its own call", () => {
  const t = new CallTable<{ id: number }>();
  const stream = { id: 3 };
  t.set(3, stream);
  for (let id = 4; id < 5_004; id++) {
    t.set(id, { id });
    assert.equal(t.get(id)?.id, id);
    assert.equal(t.delete(id), true);
    assert.equal(t.get(3), stream);
  }
  assert.equal(t.size, 1);
  assert.deepEqual(t.values(), [stream]);
});

test("clear() empties the table", () => {
  const t = new CallTable<string>();
  t.set(5, "x");
  t.clear();
  assert.equal(t.size, 0);
  assert.equal(t.get(5), undefined);
});

test("keys() gives the id of every call values() gives, slots and overflow alike", () => {
  const t = new CallTable<number>();
  const ids = [1, 257, 513, 2, 0xffffffff, 255];
  for (const id of ids) t.set(id, id);
  assert.deepEqual(t.keys(), t.values());
  assert.deepEqual(
    [...t.keys()].sort((a, b) => a - b),
    [...ids].sort((a, b) => a - b),
  );
  t.delete(1);
  assert.deepEqual(t.keys(), t.values());
  assert.equal(t.keys().includes(1), false);
});
