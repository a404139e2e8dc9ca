/**
 * src/transport/codec/measured-message.ts: the one way the lean HTTP/2
 * bodies, the lean server stream and the framed frames encode a message.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { BytesValueSchema, StructSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { MeasuredMessage } from "../../../../src/transport/codec/measured-message.js";

const flat = create(BytesValueSchema, { value: new Uint8Array([1, 2, 3]) });
const notFlat = create(StructSchema, {
  fields: { a: { kind: { case: "numberValue", value: 1 } } },
});

test("a flat and a non-flat message: the bytes toBinary gives, after the prefix", () => {
  const m = new MeasuredMessage();
  for (const [desc, message] of [
    [BytesValueSchema, flat],
    [StructSchema, notFlat],
  ] as const) {
    const want = toBinary(desc as never, message as never);
    assert.equal(m.measure(desc, message, 1024), want.length);
    assert.deepEqual(new Uint8Array(m.take()), want);
    m.measure(desc, message, 1024);
    const withPrefix = m.take(5);
    assert.deepEqual(new Uint8Array(withPrefix.subarray(5)), want);
  }
});

test("over the limit: connect-es' ResourceExhausted, or the writer's own error", () => {
  const m = new MeasuredMessage();
  assert.throws(
    () => m.measure(BytesValueSchema, flat, 2),
    (e: unknown) =>
      e instanceof ConnectError &&
      e.code === Code.ResourceExhausted &&
      e.rawMessage === "message size 5 is larger than configured writeMaxBytes 2",
  );
  assert.throws(
    () => m.measure(StructSchema, notFlat, 2, undefined, (size) => new Error(`own ${size}`)),
    /own 16/,
  );
});

test("a message that cannot be encoded: Internal 'serialize binary: ...'", () => {
  const m = new MeasuredMessage();
  const bad = Object.assign(create(BytesValueSchema), { value: "not bytes" as never });
  assert.throws(
    () => m.measure(BytesValueSchema, bad, 1024),
    (e: unknown) =>
      e instanceof ConnectError &&
      e.code === Code.Internal &&
      e.rawMessage.startsWith("serialize binary: "),
  );
});
