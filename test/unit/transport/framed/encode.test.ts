/**
 * src/transport/framed/encode.ts: the flat encoder writes the bytes
 * protobuf-es' toBinary writes, or declines (and toBinary runs, with its
 * errors); FrameWriter.encoded frames them as frame() frames toBinary's
 * output, small in the batch, large in one buffer, the caller's bytes copied.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  create,
  createFileRegistry,
  toBinary,
  type DescMessage,
  type MessageInitShape,
} from "@bufbuild/protobuf";
import { BytesValueSchema, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { FlatEncoder } from "../../../../src/transport/codec/flat-encoder.js";
import { MessageEncoder } from "../../../../src/transport/framed/encode.js";
import { FrameReader, FrameType, FrameWriter } from "../../../../src/transport/framed/frames.js";
import { seededRandom } from "../../../../chaos/seeded-random.js";
import { collectingSink } from "./collecting-sink.js";

type Proto = MessageInitShape<typeof FileDescriptorProtoSchema>;
type Field = NonNullable<NonNullable<NonNullable<Proto["messageType"]>[number]["field"]>[number]>;

function schemaOf(fields: Field[], name = "F"): DescMessage {
  return createFileRegistry(
    create(FileDescriptorProtoSchema, {
      name: `${name}.proto`,
      package: "enc",
      syntax: "proto3",
      enumType: [
        {
          name: "E",
          value: [
            { name: "E_ZERO", number: 0 },
            { name: "E_ONE", number: 1 },
            { name: "E_BIG", number: 100000 },
          ],
        },
      ],
      messageType: [{ name, field: fields }],
    }),
    () => undefined,
  ).getMessage(`enc.${name}`) as DescMessage;
}

// Field types (descriptor.proto): 12 bytes, 9 string, 8 bool, 5 int32, 13 uint32, 14 enum, 3 int64.
const flat = schemaOf([
  { name: "b", number: 1, type: 12, label: 1, jsonName: "b" },
  { name: "s", number: 2, type: 9, label: 1, jsonName: "s" },
  { name: "t", number: 3, type: 8, label: 1, jsonName: "t" },
  { name: "i", number: 4, type: 5, label: 1, jsonName: "i" },
  { name: "u", number: 5, type: 13, label: 1, jsonName: "u" },
  { name: "e", number: 6, type: 14, label: 1, typeName: ".enc.E", jsonName: "e" },
  { name: "b2", number: 20, type: 12, label: 1, jsonName: "b2" },
  { name: "s2", number: 300, type: 9, label: 1, jsonName: "s2" },
]);

function sample(r: () => number): Record<string, unknown> {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const bytes = (): Uint8Array =>
    pick([0, 1, 16, 127, 128, 300, 20_000]) === 0
      ? new Uint8Array(0)
      : new Uint8Array(pick([1, 16, 127, 128, 300, 20_000])).map(() => Math.floor(r() * 256));
  return {
    b: bytes(),
    s: pick(["", "a", "héllo", "日本語", "\uD800 lone", "😀".repeat(50), "x".repeat(200)]),
    t: r() < 0.5,
    i: pick([0, 1, -1, 127, 128, -129, 2 ** 31 - 1, -(2 ** 31), 300_000]),
    u: pick([0, 1, 127, 128, 2 ** 32 - 1, 2 ** 28, 2 ** 21 - 1]),
    e: pick([0, 1, 100000, -5]),
    b2: bytes(),
    s2: pick(["", "z", "ünïcødé"]),
  };
}

function encodeFlat(schema: DescMessage, message: unknown): Uint8Array | undefined {
  const encoder = FlatEncoder.of(schema);
  if (encoder === undefined) return undefined;
  const size = encoder.measure(message);
  if (size < 0) return undefined;
  const buf = Buffer.alloc(size + 8, 0xee);
  const end = encoder.write(message, buf, 4);
  assert.equal(end, 4 + size, "write ends where measure said");
  assert.equal(buf[end], 0xee, "nothing written past the end");
  return new Uint8Array(buf.subarray(4, end));
}

test("flat encoder: 2,000 random messages, each the bytes toBinary writes", () => {
  const r = seededRandom(7);
  for (let n = 0; n < 2000; n++) {
    const message = create(flat, sample(r));
    const ours = encodeFlat(flat, message);
    assert.ok(ours !== undefined, "a flat message is encoded");
    assert.deepEqual(ours, toBinary(flat, message));
  }
  const zero = create(flat);
  assert.deepEqual(encodeFlat(flat, zero), new Uint8Array(0), "zero values are not written");
  const bv = create(BytesValueSchema, { value: new Uint8Array(16).fill(7) });
  assert.deepEqual(encodeFlat(BytesValueSchema, bv), toBinary(BytesValueSchema, bv));
});

test("flat encoder declines what it cannot write as toBinary would; MessageEncoder then uses toBinary, its errors wrapped as connect-es wraps them", () => {
  const encoder = FlatEncoder.of(flat) as FlatEncoder;
  const m = create(flat, { s: "x" }) as unknown as Record<string, unknown>;
  for (const [field, value] of [
    ["i", 2 ** 31],
    ["i", 1.5],
    ["u", -1],
    ["u", 2 ** 32],
    ["s", 5],
    ["b", "not bytes"],
    ["t", 1],
  ] as const) {
    const bad = { ...m, [field]: value };
    assert.equal(encoder.measure(bad), -1, `${field} = ${String(value)}`);
    const ours = new MessageEncoder();
    let theirs: unknown;
    try {
      toBinary(flat, bad as never);
    } catch (error) {
      theirs = error;
    }
    if (theirs === undefined)
      assert.equal(ours.measure(flat, bad, Infinity), toBinary(flat, bad as never).length);
    else
      assert.throws(
        () => ours.measure(flat, bad, Infinity),
        // connect-es' error around toBinary's, as on the HTTP paths.
        (e: unknown) =>
          e instanceof ConnectError &&
          e.code === Code.Internal &&
          e.rawMessage === `serialize binary: ${(theirs as Error).message}`,
      );
  }
  // Unknown fields, and a message of another type, go to toBinary.
  const withUnknown = { ...m, $unknown: [{ no: 99, wireType: 0, data: new Uint8Array([5]) }] };
  assert.equal(encoder.measure(withUnknown), -1);
  assert.equal(encoder.measure(create(BytesValueSchema)), -1);
  const enc = new MessageEncoder();
  assert.equal(
    enc.measure(flat, withUnknown, Infinity),
    toBinary(flat, withUnknown as never).length,
  );
  assert.throws(
    () => enc.measure(flat, create(BytesValueSchema), Infinity),
    /cannot|typeName|BytesValue/,
  );
  // Schemas with other kinds of fields are not flat.
  const int64 = schemaOf([{ name: "l", number: 1, type: 3, label: 1, jsonName: "l" }], "L");
  const list = schemaOf([{ name: "r", number: 1, type: 12, label: 3, jsonName: "r" }], "R");
  const optional = schemaOf(
    [
      {
        name: "o",
        number: 1,
        type: 9,
        label: 1,
        jsonName: "o",
        proto3Optional: true,
        oneofIndex: 0,
      },
    ],
    "O",
  );
  assert.equal(FlatEncoder.of(int64), undefined);
  assert.equal(FlatEncoder.of(list), undefined);
  assert.equal(FlatEncoder.of(optional), undefined);
});

test("FrameWriter.encoded (fake socket that keeps every chunk): small and large messages frame as frame(toBinary(...)) does, copied: bytes changed after the send are not sent", async () => {
  const big = new Uint8Array(64 * 1024).fill(3);
  const reused = new Uint8Array(32 * 1024).fill(5);
  const messages = [
    create(flat, { b: new Uint8Array(16).fill(7), s: "small", i: -3 }),
    create(flat, { b: big, s: "after the big one", b2: new Uint8Array(20_000).fill(9), u: 5 }),
    create(flat, { s: "x".repeat(20_000), t: true }),
    create(flat, { b: reused }),
    create(flat, {}),
  ];
  const expected = messages.map((m, i) => ({ id: i + 1, payload: toBinary(flat, m) }));
  const { socket, writes } = collectingSink();
  const out = new FrameWriter(socket);
  const enc = new MessageEncoder();
  messages.forEach((m, i) => {
    enc.measure(flat, m, Infinity);
    enc.send(out, FrameType.message, i + 1);
  });
  // A handler that reuses its buffer for the next message, before the flush.
  reused.fill(6);
  big.fill(4);
  out.flush();
  await new Promise(setImmediate);
  const got: { id: number; payload: Uint8Array }[] = [];
  const reader = new FrameReader((_type, id, payload) =>
    got.push({ id, payload: payload.slice() }),
  );
  for (const w of writes) reader.push(w);
  assert.deepEqual(got, expected);
});
