/**
 * src/transport/framed/open-frame.ts: the open frame's payload, cached on
 * both ends, always says what a fresh JSON encoding would say.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { OpenDecoder, OpenEncoder } from "../../../../src/transport/framed/open-frame.js";

const json = (b: Uint8Array): unknown => JSON.parse(Buffer.from(b).toString());

test("encoder: the same path and headers reuse the bytes; another value, path or deadline does not", () => {
  const enc = new OpenEncoder();
  const h = (v: string): Headers => new Headers({ authorization: `Bearer ${v}` });
  const a = enc.encode("/s.S/M", h("t"), undefined);
  assert.deepEqual(json(a), { p: "/s.S/M", h: [["authorization", "Bearer t"]] });
  assert.equal(enc.encode("/s.S/M", h("t"), undefined), a, "same frame: same bytes");
  const b = enc.encode("/s.S/M", h("u"), undefined);
  assert.deepEqual(json(b), { p: "/s.S/M", h: [["authorization", "Bearer u"]] });
  const c = enc.encode("/s.S/N", h("u"), undefined);
  assert.deepEqual(json(c), { p: "/s.S/N", h: [["authorization", "Bearer u"]] });
  const two = new Headers({ authorization: "Bearer u", "x-a": "1" });
  assert.deepEqual(json(enc.encode("/s.S/N", two, undefined)), {
    p: "/s.S/N",
    h: [
      ["authorization", "Bearer u"],
      ["x-a", "1"],
    ],
  });
  const d1 = enc.encode("/s.S/N", h("u"), 500);
  assert.deepEqual(json(d1), { p: "/s.S/N", t: 500, h: [["authorization", "Bearer u"]] });
  assert.deepEqual(json(enc.encode("/s.S/N", h("u"), 499)), {
    p: "/s.S/N",
    t: 499,
    h: [["authorization", "Bearer u"]],
  });
});

test("encoder: no headers and no deadline, the path alone", () => {
  const enc = new OpenEncoder();
  const a = enc.encode("/s.S/M", new Headers(), undefined);
  assert.deepEqual(json(a), { p: "/s.S/M" });
  assert.equal(enc.encode("/s.S/M", new Headers(), undefined), a);
  assert.deepEqual(json(enc.encode("/s.S/M", new Headers(), 7)), { p: "/s.S/M", t: 7 });
});

test("decoder: the same bytes give the same head; changed bytes are parsed again", () => {
  const dec = new OpenDecoder();
  // Payloads as the reader hands them on: views into a larger chunk.
  const view = (s: string): Uint8Array => {
    const chunk = Buffer.alloc(64 + Buffer.byteLength(s), 0x20);
    chunk.write(s, 32);
    return new Uint8Array(chunk.buffer, chunk.byteOffset + 32, Buffer.byteLength(s));
  };
  const first = dec.decode(view('{"p":"/s.S/M","h":[["a","1"]]}'));
  assert.deepEqual(first, { p: "/s.S/M", h: [["a", "1"]] });
  assert.equal(dec.decode(view('{"p":"/s.S/M","h":[["a","1"]]}')), first, "cache hit");
  assert.deepEqual(dec.decode(view('{"p":"/s.S/M","h":[["a","2"]]}')), {
    p: "/s.S/M",
    h: [["a", "2"]],
  });
  assert.deepEqual(dec.decode(view('{"p":"/s.S/M","h":[["a","1"]]}')), first);
});

test("decoder: the remembered bytes are a copy, not the reader's chunk", () => {
  const dec = new OpenDecoder();
  const chunk = Buffer.from('{"p":"/s.S/M"}');
  const head = dec.decode(chunk);
  assert.deepEqual(head, { p: "/s.S/M" });
  // The socket's chunk is reused or overwritten: the next frame with other
  // bytes at the same place must not hit the old entry.
  chunk.write('{"p":"/s.S/X"}');
  assert.deepEqual(dec.decode(chunk), { p: "/s.S/X" });
});

test("decoder: frames with a deadline are parsed each time; malformed ones throw and are not remembered", () => {
  const dec = new OpenDecoder();
  const timed = Buffer.from('{"p":"/s.S/M","t":50}');
  const a = dec.decode(timed);
  assert.deepEqual(a, { p: "/s.S/M", t: 50 });
  assert.notEqual(dec.decode(timed), a, "not cached: a fresh parse");
  assert.throws(() => dec.decode(Buffer.from('{"p":')), SyntaxError);
  assert.throws(() => dec.decode(Buffer.from('{"p":')), SyntaxError);
  assert.equal(dec.decode(Buffer.from("null")), null);
  assert.equal(dec.decode(new Uint8Array(0)), undefined);
});

test("encoder: callHeaders go last on every frame and replace the call's own of that name", () => {
  const enc = new OpenEncoder([["authorization", "Bearer secret"]]);
  assert.deepEqual(json(enc.encode("/s.S/M", new Headers(), undefined)), {
    p: "/s.S/M",
    h: [["authorization", "Bearer secret"]],
  });
  const own = new Headers({ authorization: "Bearer forged", "x-a": "1" });
  const a = enc.encode("/s.S/M", own, undefined);
  assert.deepEqual(json(a), {
    p: "/s.S/M",
    h: [
      ["x-a", "1"],
      ["authorization", "Bearer secret"],
    ],
  });
  assert.equal(enc.encode("/s.S/M", new Headers(own), undefined), a, "cached like any other");
  assert.deepEqual(json(enc.encode("/s.S/M", new Headers({ "x-a": "1" }), 9)), {
    p: "/s.S/M",
    t: 9,
    h: [
      ["x-a", "1"],
      ["authorization", "Bearer secret"],
    ],
  });
});
