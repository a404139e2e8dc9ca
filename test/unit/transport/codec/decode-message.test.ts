/**
 * src/transport/codec/decode-message.ts: decodeMessage gives what protobuf-es'
 * fromBinary gives, for proto3 (copied zero message), proto2 and editions
 * (fromBinary itself), and no two messages share a list, map or oneof.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  create,
  createFileRegistry,
  ScalarType,
  fromBinary,
  toBinary,
  type DescMessage,
  type MessageInitShape,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, BytesValueSchema } from "@bufbuild/protobuf/wkt";
import { decodeMessage } from "../../../../src/transport/codec/decode-message.js";
import { MessageEncoder } from "../../../../src/transport/framed/encode.js";

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
  // proto3 takes the copied path, but an unset bytes field is still a Uint8Array of its own.
  assert.notEqual(a["b"], b["b"]);
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

// A flat proto3 message (the fields decode.ts reads itself): bytes, string, bool, int32, uint32, enum.
const flatFile = create(FileDescriptorProtoSchema, {
  name: "tf.proto",
  package: "tf",
  syntax: "proto3",
  enumType: [
    {
      name: "E",
      value: [
        { name: "E_ZERO", number: 0 },
        { name: "E_ONE", number: 1 },
      ],
    },
  ],
  messageType: [
    {
      name: "F",
      field: [
        { name: "b", number: 1, type: 12, label: 1, jsonName: "b" },
        { name: "s", number: 2, type: 9, label: 1, jsonName: "s" },
        { name: "t", number: 3, type: 8, label: 1, jsonName: "t" },
        { name: "i", number: 4, type: 5, label: 1, jsonName: "i" },
        { name: "u", number: 5, type: 13, label: 1, jsonName: "u" },
        { name: "e", number: 15, type: 14, label: 1, typeName: ".tf.E", jsonName: "e" },
        { name: "far", number: 16, type: 12, label: 1, jsonName: "far" },
      ],
    },
  ],
});
const flat = createFileRegistry(flatFile, () => undefined).getMessage("tf.F") as DescMessage;

/** decodeMessage and fromBinary agree: the same message, or errors with the same message. */
function agree(bytes: Uint8Array): void {
  let theirs: unknown;
  let threw = false;
  try {
    theirs = fromBinary(flat, bytes);
  } catch (error) {
    threw = true;
    theirs = (error as Error).message;
  }
  if (threw) {
    assert.throws(
      () => decodeMessage(flat, bytes),
      (e: unknown) => (e as Error).message === theirs,
      `bytes ${Buffer.from(bytes).toString("hex")}`,
    );
  } else {
    assert.deepStrictEqual(
      decodeMessage(flat, bytes),
      theirs,
      `bytes ${Buffer.from(bytes).toString("hex")}`,
    );
  }
}

test("decodeMessage, flat messages: the same as fromBinary for valid, odd and broken bytes", () => {
  const hex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h.replace(/ /g, ""), "hex"));
  const cases = [
    "",
    "0a 03 010203", // b
    "12 05 68c3a96c6c", // s "héllo"
    "12 03 ff fe 80", // s: invalid UTF-8, replaced as TextDecoder replaces it
    "18 01",
    "18 00",
    "18 ffffffffffffffffff01", // bool: a 10-byte varint
    "18 80808080808080808002", // bool: only bits past 64 set
    "20 ffffffff0f", // int32 -1 in 5 bytes
    "20 ffffffffffffffffff01", // int32 -1 in 10 bytes
    "28 ffffffff0f", // uint32 max
    "28 ffffffffffffffffff01", // uint32 from a 10-byte varint
    "78 01", // enum field 15
    "82 01 02 0909", // field 16: a two-byte key
    "0a 01 07 0a 02 0808", // b twice: the last wins
    "08 01", // b with the varint wire type
    "20 05 30 07", // an unknown field 6
    "0a 05 0102", // a length past the end
    "20 ff", // a varint cut short
    "20 ffffffffffffffffffff01", // an 11-byte varint
    "00 01", // field number 0
    "0a 80808080 10 01", // a length of 5 bytes
  ];
  for (const c of cases) agree(hex(c));
  // Random bytes, and random damage to valid encodings.
  let seed = 11;
  const r = (): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  for (let n = 0; n < 3000; n++) {
    if (n % 2 === 0) {
      agree(new Uint8Array(Math.floor(r() * 24)).map(() => Math.floor(r() * 256)));
    } else {
      const valid = toBinary(
        flat,
        create(flat, {
          b: new Uint8Array(Math.floor(r() * 5)).fill(3),
          s: r() < 0.5 ? "" : "abc",
          t: r() < 0.5,
          i: Math.floor((r() - 0.5) * 2 ** 32),
          u: Math.floor(r() * 2 ** 32),
          e: r() < 0.5 ? 0 : 1,
        }),
      );
      const broken = valid.slice(0, Math.floor(r() * (valid.length + 1)));
      if (broken.length > 0 && r() < 0.5) {
        broken[Math.floor(r() * broken.length)] = Math.floor(r() * 256);
      }
      agree(valid);
      agree(broken);
    }
  }
});

test("decodeMessage, encoder: an implicit-presence field of a closed enum keeps an unknown value in $unknown, as fromBinary does", () => {
  // A proto3 message whose field is a proto2 (closed) enum, and an editions
  // message with implicit presence and a closed enum: protoc refuses both,
  // protobuf-es' registry (descriptors built at run time) takes them.
  const closedEnum = createFileRegistry(
    create(FileDescriptorProtoSchema, {
      name: "ce.proto",
      package: "ce",
      syntax: "proto2",
      enumType: [
        {
          name: "E",
          value: [
            { name: "A", number: 1 },
            { name: "B", number: 2 },
          ],
        },
      ],
    }),
    () => undefined,
  );
  const viaProto3 = createFileRegistry(
    create(FileDescriptorProtoSchema, {
      name: "cm.proto",
      package: "cm",
      syntax: "proto3",
      dependency: ["ce.proto"],
      messageType: [
        { name: "M", field: [{ name: "e", number: 1, type: 14, label: 1, typeName: ".ce.E" }] },
      ],
    }),
    (name) => closedEnum.getFile(name),
  ).getMessage("cm.M") as DescMessage;
  const viaEditions = createFileRegistry(
    create(FileDescriptorProtoSchema, {
      name: "ced.proto",
      package: "ced",
      syntax: "editions",
      edition: 1000,
      options: { features: { fieldPresence: 2, enumType: 2 } }, // IMPLICIT, CLOSED
      enumType: [
        {
          name: "E",
          value: [
            { name: "A", number: 1 },
            { name: "B", number: 2 },
          ],
        },
      ],
      messageType: [
        { name: "M", field: [{ name: "e", number: 1, type: 14, label: 1, typeName: ".ced.E" }] },
      ],
    }),
    () => undefined,
  ).getMessage("ced.M") as DescMessage;
  for (const schema of [viaProto3, viaEditions]) {
    for (const bytes of [[0x08, 0x07], [0x08, 0x02], [0x08, 0x01], []]) {
      const input = new Uint8Array(bytes);
      const ours = decodeMessage(schema, input);
      assert.deepStrictEqual(
        ours,
        fromBinary(schema, input),
        `${schema.typeName} ${bytes.join(",")}`,
      );
      const encoder = new MessageEncoder();
      assert.equal(encoder.measure(schema, ours, Infinity), toBinary(schema, ours).length);
    }
  }
});

test("decodeMessage: an unset bytes field is a Uint8Array of its own; transferring its buffer leaves later messages cloneable", () => {
  for (const schema of [proto3, flat, BytesValueSchema]) {
    const field = schema.fields.find(
      (f) => f.fieldKind === "scalar" && f.scalar === ScalarType.BYTES,
    );
    const name = (field as { localName: string }).localName;
    const first = decodeMessage(schema, new Uint8Array(0)) as unknown as Record<string, Uint8Array>;
    // A host hands a message's bytes to a worker without a copy.
    structuredClone(first, { transfer: [(first[name] as Uint8Array).buffer as ArrayBuffer] });
    const next = decodeMessage(schema, new Uint8Array(0)) as unknown as Record<string, Uint8Array>;
    assert.deepStrictEqual(
      structuredClone(next),
      fromBinary(schema, new Uint8Array(0)),
      schema.typeName,
    );
    assert.deepStrictEqual(new Uint8Array(next[name] as Uint8Array), new Uint8Array(0));
  }
});

test("decodeMessage with a start offset: the same message as fromBinary of the rest, a Buffer's bytes still a Buffer", () => {
  const envelope = Buffer.from([0, 0, 0, 0, 18]);
  // The flat path: a BytesValue after a gRPC envelope header, as the lean path reads it.
  const payload = Buffer.from(
    toBinary(BytesValueSchema, {
      $typeName: "google.protobuf.BytesValue",
      value: new Uint8Array(16).fill(7),
    }),
  );
  const body = Buffer.concat([envelope, payload]);
  const m = decodeMessage(BytesValueSchema, body, 5);
  assert.deepStrictEqual(m, fromBinary(BytesValueSchema, body.subarray(5)));
  assert.ok(Buffer.isBuffer(m.value), "a view of a Buffer, as fromBinary gives for one");
  assert.equal(m.value.buffer, body.buffer);
  assert.equal(decodeMessage(BytesValueSchema, envelope, 5).value.length, 0, "nothing after start");
  // The fallbacks (unknown field, malformed bytes) read the rest as well.
  for (const [name, schema] of [
    ["proto3", proto3],
    ["proto2", proto2],
  ] as const) {
    const unknown = Buffer.from([9, 9, 0xf8, 0x06, 0x05]); // two bytes of prefix, field 111, varint 5
    assert.deepStrictEqual(
      decodeMessage(schema, unknown, 2),
      fromBinary(schema, unknown.subarray(2)),
      name,
    );
    const broken = Buffer.from([9, 0x0a, 0x05, 0x61]);
    assert.throws(() => decodeMessage(schema, broken, 1), name);
  }
});
