/**
 * Canonical JSON, the bytes a manifest signature covers: known answers for
 * key order (UTF-16 code units, as RFC 8785 says), nesting, escapes and the
 * values JSON cannot carry.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { canonicalJson, SIGNATURE_DOMAIN, signedBytes } from "../../../src/security/canonical.js";

describe("canonical JSON", () => {
  test("keys are sorted at every level, arrays keep their order, no whitespace", () => {
    assert.equal(
      canonicalJson({ z: { b: [3, 1, { y: 0, x: [] }], a: {} }, a: true, m: false }),
      '{"a":true,"m":false,"z":{"a":{},"b":[3,1,{"x":[],"y":0}]}}',
    );
  });

  test("keys are ordered by UTF-16 code units, not by code points or locale", () => {
    // U+1F600 is the surrogate pair D83D DE00, which sorts below U+FFFF in
    // UTF-16 though its code point is above; "Z" (5A) sorts below "a" (61).
    assert.equal(
      canonicalJson({ "\uffff": 1, "\u{1f600}": 2, a: 3, Z: 4, "": 5, é: 6, "10": 7, "9": 8 }),
      '{"":5,"10":7,"9":8,"Z":4,"a":3,"é":6,"😀":2,"\uffff":1}',
    );
  });

  test("a long object comes out fully sorted", () => {
    const keys = Array.from(
      { length: 200 },
      (_, i) => `k${String((i * 7919) % 1000).padStart(3, "0")}`,
    );
    const text = canonicalJson(Object.fromEntries(keys.map((k) => [k, 0])));
    const sorted = [...keys].sort((a, b) => (a < b ? -1 : 1));
    assert.equal(text, `{${sorted.map((k) => `"${k}":0`).join(",")}}`);
  });

  test("properties whose value is undefined are left out; null is kept", () => {
    assert.equal(canonicalJson({ a: undefined, b: null, c: [null] }), '{"b":null,"c":[null]}');
  });

  test("strings and numbers are written as JSON.stringify writes them", () => {
    assert.equal(canonicalJson('say "hi"\n\u0001'), '"say \\"hi\\"\\n\\u0001"');
    assert.equal(canonicalJson({ 'k"\n': "v" }), '{"k\\"\\n":"v"}');
    assert.equal(canonicalJson([0, -1, 1.5, 1e21, -0]), "[0,-1,1.5,1e+21,0]");
    assert.equal(canonicalJson(null), "null");
    assert.equal(canonicalJson(false), "false");
  });

  test("NaN and Infinity have no representation, at any depth", () => {
    for (const bad of [Number.NaN, Infinity, -Infinity, { a: [1, { b: Number.NaN }] }]) {
      assert.throws(() => canonicalJson(bad), {
        message: "canonical JSON has no representation for NaN or Infinity",
      });
    }
  });
});

describe("signed bytes", () => {
  test("are the domain tag, then the canonical JSON, in UTF-8", () => {
    assert.equal(SIGNATURE_DOMAIN, "connect-plugin-manifest-v1\n");
    const bytes = signedBytes({ name: "é", a: 1 });
    assert.deepEqual(
      bytes,
      Buffer.concat([
        Buffer.from("636f6e6e6563742d706c7567696e2d6d616e69666573742d76310a", "hex"),
        Buffer.from('{"a":1,"name":"', "ascii"),
        Buffer.from([0xc3, 0xa9]),
        Buffer.from('"}', "ascii"),
      ]),
    );
  });
});
