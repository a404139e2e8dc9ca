/**
 * NodeHeaders (lazy response headers) against the eager copy it replaced
 * (nodeHeadersToWeb): every use a caller or interceptor may make of a
 * `Headers`, first use included (a mutation before any read), must give
 * the same result.
 */
import assert from "node:assert/strict";
import type * as http2 from "node:http2";
import { test } from "node:test";
import * as util from "node:util";
import { NodeHeaders } from "../../../src/transport/lazy-headers.js";
import { peeks } from "../../../src/transport/peek-headers.js";
import { nodeHeadersToWeb } from "../../../src/transport/node-headers.js";

const node: http2.IncomingHttpHeaders = {
  ":status": "200",
  "content-type": "application/proto",
  "set-cookie": ["a=1", "b=2"],
  "x-multi": "p, q",
  "x-bin": "AAEC",
  "trailer-x-tail": "t1",
  "content-length": "12",
};

const uses: Record<string, (h: Headers) => unknown> = {
  get: (h) => h.get("x-multi"),
  has: (h) => [h.has("set-cookie"), h.has("x-none")],
  entries: (h) => [...h.entries()],
  keys: (h) => [...h.keys()],
  values: (h) => [...h.values()],
  iterator: (h) => [...h],
  forEach: (h) => {
    const out: string[][] = [];
    h.forEach((v, k) => out.push([k, v]));
    return out;
  },
  getSetCookie: (h) => h.getSetCookie(),
  "new Headers()": (h) => [...new Headers(h)],
  "set before any read": (h) => {
    h.set("x-multi", "z");
    return [...h];
  },
  "append before any read": (h) => {
    h.append("set-cookie", "c=3");
    return [...h];
  },
  "delete before any read": (h) => {
    h.delete("set-cookie");
    return [...h];
  },
  spread: (h) => ({ ...h }),
  JSON: (h) => JSON.stringify(h),
  structuredClone: (h) => structuredClone(h),
  "util.inspect": (h) => util.inspect(h),
  "new Request()": (h) => [...new Request("http://127.0.0.1/", { headers: h }).headers],
  "new Response()": (h) => [...new Response(null, { headers: h }).headers],
  "Object.fromEntries": (h) => Object.fromEntries(h),
  "Object.prototype.toString": (h) => Object.prototype.toString.call(h),
  instanceof: (h) => h instanceof Headers,
};

for (const [name, use] of Object.entries(uses)) {
  test(`NodeHeaders = an eager Headers copy: ${name}`, () => {
    assert.deepEqual(use(new NodeHeaders(node)), use(nodeHeadersToWeb(node)));
  });
}

test("NodeHeaders splits a Connect answer as trailerDemux does", () => {
  assert.deepEqual([...new NodeHeaders(node, "trailer")], [["x-tail", "t1"]]);
  const header = [...new NodeHeaders(node, "header")];
  assert.deepEqual(
    header,
    [...nodeHeadersToWeb(node)].filter(([k]) => !k.startsWith("trailer-")),
  );
});

test("a host's NodeHeaders (no peek) copies on its first get(); with peek and pick 'all' it does not", () => {
  const host = new NodeHeaders(node);
  assert.equal(peeks(host), false, "a host's headers do not peek");
  assert.equal(host.get("x-multi"), "p, q");
  assert.equal(host.untouched, false, "get() copied the headers");

  const split = new NodeHeaders(node, "header", true);
  assert.equal(
    peeks(split),
    false,
    "peek needs pick 'all': node's object holds the trailer- fields too",
  );
  assert.equal(split.has("trailer-x-tail"), false);
  assert.equal(split.untouched, false);

  const peeking = new NodeHeaders(node, "all", true);
  assert.equal(peeks(peeking), true);
  assert.equal(peeking.get("x-multi"), "p, q");
  assert.equal(peeking.get("set-cookie"), "a=1, b=2");
  assert.equal(peeking.has("x-none"), false);
  assert.equal(peeking.untouched, true, "get() and has() answered from node's object");
  assert.deepEqual([...peeking], [...nodeHeadersToWeb(node)]);
  assert.equal(peeks(peeking), false, "iterating copied the headers");
});
