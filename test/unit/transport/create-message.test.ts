/**
 * src/transport/create-message.ts: the same message as protobuf-es'
 * create(), for every kind of message (the fast path and the fallback),
 * compared field by field, in key order, by prototype and on the wire.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { create, createFileRegistry, toBinary, type DescMessage } from "@bufbuild/protobuf";
import { BytesValueSchema, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { createMessage } from "../../../src/transport/create-message.js";

// FieldDescriptorProto types and labels, as numbers.
const T = { double: 1, int64: 3, int32: 5, bool: 8, string: 9, message: 11, bytes: 12, enum: 14 };
const OPTIONAL = 1;
const REPEATED = 3;

const registry = createFileRegistry(
  create(FileDescriptorProtoSchema, {
    name: "t/v1/t.proto",
    package: "t.v1",
    syntax: "proto3",
    enumType: [
      {
        name: "Color",
        value: [
          { name: "COLOR_UNSET", number: 0 },
          { name: "RED", number: 1 },
        ],
      },
    ],
    messageType: [
      {
        name: "Flat",
        field: [
          { name: "s", number: 1, type: T.string, label: OPTIONAL, jsonName: "s" },
          { name: "i", number: 2, type: T.int32, label: OPTIONAL, jsonName: "i" },
          { name: "l", number: 3, type: T.int64, label: OPTIONAL, jsonName: "l" },
          { name: "b", number: 4, type: T.bool, label: OPTIONAL, jsonName: "b" },
          { name: "d", number: 5, type: T.double, label: OPTIONAL, jsonName: "d" },
          { name: "y", number: 6, type: T.bytes, label: OPTIONAL, jsonName: "y" },
          {
            name: "c",
            number: 7,
            type: T.enum,
            typeName: ".t.v1.Color",
            label: OPTIONAL,
            jsonName: "c",
          },
        ],
      },
      {
        name: "WithOptional",
        field: [
          { name: "s", number: 1, type: T.string, label: OPTIONAL, jsonName: "s" },
          {
            name: "o",
            number: 2,
            type: T.int32,
            label: OPTIONAL,
            jsonName: "o",
            oneofIndex: 0,
            proto3Optional: true,
          },
        ],
        oneofDecl: [{ name: "_o" }],
      },
      {
        name: "Nested",
        field: [
          {
            name: "flat",
            number: 1,
            type: T.message,
            typeName: ".t.v1.Flat",
            label: OPTIONAL,
            jsonName: "flat",
          },
          { name: "list", number: 2, type: T.string, label: REPEATED, jsonName: "list" },
          { name: "a", number: 3, type: T.string, label: OPTIONAL, jsonName: "a", oneofIndex: 0 },
          { name: "n", number: 4, type: T.int32, label: OPTIONAL, jsonName: "n", oneofIndex: 0 },
        ],
        oneofDecl: [{ name: "pick" }],
      },
    ],
  }),
  () => undefined,
);
const proto2 = createFileRegistry(
  create(FileDescriptorProtoSchema, {
    name: "t/v1/p2.proto",
    package: "t.v2",
    syntax: "proto2",
    messageType: [
      {
        name: "Old",
        field: [{ name: "y", number: 1, type: T.bytes, label: OPTIONAL, jsonName: "y" }],
      },
    ],
  }),
  () => undefined,
);
const message = (r: typeof registry, name: string): DescMessage => {
  const desc = r.getMessage(name);
  if (desc === undefined) throw new Error(`no message ${name}`);
  return desc;
};

/** createMessage(desc, init) is create(desc, init), down to key order and identity of values. */
function same(desc: DescMessage, init: Record<string, unknown> | undefined): void {
  const ours = createMessage(desc, init as never) as unknown as Record<string, unknown>;
  const theirs = create(desc, init as never) as unknown as Record<string, unknown>;
  assert.deepStrictEqual(
    ours,
    theirs,
    `${desc.typeName} ${JSON.stringify(Object.keys(init ?? {}))}`,
  );
  assert.deepEqual(Object.keys(ours), Object.keys(theirs));
  assert.equal(Object.getPrototypeOf(ours), Object.getPrototypeOf(theirs));
  assert.deepEqual(toBinary(desc, ours as never), toBinary(desc, theirs as never));
  for (const key of Object.keys(init ?? {})) {
    if (typeof init?.[key] === "object") {
      assert.equal(ours[key] === init[key], theirs[key] === init[key], `identity of ${key}`);
    }
  }
}

test("a flat proto3 message: every field given, some, none, null, an array for bytes", () => {
  const flat = message(registry, "t.v1.Flat");
  const y = new Uint8Array([1, 2, 3]);
  same(flat, { s: "x", i: 7, l: 9n, b: true, d: 1.5, y, c: 1 });
  same(flat, { s: "x", y });
  same(flat, {});
  same(flat, undefined);
  same(flat, { s: null, y: undefined, i: 0 });
  same(flat, { y: [4, 5] });
  same(flat, { s: "x", unknownKey: 1, $typeName: "something.Else" });
  same(BytesValueSchema, { value: y });
  same(BytesValueSchema, {});
  // Two zero messages never share a bytes value.
  const a = createMessage(flat, {}) as unknown as { y: Uint8Array };
  const b = createMessage(flat, {}) as unknown as { y: Uint8Array };
  assert.notEqual(a.y, b.y);
});

test("a message is returned as it is", () => {
  const m = create(BytesValueSchema, { value: new Uint8Array([1]) });
  assert.equal(createMessage(BytesValueSchema, m), m);
});

test("other messages (optional, oneof, message, list fields, proto2) are create()'s", () => {
  same(message(registry, "t.v1.WithOptional"), { s: "x", o: 3 });
  same(message(registry, "t.v1.WithOptional"), { s: "x" });
  const nested = message(registry, "t.v1.Nested");
  same(nested, { flat: { s: "in" }, list: ["a", "b"], pick: { case: "n", value: 2 } });
  same(nested, {});
  same(message(proto2, "t.v2.Old"), { y: new Uint8Array([9]) });
  same(message(proto2, "t.v2.Old"), {});
});
