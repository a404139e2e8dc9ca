/**
 * src/transport/framed/client.ts: call ids. A client numbers its calls from
 * 1, wraps around before 2^32, and never reuses the id of a call still open
 * (the server cuts off a peer that does).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { nextCallId } from "../../../../src/transport/framed/client.js";

const none = (): boolean => false;

test("call ids count up from 1", () => {
  assert.equal(nextCallId(0, none), 1);
  assert.equal(nextCallId(1, none), 2);
  assert.equal(nextCallId(0xffffffef, none), 0xfffffff0);
});

test("call ids wrap to 1 after 0xfffffff0", () => {
  assert.equal(nextCallId(0xfffffff0, none), 1);
  assert.equal(nextCallId(0xffffffff, none), 1);
});

test("an id still in use is skipped, across the wrap too", () => {
  const open = new Set([1, 2, 5]);
  const inUse = (id: number): boolean => open.has(id);
  assert.equal(nextCallId(0xfffffff0, inUse), 3);
  assert.equal(nextCallId(3, inUse), 4);
  assert.equal(nextCallId(4, inUse), 6);
});
