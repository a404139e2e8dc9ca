/**
 * PairsHeaders (the framed server's lazy headers) against a filled Headers
 * (pairsToHeaders, which the framed server used before): over random and
 * hostile pair lists, building them throws the same error or neither
 * throws, and then every use a handler or interceptor may make gives the
 * same result, first use included (a mutation before any read).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import * as util from "node:util";
import { PairsHeaders } from "../../../src/transport/lazy-pairs-headers.js";
import { headersToPairs, pairsToHeaders } from "../../../src/transport/framed/frames.js";
import { seededRandom } from "../../../chaos/seeded-random.js";

const NAMES = [
  "authorization",
  "Authorization",
  "x-a",
  "X-A",
  "cookie",
  "Cookie",
  "set-cookie",
  "Set-Cookie",
  "x-bin-bin",
  "content-type",
  "a!#$%&'*+-.^_`|~z",
];
const BAD_NAMES = [
  "",
  "x a",
  "x:a",
  ":path",
  "x\na",
  "ä",
  "\u0100",
  "x\u{1f600}",
  "x(",
  "x\0",
  "é-x",
];
const VALUES = [
  "",
  "v",
  "Bearer t0k3n",
  " padded ",
  "\ttab\t",
  "a, b",
  "a=1; b=2",
  "\u00ff\u0080",
  "\x01ctl\x7f",
  "  ",
  "x\u000by",
];
const BAD_VALUES = ["a\nb", "a\rb", "a\0b", "\u0100", "x\u{1f600}", "\nedge\n", "\r\n", " \r\nx\t"];
const JUNK: unknown[] = [
  1,
  null,
  ["only"],
  [1, "a"],
  ["a", 2],
  "ab",
  { 0: "a", 1: "b" },
  ["a", "b", "c"],
];

function pick<T>(rand: () => number, from: readonly T[]): T {
  return from[Math.floor(rand() * from.length)] as T;
}

function randomPairs(rand: () => number, hostile: boolean): unknown[] {
  const n = Math.floor(rand() * 7);
  const out: unknown[] = [];
  for (let i = 0; i < n; i++) {
    const r = rand();
    if (hostile && r < 0.08) out.push(pick(rand, JUNK));
    else {
      const name = hostile && rand() < 0.1 ? pick(rand, BAD_NAMES) : pick(rand, NAMES);
      const value = hostile && rand() < 0.1 ? pick(rand, BAD_VALUES) : pick(rand, VALUES);
      out.push([name, value]);
    }
  }
  return out;
}

type Outcome = { ok: unknown } | { threw: string };

function outcome(f: () => unknown): Outcome {
  try {
    return { ok: f() };
  } catch (error) {
    const e = error as Error;
    return { threw: `${e.constructor.name}: ${e.message}` };
  }
}

/** The uses compared; `name` is a name the use asks about (valid or not). */
const uses: Record<string, (h: Headers, name: string, value: string) => unknown> = {
  get: (h, name) => h.get(name),
  has: (h, name) => h.has(name),
  "get, non-string": (h) => h.get(12 as unknown as string),
  "get, no argument": (h) => (h.get as () => unknown)(),
  entries: (h) => [...h.entries()],
  keys: (h) => [...h.keys()],
  values: (h) => [...h.values()],
  iterator: (h) => [...h],
  "iterator toString": (h) => Object.prototype.toString.call(h[Symbol.iterator]()),
  forEach: (h) => {
    const out: unknown[] = [];
    const self = {};
    h.forEach(function (this: unknown, v, k, parent) {
      out.push([k, v, parent === h, this === self]);
    }, self);
    return out;
  },
  // No thisArg (or undefined): Headers calls back with globalThis as `this`.
  "forEach, no thisArg": (h) => {
    const out: unknown[] = [];
    h.forEach(function (this: unknown, v, k) {
      out.push([k, v, this === globalThis ? "globalThis" : String(this)]);
    });
    h.forEach(function (this: unknown) {
      out.push(this === globalThis ? "globalThis" : String(this));
    }, undefined);
    return out;
  },
  "forEach, not a function": (h) => h.forEach(3 as unknown as () => void),
  getSetCookie: (h) => h.getSetCookie(),
  "new Headers()": (h) => [...new Headers(h)],
  "new Request()": (h) => [...new Request("http://127.0.0.1/", { headers: h }).headers],
  "new Response()": (h) => [...new Response(null, { headers: h }).headers],
  "set before any read": (h, name, value) => {
    h.set(name, value);
    return [...h];
  },
  "append before any read": (h, name, value) => {
    h.append(name, value);
    return [...h];
  },
  "delete before any read": (h, name) => {
    h.delete(name);
    return [...h];
  },
  "get after append": (h, name, value) => {
    h.append(name, value);
    return h.get(name);
  },
  headersToPairs: (h) => headersToPairs(h),
  spread: (h) => ({ ...h }),
  structuredClone: (h) => structuredClone(h),
  JSON: (h) => JSON.stringify(h),
  "Object.keys": (h) => Object.keys(h),
  "Object.fromEntries": (h) => Object.fromEntries(h),
  "Object.prototype.toString": (h) => Object.prototype.toString.call(h),
  "util.inspect": (h) => util.inspect(h),
  "util.inspect, depth 0": (h) => util.inspect({ h }, { depth: 0 }),
};

function compare(pairs: unknown[], name: string, value: string, where: string): number {
  const made = outcome(() => pairsToHeaders(pairs));
  const lazy = outcome(() => PairsHeaders.fromPairs(pairs));
  const label = `${where} ${util.inspect(pairs)}`;
  if ("threw" in made || "threw" in lazy) {
    assert.deepEqual(lazy, made, `building ${label}`);
    return 1;
  }
  let checks = 0;
  for (const [use, f] of Object.entries(uses)) {
    const real = pairsToHeaders(pairs);
    const lazyHeaders = PairsHeaders.fromPairs(pairs);
    assert.deepEqual(
      outcome(() => f(lazyHeaders, name, value)),
      outcome(() => f(real, name, value)),
      `${use}(${util.inspect(name)}, ${util.inspect(value)}) on ${label}`,
    );
    checks++;
  }
  return checks;
}

test("PairsHeaders behaves as a filled Headers over random pairs", () => {
  const rand = seededRandom(20261202);
  let checks = 0;
  for (let i = 0; i < 400; i++) {
    const pairs = randomPairs(rand, false);
    checks += compare(pairs, pick(rand, NAMES), pick(rand, VALUES), `#${i}`);
  }
  assert.ok(checks > 400 * 20, `${checks} checks`);
});

test("PairsHeaders behaves as a filled Headers over hostile pairs and names (same errors)", () => {
  const rand = seededRandom(7);
  let threw = 0;
  for (let i = 0; i < 600; i++) {
    const pairs = randomPairs(rand, true);
    const name = rand() < 0.3 ? pick(rand, BAD_NAMES) : pick(rand, NAMES);
    const value = rand() < 0.3 ? pick(rand, BAD_VALUES) : pick(rand, VALUES);
    if (compare(pairs, name, value, `#${i}`) === 1) threw++;
  }
  assert.ok(threw > 20, `${threw} lists that Headers refuses`);
  assert.ok(threw < 500, `${threw} lists that Headers refuses`);
});

test("the framed server's malformed-header cases throw Headers' own TypeError", () => {
  for (const pair of [
    ["x\na", "v"],
    ["x a", "v"],
    ["x", "a\nb"],
    ["x", "\u0100"],
    ["ä", "v"],
  ]) {
    const expected = outcome(() => new Headers().append(pair[0] as string, pair[1] as string));
    assert.ok("threw" in expected, `Headers refuses ${util.inspect(pair)}`);
    assert.deepEqual(
      outcome(() => PairsHeaders.fromPairs([["ok", "1"], pair])),
      expected,
      util.inspect(pair),
    );
  }
});

test("PairsHeaders: the edges that Headers trims and accepts take the exact path", () => {
  const h = PairsHeaders.fromPairs([
    ["X-A", "\r\n v \t\n"],
    ["x-a", " w "],
  ]);
  assert.equal(h.get("x-a"), "v, w");
  assert.deepEqual([...h], [["x-a", "v, w"]]);
});

test("PairsHeaders: empty and untouched until used; get and has do not make a Headers", () => {
  const empty = new PairsHeaders();
  assert.equal(empty.untouchedEmpty, true);
  assert.equal(empty.get("authorization"), null);
  assert.equal(empty.has("x"), false);
  assert.equal(empty.untouchedEmpty, true, "get and has leave it untouched");
  assert.equal(headersToPairs(empty), undefined);
  empty.set("x-a", "1");
  assert.equal(empty.untouchedEmpty, false);
  assert.deepEqual(headersToPairs(empty), [["x-a", "1"]]);
  const set = new PairsHeaders();
  set.delete("x-a");
  assert.equal(set.untouchedEmpty, false, "a used one is no longer untouched, even if empty");
  assert.equal(headersToPairs(set), undefined);
  const given = PairsHeaders.fromPairs([["Authorization", "Bearer x"]]);
  assert.equal(given.untouchedEmpty, false);
  assert.equal(given.get("AUTHORIZATION"), "Bearer x");
});

test("PairsHeaders is not instanceof Headers (the one visible difference)", () => {
  const h = PairsHeaders.fromPairs([["x-a", "1"]]);
  assert.equal(h instanceof Headers, false);
  assert.equal(Object.prototype.toString.call(h), "[object Headers]");
  assert.ok(new Headers(h) instanceof Headers);
});
