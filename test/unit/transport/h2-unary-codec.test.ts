/**
 * The lean unary path's message codec (requestBody and parseMessage in
 * src/transport/unary-client-wire.ts: the flat codec for flat messages,
 * protobuf-es for the rest) against connect-es' own transports, over real
 * HTTP/2 sessions to a real echo server: the request bytes on the wire, the
 * messages parsed from an answer (unknown fields included) and the errors
 * must come out the same.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import {
  create,
  createFileRegistry,
  toBinary,
  type DescMessage,
  type DescMethodUnary,
  type MessageShape,
} from "@bufbuild/protobuf";
import {
  BoolValueSchema,
  BytesValueSchema,
  FileDescriptorProtoSchema,
  Int32ValueSchema,
  Int64ValueSchema,
  StringValueSchema,
  StructSchema,
  UInt32ValueSchema,
} from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { createH2Client } from "../../../src/transport/h2-client.js";
import { H2Session } from "../../../src/transport/h2-session.js";
import { createProtocolTransport } from "../../../src/transport/protocol-transport.js";
import { Bench } from "../../../bench/service.js";

const WRITE_MAX = 64;

/**
 * Echo's method with other message types: the server below echoes bytes,
 * whatever the schema (the URL stays Echo's).
 */
function methodOf<T extends DescMessage>(schema: T): DescMethodUnary<T, T> {
  return { ...Bench.method.echo, input: schema, output: schema };
}

interface EchoServer {
  readonly url: string;
  /** The request bodies received, in order (the message, without a gRPC envelope). */
  readonly bodies: Uint8Array[];
  close(): Promise<void>;
}

/**
 * Answers every call with the request's own message, or with the bytes of
 * its `x-answer` header (hex) when it has one.
 */
async function startEcho(): Promise<EchoServer> {
  const bodies: Uint8Array[] = [];
  const server = http2.createServer();
  server.on("stream", (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => {
      const grpc = String(headers["content-type"]).startsWith("application/grpc");
      const body = Buffer.concat(chunks);
      if (grpc) assert.equal(body.readUInt32BE(1), body.length - 5, "envelope length = payload");
      const message = grpc ? body.subarray(5) : body;
      bodies.push(new Uint8Array(message));
      const hex = headers["x-answer"];
      const answer = typeof hex === "string" ? Buffer.from(hex, "hex") : message;
      if (!grpc) {
        stream.respond({ ":status": 200, "content-type": "application/proto" });
        stream.end(answer);
        return;
      }
      stream.respond(
        { ":status": 200, "content-type": "application/grpc+proto" },
        {
          waitForTrailers: true,
        },
      );
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      const out = Buffer.alloc(5 + answer.length);
      out.writeUInt32BE(answer.length, 1);
      answer.copy(out, 5);
      stream.end(out);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bodies,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

interface Pair {
  readonly lean: Transport;
  readonly reference: Transport;
  close(): void;
}

function pair(url: string, protocol: "connect" | "grpc"): Pair {
  const options = { baseUrl: url, writeMaxBytes: WRITE_MAX };
  const leanSession = new H2Session(url);
  const refSession = new H2Session(url);
  return {
    lean: createProtocolTransport(protocol, leanSession, options),
    reference: createProtocolTransport(protocol, createH2Client(refSession), options),
    close: () => {
      leanSession.close();
      refSession.close();
    },
  };
}

/** The outcome of one call: the message's bytes and unknown fields, or the error. */
async function call<T extends DescMessage>(
  transport: Transport,
  schema: T,
  input: unknown,
  header?: Record<string, string>,
): Promise<unknown> {
  try {
    const res = await transport.unary(
      methodOf(schema),
      undefined,
      undefined,
      header,
      input as MessageShape<T>,
    );
    const message = res.message as MessageShape<T> & { $unknown?: unknown };
    return {
      bytes: [...toBinary(schema, message)],
      unknown: message.$unknown,
      message: JSON.stringify(message, (_, v: unknown) =>
        typeof v === "bigint" ? `${v}n` : v instanceof Uint8Array ? [...v] : v,
      ),
    };
  } catch (e) {
    assert.ok(e instanceof ConnectError, `not a ConnectError: ${String(e)}`);
    return { code: Code[e.code], message: e.message };
  }
}

describe("lean unary codec = connect-es' transport", () => {
  let server: EchoServer;
  before(async () => (server = await startEcho()));
  after(() => server.close());

  /** Requests each path must send as the same bytes and read back as the same message. */
  const requests: Record<string, [DescMessage, () => unknown]> = {
    "flat message": [
      BytesValueSchema,
      () => create(BytesValueSchema, { value: Uint8Array.of(1, 2, 3) }),
    ],
    "flat message, empty": [BytesValueSchema, () => create(BytesValueSchema)],
    "flat message, string with non-ASCII text": [
      StringValueSchema,
      () => create(StringValueSchema, { value: "grüße ✗ 𝄞" }),
    ],
    // Lone surrogates: TextEncoder (protobuf-es) and Buffer both write U+FFFD.
    "flat message, string with lone surrogates": [
      StringValueSchema,
      () => create(StringValueSchema, { value: "a\uD800b\uDC00\uD83D" }),
    ],
    "flat message, negative int32 (ten bytes)": [
      Int32ValueSchema,
      () => create(Int32ValueSchema, { value: -2147483648 }),
    ],
    "flat message, int32 -0 (not written)": [
      Int32ValueSchema,
      () => create(Int32ValueSchema, { value: -0 }),
    ],
    "flat message, largest uint32": [
      UInt32ValueSchema,
      () => create(UInt32ValueSchema, { value: 0xffffffff }),
    ],
    "flat message, bool": [BoolValueSchema, () => create(BoolValueSchema, { value: true })],
    // Not an int32: toBinary's error, as connect-es reports it.
    "flat schema, int32 NaN": [
      Int32ValueSchema,
      () => ({ $typeName: Int32ValueSchema.typeName, value: NaN }),
    ],
    "flat schema, uint32 out of range": [
      UInt32ValueSchema,
      () => ({ $typeName: UInt32ValueSchema.typeName, value: 2 ** 32 }),
    ],
    // int64 is no kind of the flat codec: protobuf-es writes and reads it.
    "not flat: int64": [Int64ValueSchema, () => create(Int64ValueSchema, { value: -5n })],
    // A map of messages: protobuf-es both ways.
    "not flat: Struct": [
      StructSchema,
      () =>
        create(StructSchema, {
          fields: { a: { kind: { case: "stringValue", value: "x" } } },
        }),
    ],
    // A flat schema, but unknown fields to write: toBinary writes them.
    "flat schema with unknown fields": [
      BytesValueSchema,
      () => ({
        ...create(BytesValueSchema, { value: Uint8Array.of(9) }),
        $unknown: [{ no: 7, wireType: 0, data: Uint8Array.of(42) }],
      }),
    ],
    // Over writeMaxBytes (64): connect-es' ResourceExhausted, not sent.
    "flat message over writeMaxBytes": [
      BytesValueSchema,
      () => create(BytesValueSchema, { value: new Uint8Array(WRITE_MAX) }),
    ],
    "not flat, over writeMaxBytes": [
      StructSchema,
      () =>
        create(StructSchema, {
          fields: { a: { kind: { case: "stringValue", value: "x".repeat(WRITE_MAX) } } },
        }),
    ],
    // A value of the wrong type: toBinary's error, as connect-es reports it.
    "flat schema, value of the wrong type": [
      BytesValueSchema,
      () => ({ $typeName: BytesValueSchema.typeName, value: "not bytes" }),
    ],
  };

  for (const protocol of ["connect", "grpc"] as const) {
    for (const [name, [schema, make]] of Object.entries(requests)) {
      test(`${protocol}: ${name}`, async () => {
        const p = pair(server.url, protocol);
        try {
          const before = server.bodies.length;
          const lean = await call(p.lean, schema, make());
          const leanBodies = server.bodies.slice(before);
          const reference = await call(p.reference, schema, make());
          const referenceBodies = server.bodies.slice(before + leanBodies.length);
          assert.deepEqual(lean, reference);
          assert.deepEqual(
            leanBodies.map((b) => [...b]),
            referenceBodies.map((b) => [...b]),
            "the same request bytes on the wire",
          );
          if (name.includes("over writeMaxBytes")) {
            assert.equal((lean as { code: string }).code, "ResourceExhausted");
            assert.equal(leanBodies.length, 0, "nothing sent");
          }
          if (
            name.includes("wrong type") ||
            name.includes("NaN") ||
            name.includes("out of range")
          ) {
            assert.match((lean as { message: string }).message, /serialize binary/);
          }
        } finally {
          p.close();
        }
      });
    }

    test(`${protocol}: unknown fields of an answer are kept, as protobuf-es keeps them`, async () => {
      const p = pair(server.url, protocol);
      try {
        // Field 1 (value) = [7], then field 2 (unknown), varint 5, then field 3, bytes [1].
        const header = { "x-answer": "0a010710051a0101" };
        const lean = await call(p.lean, BytesValueSchema, create(BytesValueSchema), header);
        const reference = await call(
          p.reference,
          BytesValueSchema,
          create(BytesValueSchema),
          header,
        );
        assert.deepEqual(lean, reference);
        assert.deepEqual((lean as { bytes: number[] }).bytes, [0x0a, 1, 7, 0x10, 5, 0x1a, 1, 1]);
        assert.ok(Array.isArray((lean as { unknown: unknown }).unknown), "unknown fields kept");
      } finally {
        p.close();
      }
    });

    test(`${protocol}: an answer that cannot be parsed fails as connect-es' does`, async () => {
      const p = pair(server.url, protocol);
      try {
        // Field 1 announces 9 bytes; 1 follows.
        const header = { "x-answer": "0a0907" };
        const lean = await call(p.lean, BytesValueSchema, create(BytesValueSchema), header);
        const reference = await call(
          p.reference,
          BytesValueSchema,
          create(BytesValueSchema),
          header,
        );
        assert.deepEqual(lean, reference);
        assert.equal((lean as { code: string }).code, "Internal");
        assert.match((lean as { message: string }).message, /parse binary/);
      } finally {
        p.close();
      }
    });

    test(`${protocol}: a message whose getter changes between reads is sent as read once`, async () => {
      const p = pair(server.url, protocol);
      try {
        // Each read of `value` gives a longer array: a size measured from one
        // read and bytes written from another would break the body's framing.
        let reads = 0;
        const changing = {
          $typeName: BytesValueSchema.typeName,
          get value(): Uint8Array {
            return new Uint8Array(++reads).fill(reads);
          },
        };
        const before = server.bodies.length;
        const out = (await call(p.lean, BytesValueSchema, changing)) as { bytes: number[] };
        const sent = server.bodies.slice(before);
        assert.equal(sent.length, 1);
        // What was sent is one whole message, echoed back and parsed as it was sent.
        assert.deepEqual(out.bytes, [...(sent[0] as Uint8Array)]);
        const n = (sent[0] as Uint8Array)[1] as number;
        assert.deepEqual(out.bytes, [0x0a, n, ...new Array<number>(n).fill(n)]);
      } finally {
        p.close();
      }
    });

    test(`${protocol}: a message whose getter throws fails as connect-es' does (serialize binary, Internal)`, async () => {
      const p = pair(server.url, protocol);
      try {
        const throwing = () => ({
          $typeName: BytesValueSchema.typeName,
          get value(): Uint8Array {
            throw new Error("getter broke");
          },
        });
        const before = server.bodies.length;
        const lean = await call(p.lean, BytesValueSchema, throwing());
        const reference = await call(p.reference, BytesValueSchema, throwing());
        assert.deepEqual(lean, reference);
        assert.deepEqual(lean, {
          code: "Internal",
          message: "[internal] serialize binary: getter broke",
        });
        assert.equal(server.bodies.length, before, "nothing sent");
      } finally {
        p.close();
      }
    });

    test(`${protocol}: a getter that starts a call of the same type while the message is measured`, async () => {
      const p = pair(server.url, protocol);
      try {
        // Two flat fields: the second's getter sends another message of the
        // same schema, synchronously, through the same transport.
        const inner = create(TwoSchema, {
          s: "inner-inner",
          b: Uint8Array.of(1, 2, 3, 4, 5, 6, 7),
        });
        let innerCall: Promise<unknown> | undefined;
        const outer = {
          $typeName: TwoSchema.typeName,
          s: "o",
          get b(): Uint8Array {
            innerCall ??= call(p.lean, TwoSchema, inner);
            return Uint8Array.of(9);
          },
        };
        const before = server.bodies.length;
        const out = await call(p.lean, TwoSchema, outer);
        const innerOut = await innerCall;
        const sent = server.bodies.slice(before).map((b) => Buffer.from(b).toString("hex"));
        const outerBytes = toBinary(TwoSchema, create(TwoSchema, { s: "o", b: Uint8Array.of(9) }));
        const innerBytes = toBinary(TwoSchema, inner);
        assert.deepEqual(
          [...sent].sort(),
          [Buffer.from(outerBytes).toString("hex"), Buffer.from(innerBytes).toString("hex")].sort(),
          "each call sends its own message",
        );
        assert.deepEqual((out as { bytes: number[] }).bytes, [...outerBytes]);
        assert.deepEqual((innerOut as { bytes: number[] }).bytes, [...innerBytes]);
      } finally {
        p.close();
      }
    });
  }
});

/** A flat message of two fields (string s = 1, bytes b = 2), declared at run time. */
const TwoSchema = createFileRegistry(
  create(FileDescriptorProtoSchema, {
    name: "review/two.proto",
    package: "review",
    syntax: "proto3",
    messageType: [
      {
        name: "Two",
        field: [
          { name: "s", jsonName: "s", number: 1, label: 1, type: 9 },
          { name: "b", jsonName: "b", number: 2, label: 1, type: 12 },
        ],
      },
    ],
  }),
  () => undefined,
).getMessage("review.Two") as DescMessage;
