/**
 * ResponseHeaders (lazy-response-headers.ts): PairsHeaders that are
 * `instanceof Headers`, used as the lean paths' response header and
 * trailer. Each use a handler or writer makes gives what a real Headers
 * gives, and forEach over an empty one calls nothing.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ResponseHeaders } from "../../../src/transport/lazy-response-headers.js";
import { PairsHeaders } from "../../../src/transport/lazy-pairs-headers.js";
import { isEmptyHeaders, webHeadersToNode } from "../../../src/transport/node-headers.js";

test("ResponseHeaders are Headers to instanceof and toString, PairsHeaders' class is untouched", () => {
  const h = new ResponseHeaders();
  assert.ok(h instanceof Headers);
  assert.equal(Object.prototype.toString.call(h), "[object Headers]");
  assert.ok(!(new PairsHeaders() instanceof Headers), "the framed server's class stays as it was");
});

test("empty: forEach calls nothing, isEmptyHeaders and webHeadersToNode see no field", () => {
  const h = new ResponseHeaders();
  let calls = 0;
  h.forEach(() => calls++);
  assert.equal(calls, 0);
  assert.equal(isEmptyHeaders(h), true);
  assert.deepEqual(webHeadersToNode(h, { ":status": 200 }), { ":status": 200 });
  assert.equal(h.has("content-type"), false);
  assert.equal(h.get("x-a"), null);
  assert.equal(h.untouchedEmpty, true, "nothing made a Headers");
});

test("forEach without a function throws Headers' own TypeError, empty or not", () => {
  const message = (f: () => void): string => {
    try {
      f();
    } catch (e) {
      return `${(e as Error).name}: ${(e as Error).message}`;
    }
    return "no throw";
  };
  const bad = 42 as unknown as () => void;
  const real = message(() => new Headers().forEach(bad));
  assert.notEqual(real, "no throw");
  assert.equal(
    message(() => new ResponseHeaders().forEach(bad)),
    real,
  );
  const filled = new ResponseHeaders();
  filled.set("x-a", "1");
  assert.equal(
    message(() => filled.forEach(bad)),
    real,
  );
});

test("every method of Headers.prototype is PairsHeaders' own, none falls through to undici's", () => {
  // An inherited Headers method would read undici's private list, which a
  // ResponseHeaders has not: it would throw on a Node whose Headers gained one.
  const proto = Object.getPrototypeOf(ResponseHeaders.prototype) as object;
  assert.equal(Object.getPrototypeOf(proto), Headers.prototype);
  const missing = Reflect.ownKeys(Headers.prototype).filter(
    (key) =>
      typeof Object.getOwnPropertyDescriptor(Headers.prototype, key)?.value === "function" &&
      !Object.hasOwn(proto, key),
  );
  assert.deepEqual(missing, []);
});

test("set by a handler: every use as a filled Headers", () => {
  const h = new ResponseHeaders();
  const real = new Headers();
  for (const x of [h, real]) {
    x.set("X-Answer", "yes");
    x.append("x-many", "1");
    x.append("x-many", "2");
    x.append("set-cookie", "a=1");
    x.append("set-cookie", "b=2");
  }
  assert.deepEqual([...h], [...real]);
  assert.deepEqual(webHeadersToNode(h), webHeadersToNode(real));
  assert.equal(isEmptyHeaders(h), false);
  assert.deepEqual([...new Headers(h)], [...real]);
  assert.deepEqual(h.getSetCookie(), ["a=1", "b=2"]);
  const seen: Array<[string, string, unknown]> = [];
  h.forEach(function (this: unknown, v, k, parent) {
    seen.push([k, v, parent === h && this === seen]);
  }, seen);
  assert.deepEqual(seen, [
    ["set-cookie", "a=1", true],
    ["set-cookie", "b=2", true],
    ["x-answer", "yes", true],
    ["x-many", "1, 2", true],
  ]);
});
