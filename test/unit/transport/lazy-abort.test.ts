/**
 * src/transport/lazy-abort.ts: CallAbort's hooks (kept as a first hook and
 * an array of the others) fire once, in the order they came, and
 * unsubscribing keeps that order.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { CallAbort } from "../../../src/transport/lazy-abort.js";

/** A CallAbort and hooks that record their name and the reason they saw. */
function recorder() {
  const seen: string[] = [];
  const hook = (name: string) => (reason: unknown) => void seen.push(`${name}:${String(reason)}`);
  return { abort: new CallAbort(), seen, hook };
}

test("hooks fire once, in the order they came (listen and onAbort alike)", () => {
  const { abort, seen, hook } = recorder();
  abort.listen(hook("a"));
  abort.onAbort(hook("b"));
  abort.listen(hook("c"));
  abort.onAbort(hook("d"));
  abort.abort("why");
  abort.abort("again");
  assert.deepEqual(seen, ["a:why", "b:why", "c:why", "d:why"]);
  assert.equal(abort.reason, "why");
  assert.equal(abort.signal.aborted, true);
});

test("unsubscribing the first hook keeps the others, and hooks added later, in order", () => {
  const { abort, seen, hook } = recorder();
  const offA = abort.onAbort(hook("a"));
  abort.listen(hook("b"));
  abort.listen(hook("c"));
  offA();
  abort.listen(hook("d"));
  const offE = abort.onAbort(hook("e"));
  abort.listen(hook("f"));
  offE();
  abort.abort("x");
  assert.deepEqual(seen, ["b:x", "c:x", "d:x", "f:x"]);
});

test("the only hook unsubscribed, then another: only the new one fires", () => {
  const { abort, seen, hook } = recorder();
  abort.onAbort(hook("a"))();
  abort.listen(hook("b"));
  abort.abort("x");
  assert.deepEqual(seen, ["b:x"]);
});

test("the same function twice: unsubscribing removes one of them", () => {
  const { abort, seen, hook } = recorder();
  const h = hook("h");
  const off = abort.onAbort(h);
  abort.onAbort(h);
  off();
  abort.abort("x");
  assert.deepEqual(seen, ["h:x"]);
});

test("a hook added during the abort, or after it, never fires; unsubscribing after it does nothing", () => {
  const { abort, seen, hook } = recorder();
  const off = abort.onAbort(() => {
    seen.push("first");
    abort.listen(hook("late"));
  });
  abort.listen(hook("second"));
  abort.abort("x");
  abort.listen(hook("after"));
  off();
  assert.deepEqual(seen, ["first", "second:x"]);
});

test("an AbortListener object is told through abortWith, once, in order with the hook functions", () => {
  const a = new CallAbort();
  const seen: string[] = [];
  const listener = {
    abortWith(reason: unknown): void {
      assert.equal(this, listener, "called as a method");
      seen.push(`object ${String(reason)}`);
    },
  };
  a.listen((r) => seen.push(`first ${String(r)}`));
  a.listen(listener);
  a.onAbort((r) => seen.push(`last ${String(r)}`));
  a.abort("why");
  a.abort("again");
  assert.deepEqual(seen, ["first why", "object why", "last why"]);
  // As the only (first) listener too.
  const b = new CallAbort();
  const alone: unknown[] = [];
  b.listen({ abortWith: (r) => alone.push(r) });
  b.abort("x");
  assert.deepEqual(alone, ["x"]);
});
