/**
 * The lean HTTP/2 unary path's codec (decodeMessage for requests,
 * FlatEncoder for responses) against connect-es' (fromBinary, toBinary),
 * over real sockets: the same requests go to a KV server with the lean
 * path and to one without, whose Get handler answers oddly shaped
 * messages (unknown fields, another type, wrong field types, at and over
 * writeMaxBytes, an interceptor's replacement), with and without
 * readUnknownFields; status, headers, body bytes and trailers must match.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import {
  GetRequestSchema,
  GetResponseSchema,
  KV,
  PutRequestSchema,
} from "../../../examples/kv/gen/example/kv/v1/kv_pb.js";
import { createNodeAdapter } from "../../../src/transport/node-adapter.js";
import { CALL_ABORT } from "../../../src/transport/lazy-abort.js";
import { envelope, exchange as rawExchange, type Exchange } from "./command-routes.js";

const WRITE_MAX = 256;
const PATH = "/example.kv.v1.KV/Get";

interface Seen {
  lean: number;
  reference: number;
}

function routes(seen: Seen): (router: ConnectRouter) => void {
  return (router) =>
    router.service(KV, {
      get(req, ctx) {
        if (CALL_ABORT in ctx) seen.lean++;
        else seen.reference++;
        const key = req.key;
        switch (key) {
          case "unknown":
            return create(GetResponseSchema, {
              value: new Uint8Array([1]),
              $unknown: [{ no: 9, wireType: WireType.Varint, data: new Uint8Array([5]) }],
            });
          case "echo-unknown":
            // As numbers: on the lean path bytes are Buffers (views of node's), on connect-es' Uint8Arrays.
            return {
              value: Buffer.from(
                JSON.stringify(
                  req.$unknown?.map((u) => ({ no: u.no, wireType: u.wireType, data: [...u.data] })),
                ) ?? "none",
              ),
            };
          case "other":
            return create(PutRequestSchema, { key: "k", value: new Uint8Array([7, 7]) }) as never;
          case "wrong-type":
            return { value: "not bytes", found: 1 } as never;
          case "at-max":
            // tag 1 + length 2 + 253 bytes = 256
            return { value: new Uint8Array(WRITE_MAX - 3).fill(1) };
          case "over-max":
            return { value: new Uint8Array(WRITE_MAX - 2).fill(1) };
          default:
            return { value: Buffer.from(key), found: key.length > 3 };
        }
      },
    });
}

/** Replaces the response message, as an interceptor may. */
const replacing: Interceptor = (next) => async (req) => {
  const res = await next(req);
  const key = (req.message as { key?: string }).key;
  if (!res.stream && key === "replace-plain") {
    return { ...res, message: { value: new Uint8Array([4]), found: true } as never };
  }
  if (!res.stream && key === "replace-other") {
    return { ...res, message: create(PutRequestSchema, { key: "zz" }) as never };
  }
  return res;
};

interface Server {
  url: string;
  seen: Seen;
  server: http2.Http2Server;
}

async function start(lean: boolean, readUnknownFields: boolean | undefined): Promise<Server> {
  const seen: Seen = { lean: 0, reference: 0 };
  const server = http2.createServer(
    createNodeAdapter({
      routes: routes(seen),
      interceptors: [replacing],
      writeMaxBytes: WRITE_MAX,
      readMaxBytes: 1024,
      lean,
      ...(readUnknownFields === undefined ? {} : { binaryOptions: { readUnknownFields } }),
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
}

const servers: Record<string, [Server, Server]> = {};
before(async () => {
  for (const option of [undefined, true, false]) {
    servers[String(option)] = await Promise.all([start(true, option), start(false, option)]);
  }
});
after(async () => {
  for (const pair of Object.values(servers)) {
    for (const s of pair) {
      s.server.close();
      await new Promise<void>((resolve) => s.server.once("close", resolve));
    }
  }
});

/** One raw HTTP/2 request to PATH (command-routes.ts). */
const exchange = (
  url: string,
  headers: http2.OutgoingHttpHeaders,
  body: Uint8Array,
): Promise<Exchange> => rawExchange(url, PATH, headers, body);

function requestBytes(key: string | Uint8Array, unknown = false): Uint8Array {
  if (typeof key === "string" && !unknown) {
    return toBinary(GetRequestSchema, create(GetRequestSchema, { key }));
  }
  const w = new BinaryWriter();
  if (typeof key === "string") w.tag(1, WireType.LengthDelimited).string(key);
  else w.tag(1, WireType.LengthDelimited).bytes(key);
  if (unknown) w.tag(7, WireType.Varint).int32(42).tag(20, WireType.LengthDelimited).string("u");
  return w.finish();
}

const CASES: Array<[string, Uint8Array, boolean | undefined]> = [
  ["plain", requestBytes("abcd"), true],
  ["empty", requestBytes(""), true],
  ["unknown fields in the response", requestBytes("unknown"), true],
  ["unknown fields in the request", requestBytes("echo-unknown", true), true],
  ["another message type", requestBytes("other"), true],
  ["wrong field types", requestBytes("wrong-type"), true],
  ["at writeMaxBytes", requestBytes("at-max"), true],
  ["over writeMaxBytes", requestBytes("over-max"), true],
  ["an interceptor's plain object", requestBytes("replace-plain"), true],
  ["an interceptor's message of another type", requestBytes("replace-other"), true],
  ["invalid UTF-8 in a string field", requestBytes(new Uint8Array([0xff, 0xfe])), false],
];

for (const option of ["undefined", "true", "false"]) {
  for (const protocol of ["connect", "grpc"] as const) {
    for (const [name, payload, lean] of CASES) {
      test(`readUnknownFields ${option}, ${protocol}: ${name}`, async () => {
        const [withLean, without] = servers[option] as [Server, Server];
        const headers: http2.OutgoingHttpHeaders =
          protocol === "connect"
            ? { "content-type": "application/proto", "connect-protocol-version": "1" }
            : { "content-type": "application/grpc", te: "trailers" };
        const body = protocol === "connect" ? payload : envelope(payload);
        const before = { ...withLean.seen };
        const a = await exchange(withLean.url, headers, body);
        const b = await exchange(without.url, headers, body);
        assert.deepEqual(a, b);
        const ran = [withLean.seen.lean - before.lean, withLean.seen.reference - before.reference];
        if (lean === true) assert.deepEqual(ran, [1, 0], "the lean path ran it");
        if (lean === false) assert.deepEqual(ran, [0, 0], "no handler ran");
      });
    }
  }
}
