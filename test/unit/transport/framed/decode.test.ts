/**
 * src/transport/framed/decode.ts: decodeMessage gives what protobuf-es'
 * fromBinary gives, for proto3 (copied zero message), proto2 and editions
 * (fromBinary itself), and no two messages share a list, map or oneof.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  create,
  createFileRegistry,
  fromBinary,
  toBinary,
  type DescMessage,
  type MessageInitShape,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, BytesValueSchema } from "@bufbuild/protobuf/wkt";
import { decodeMessage } from "../../../../src/transport/framed/decode.js";

type Proto = MessageInitShape<typeof FileDescriptorProtoSchema>;
type Field = NonNullable<NonNullable<NonNullable<Proto["messageType"]>[number]["field"]>[number]>;

// Field types (descriptor.proto): 9 string, 12 bytes, 5 int32, 3 int64, 11 message, 8 bool.
// Labels: 1 optional, 2 required, 3 repeated.
const fields = (typeName: string, extra: Field[] = []): Proto["messageType"] => [
  {
    name: "M",
    field: [
      { name: "s", number: 1, type: 9, label: 1, jsonName: "s" },
      { name: "b", number: 2, type: 12, label: 1, jsonName: "b" },
      { name: "i", number: 3, type: 5, label: 1, jsonName: "i" },
      { name: "l", number: 4, type: 3, label: 1, jsonName: "l" },
      { name: "list", number: 5, type: 12, label: 3, jsonName: "list" },
      { name: "child", number: 6, type: 11, label: 1, typeName, jsonName: "child" },
      { name: "one_s", number: 7, type: 9, label: 1, oneofIndex: 0, jsonName: "oneS" },
      { name: "one_b", number: 8, type: 12, label: 1, oneofIndex: 0, jsonName: "oneB" },
      {
        name: "map",
        number: 9,
        type: 11,
        label: 3,
        typeName: `${typeName}.MapEntry`,
        jsonName: "map",
      },
      { name: "flag", number: 10, type: 8, label: 1, jsonName: "flag" },
      ...extra,
    ],
    oneofDecl: [{ name: "one" }],
    nestedType: [
      {
        name: "MapEntry",
        field: [
          { name: "key", number: 1, type: 9, label: 1, jsonName: "key" },
          { name: "value", number: 2, type: 12, label: 1, jsonName: "value" },
        ],
        options: { mapEntry: true },
      },
    ],
  },
];

const proto3 = createFileRegistry(
  create(FileDescriptorProtoSchema, {
    name: "t3.proto",
    package: "t3",
    syntax: "proto3",
    messageType: fields(".t3.M"),
  }),
  () => undefined,
).getMessage("t3.M") as DescMessage;

const proto2 = createFileRegistry(
  create(FileDescriptorProtoSchema, {
    name: "t2.proto",
    package: "t2",
    syntax: "proto2",
    messageType: fields(".t2.M", [
      { name: "dflt", number: 11, type: 9, label: 1, defaultValue: "x", jsonName: "dflt" },
      { name: "dbytes", number: 12, type: 12, label: 1, defaultValue: "ab", jsonName: "dbytes" },
    ]),
  }),
  () => undefined,
).getMessage("t2.M") as DescMessage;

const editions = createFileRegistry(
  create(FileDescriptorProtoSchema, {
    name: "te.proto",
    package: "te",
    syntax: "editions",
    edition: 1000, // EDITION_2023: explicit presence by default
    messageType: fields(".te.M"),
  }),
  () => undefined,
).getMessage("te.M") as DescMessage;

const samples: Record<string, unknown>[] = [
  {},
  { s: "hello", b: new Uint8Array([1, 2, 3]), i: -7, l: 1n << 40n },
  { list: [new Uint8Array([9]), new Uint8Array(0)], flag: true },
  { child: { s: "inner", child: { i: 3 } }, one: { case: "oneS", value: "o" } },
  { one: { case: "oneB", value: new Uint8Array([4, 4]) }, map: { a: new Uint8Array([1]) } },
];

for (const [name, schema] of [
  ["proto3", proto3],
  ["proto2", proto2],
  ["editions 2023", editions],
] as const) {
  test(`decodeMessage equals fromBinary: ${name}`, () => {
    for (const init of samples) {
      const bytes = toBinary(schema, create(schema, init as never));
      assert.deepStrictEqual(decodeMessage(schema, bytes), fromBinary(schema, bytes));
    }
    // Unknown fields (a field number the schema does not have) are kept as fromBinary keeps them.
    const unknown = new Uint8Array([0xf8, 0x06, 0x05]); // field 111, varint 5
    const withUnknown = decodeMessage(schema, unknown);
    assert.deepStrictEqual(withUnknown, fromBinary(schema, unknown));
    assert.deepStrictEqual(toBinary(schema, withUnknown), unknown);
    // Malformed bytes fail with fromBinary's error.
    const broken = new Uint8Array([0x0a, 0x05, 0x61]); // field 1, length 5, one byte
    assert.throws(
      () => decodeMessage(schema, broken),
      (e: unknown) => {
        assert.throws(
          () => fromBinary(schema, broken),
          (f: unknown) => String(f) === String(e),
        );
        return true;
      },
    );
  });
}

test("decodeMessage: two messages never share a list, a map or a oneof", () => {
  const a = decodeMessage(proto3, new Uint8Array(0)) as unknown as Record<string, unknown>;
  const b = decodeMessage(proto3, new Uint8Array(0)) as unknown as Record<string, unknown>;
  // proto3 takes the copied path: its unset bytes fields share one empty array.
  assert.equal(a["b"], b["b"]);
  assert.deepStrictEqual(structuredClone(a), structuredClone(create(proto3)));
  assert.notEqual(a["list"], b["list"]);
  assert.notEqual(a["map"], b["map"]);
  assert.notEqual(a["one"], b["one"]);
  (a["list"] as Uint8Array[]).push(new Uint8Array([1]));
  (a["map"] as Record<string, Uint8Array>)["k"] = new Uint8Array([1]);
  (a["one"] as { case: string | undefined }).case = "oneS";
  assert.deepStrictEqual(b, create(proto3), "the second message is untouched");
  assert.deepStrictEqual(
    decodeMessage(proto3, new Uint8Array(0)),
    create(proto3),
    "and so is the next",
  );
});

test("decodeMessage: a 16-byte BytesValue, as the bench streams it", () => {
  const bytes = toBinary(BytesValueSchema, {
    $typeName: "google.protobuf.BytesValue",
    value: new Uint8Array(16).fill(7),
  });
  const m = decodeMessage(BytesValueSchema, bytes);
  assert.deepStrictEqual(m, fromBinary(BytesValueSchema, bytes));
  assert.equal(m.value.length, 16);
  // The bytes are a view of the payload (no copy), as with fromBinary.
  assert.equal(m.value.buffer, bytes.buffer);
  assert.equal(decodeMessage(BytesValueSchema, new Uint8Array(0)).value.length, 0);
});
