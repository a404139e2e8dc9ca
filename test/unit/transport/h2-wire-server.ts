/**
 * A real node:http2 server on loopback that answers each request with a
 * hand-made HTTP/2 response chosen by its `x-scenario` header: the wire
 * cases (successes, error bodies, trailers-only answers, compression,
 * oversized and broken bodies, hangs, broken sessions) that the lean
 * unary client must read exactly as connect-es does.
 */
import * as http2 from "node:http2";
import type { AddressInfo, Socket } from "node:net";
import * as zlib from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { anyPack, AnySchema, BytesValueSchema } from "@bufbuild/protobuf/wkt";

export const DETAIL = create(BytesValueSchema, { value: new Uint8Array([7, 7]) });
const reply = toBinary(
  BytesValueSchema,
  create(BytesValueSchema, { value: new Uint8Array([1, 2, 3]) }),
);

function envelope(data: Uint8Array, flags = 0): Buffer {
  const out = Buffer.alloc(5 + data.byteLength);
  out[0] = flags;
  out.writeUInt32BE(data.byteLength, 1);
  out.set(data, 5);
  return out;
}

/** Writes `data` `size` bytes at a time, one write per timer tick, then ends the stream. */
function dribble(s: http2.ServerHttp2Stream, data: Buffer, size: number): void {
  let at = 0;
  const next = (): void => {
    if (s.destroyed) return;
    if (at >= data.byteLength) {
      s.end();
      return;
    }
    s.write(data.subarray(at, (at += size)));
    setTimeout(next, 2);
  };
  next();
}

type Respond = (
  stream: http2.ServerHttp2Stream,
  session: http2.ServerHttp2Session,
  request: http2.IncomingHttpHeaders,
) => void;

const connectOk = { ":status": 200, "content-type": "application/proto" };
const grpcOk = { ":status": 200, "content-type": "application/grpc+proto" };
const json = (o: unknown): Buffer => Buffer.from(JSON.stringify(o));
const webOk = { ":status": 200, "content-type": "application/grpc-web+proto" };
/** gRPC-web's trailer envelope (flag 0x80): `fields` as CRLF-separated lines. */
const webTrailer = (fields: string, flags = 0x80): Buffer =>
  envelope(Buffer.from(fields.split("\n").join("\r\n")), flags);
const webOkTrailer = webTrailer("grpc-status: 0\nx-tail: t1\n");

/** Each scenario, by name: what the server does with the request. */
export const scenarios: Record<string, Respond> = {
  "connect-ok": (s) => {
    s.respond({ ...connectOk, "x-head": "h1", "trailer-x-tail": "t1" });
    s.end(reply);
  },
  // Multi-valued fields, cookies and a binary field, in the headers and the trailer- fields.
  "connect-ok-metadata": (s) => {
    s.respond({
      ...connectOk,
      "set-cookie": ["a=1", "b=2"],
      "x-multi": ["m1", "m2"],
      "x-head-bin": "AAEC",
      "trailer-x-tail": ["t1", "t2"],
      "trailer-set-cookie": ["c=3"],
      "trailer-x-tail-bin": "AwQ=",
    });
    s.end(reply);
  },
  // A "trailer-" field with nothing after the prefix: no trailer name.
  "connect-ok-empty-trailer-name": (s) => {
    s.respond({ ...connectOk, "trailer-": "t1" });
    s.end(reply);
  },
  "connect-ok-length": (s) => {
    s.respond({ ...connectOk, "content-length": String(reply.byteLength) });
    s.end(reply);
  },
  "connect-gzip": (s) => {
    s.respond({ ...connectOk, "content-encoding": "gzip" });
    s.end(zlib.gzipSync(reply));
  },
  "connect-error-json": (s) => {
    s.respond({
      ":status": 409,
      "content-type": "application/json",
      "x-head": "h1",
      "trailer-x-tail": "t1",
    });
    s.end(
      json({
        code: "already_exists",
        message: "the key exists ✓",
        details: [
          {
            type: "google.protobuf.BytesValue",
            value: Buffer.from(toBinary(BytesValueSchema, DETAIL)).toString("base64"),
          },
        ],
      }),
    );
  },
  "connect-error-json-no-code": (s) => {
    s.respond({ ":status": 429, "content-type": "application/json" });
    s.end(json({ message: "slow down" }));
  },
  "connect-error-bad-json": (s) => {
    s.respond({ ":status": 500, "content-type": "application/json", "x-head": "h1" });
    s.end("{not json");
  },
  "connect-http-status": (s) => {
    s.respond({ ":status": 503, "content-type": "text/plain", "x-head": "h1" });
    s.end("unavailable");
  },
  "connect-wrong-type": (s) => {
    s.respond({ ":status": 200, "content-type": "text/html" });
    s.end("<html>");
  },
  "connect-unknown-encoding": (s) => {
    s.respond({ ...connectOk, "content-encoding": "zstd" });
    s.end(reply);
  },
  "connect-big": (s) => {
    s.respond(connectOk);
    s.end(Buffer.alloc(300, 1));
  },
  "connect-big-length": (s) => {
    s.respond({ ...connectOk, "content-length": "300" });
    s.end(Buffer.alloc(300, 1));
  },
  "connect-short-length": (s) => {
    s.respond({ ...connectOk, "content-length": "10" });
    s.end(reply);
  },
  "connect-bad-message": (s) => {
    s.respond(connectOk);
    s.end(Buffer.from([0xff, 0xff, 0xff]));
  },
  "grpc-ok": (s) => {
    s.respond({ ...grpcOk, "x-head": "h1" }, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "grpc-status": "0", "x-tail": "t1" }));
    s.end(envelope(reply));
  },
  // Multi-valued fields, cookies and binary fields, in the headers and the trailers.
  "grpc-ok-metadata": (s) => {
    s.respond(
      { ...grpcOk, "set-cookie": ["a=1", "b=2"], "x-multi": ["m1", "m2"], "x-head-bin": "AAEC" },
      { waitForTrailers: true },
    );
    s.once("wantTrailers", () =>
      s.sendTrailers({
        "grpc-status": "0",
        "x-tail": ["t1", "t2"],
        "set-cookie": ["c=3"],
        "x-tail-bin": "AwQ=",
      }),
    );
    s.end(envelope(reply));
  },
  "grpc-ok-plain-type": (s) => {
    s.respond({ ...grpcOk, "content-type": "application/grpc" }, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    s.end(envelope(reply));
  },
  // Status 0, but a grpc-status-details-bin with another code: the details win.
  "grpc-status-0-details-error": (s) => {
    s.respond(grpcOk, { waitForTrailers: true });
    const status = new BinaryWriter()
      .tag(1, WireType.Varint)
      .int32(5)
      .tag(2, WireType.LengthDelimited)
      .string("gone")
      .finish();
    s.once("wantTrailers", () =>
      s.sendTrailers({
        "grpc-status": "0",
        "grpc-status-details-bin": Buffer.from(status).toString("base64"),
      }),
    );
    s.end(envelope(reply));
  },
  // A grpc-encoding announced, the message sent uncompressed (flag 0).
  "grpc-gzip-plain-envelope": (s) => {
    s.respond({ ...grpcOk, "grpc-encoding": "gzip" }, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    s.end(envelope(reply));
  },
  // The envelope in two writes of which the first holds exactly its header.
  "grpc-head-then-data": (s) => {
    s.respond(grpcOk, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    const e = envelope(reply);
    s.write(e.subarray(0, 5), () => setTimeout(() => s.end(e.subarray(5)), 5));
  },
  "grpc-br": (s) => {
    s.respond({ ...grpcOk, "grpc-encoding": "br" }, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    s.end(envelope(zlib.brotliCompressSync(reply), 1));
  },
  // The encodings the lean path recognises on node's headers, and those it
  // leaves to connect-es' checks (another case, identity).
  "grpc-gzip": (s) => {
    s.respond({ ...grpcOk, "grpc-encoding": "gzip" }, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    s.end(envelope(zlib.gzipSync(reply), 1));
  },
  "grpc-gzip-upper-case": (s) => {
    s.respond({ ...grpcOk, "grpc-encoding": "GZIP" }, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    s.end(envelope(reply));
  },
  "grpc-identity": (s) => {
    s.respond({ ...grpcOk, "grpc-encoding": "Identity" }, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    s.end(envelope(reply));
  },
  // The fast path's edges (review): a list, whitespace, a compressed
  // flag under identity, a body that is not gzip, a bomb (READ_MAX after
  // decompression), a compressed body over READ_MAX on the wire, and an
  // error status in the trailers of a gzip answer.
  "grpc-gzip-list": (s) => {
    s.respond({ ...grpcOk, "grpc-encoding": "gzip, identity" }, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    s.end(envelope(reply));
  },
  "grpc-gzip-tab": (s) => {
    s.respond({ ...grpcOk, "grpc-encoding": "gzip\t" }, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    s.end(envelope(zlib.gzipSync(reply), 1));
  },
  "grpc-identity-compressed-flag": (s) => {
    s.respond({ ...grpcOk, "grpc-encoding": "identity" }, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    s.end(envelope(zlib.gzipSync(reply), 1));
  },
  "grpc-gzip-br-body": (s) => {
    s.respond({ ...grpcOk, "grpc-encoding": "gzip" }, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    s.end(envelope(zlib.brotliCompressSync(reply), 1));
  },
  "grpc-gzip-bomb": (s) => {
    s.respond({ ...grpcOk, "grpc-encoding": "gzip" }, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    s.end(envelope(zlib.gzipSync(Buffer.alloc(150_000)), 1));
  },
  "grpc-br-bomb": (s) => {
    s.respond({ ...grpcOk, "grpc-encoding": "br" }, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    s.end(envelope(zlib.brotliCompressSync(Buffer.alloc(16 * 1024 * 1024)), 1));
  },
  "grpc-gzip-wire-too-big": (s) => {
    s.respond({ ...grpcOk, "grpc-encoding": "gzip" }, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    s.end(envelope(Buffer.alloc(300, 1), 1));
  },
  "grpc-gzip-trailer-error": (s) => {
    s.respond({ ...grpcOk, "grpc-encoding": "gzip" }, { waitForTrailers: true });
    s.once("wantTrailers", () =>
      s.sendTrailers({ "grpc-status": "8", "grpc-message": "too busy" }),
    );
    s.end(envelope(zlib.gzipSync(reply), 1));
  },
  "grpc-gzip-no-message": (s) => {
    s.respond({ ...grpcOk, "grpc-encoding": "gzip" }, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    s.end();
  },
  "grpc-gzip-extra-message": (s) => {
    s.respond({ ...grpcOk, "grpc-encoding": "gzip" }, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    s.end(Buffer.concat([envelope(zlib.gzipSync(reply), 1), envelope(reply)]));
  },
  "grpc-compressed-no-encoding": (s) => {
    s.respond(grpcOk, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    s.end(envelope(zlib.gzipSync(reply), 1));
  },
  "grpc-trailers-only": (s) => {
    s.respond(
      {
        ...grpcOk,
        "grpc-status": "5",
        "grpc-message": encodeURIComponent("no such key: a b/c ✓ 100%"),
        "x-head": "h1",
      },
      { endStream: true },
    );
  },
  "grpc-trailer-error-details": (s) => {
    s.respond({ ...grpcOk, "x-head": "h1" }, { waitForTrailers: true });
    // google.rpc.Status { code = 1; message = 2; repeated Any details = 3 }
    const status = new BinaryWriter()
      .tag(1, WireType.Varint)
      .int32(9)
      .tag(2, WireType.LengthDelimited)
      .string("precondition ✗")
      .tag(3, WireType.LengthDelimited)
      .bytes(toBinary(AnySchema, anyPack(BytesValueSchema, DETAIL)))
      .finish();
    s.once("wantTrailers", () =>
      s.sendTrailers({
        "grpc-status": "9",
        "grpc-message": encodeURIComponent("precondition ✗"),
        "grpc-status-details-bin": Buffer.from(status).toString("base64"),
        "x-tail": "t1",
      }),
    );
    s.end();
  },
  "grpc-missing-status": (s) => {
    s.respond(grpcOk);
    s.end(envelope(reply));
  },
  "grpc-no-message": (s) => {
    s.respond(grpcOk, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    s.end();
  },
  "grpc-http-status": (s) => {
    s.respond({ ":status": 503, "content-type": "text/plain" });
    s.end("unavailable");
  },
  "grpc-big": (s) => {
    s.respond(grpcOk, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    s.end(envelope(Buffer.alloc(300, 1)));
  },
  "grpc-extra-message": (s) => {
    s.respond(grpcOk, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    s.end(Buffer.concat([envelope(reply), envelope(reply)]));
  },
  "grpc-incomplete": (s) => {
    s.respond(grpcOk, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    s.end(envelope(reply).subarray(0, 6));
  },
  "grpc-unknown-encoding": (s) => {
    s.respond({ ...grpcOk, "grpc-encoding": "zstd" });
    s.end();
  },
  /** A body with no Content-Length that passes readMaxBytes slowly, 50 bytes at a time. */
  "connect-big-slow": (s) => {
    s.respond(connectOk);
    dribble(s, Buffer.alloc(400, 1), 50);
  },
  "grpc-wrong-type": (s) => {
    s.respond({ ":status": 200, "content-type": "text/html" });
    s.end("<html>");
  },
  /** The message sent a few bytes at a time: envelope headers split across chunks. */
  "grpc-split": (s) => {
    s.respond(grpcOk, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    dribble(s, envelope(reply), 2);
  },
  /** An envelope with gRPC-web's trailer flag: gRPC has no such flag, it is a message. */
  "grpc-trailer-flag": (s) => {
    s.respond(grpcOk, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    s.end(envelope(reply, 0x80));
  },
  "grpc-message-with-error-status": (s) => {
    s.respond({ ...grpcOk, "grpc-status": "3", "grpc-message": "bad" });
    s.end(envelope(reply));
  },
  "grpc-bad-message": (s) => {
    s.respond(grpcOk, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    s.end(envelope(Buffer.from([0xff, 0xff, 0xff])));
  },
  /** A message that cannot be parsed, then a second one: connect-es reports the first fault. */
  "grpc-bad-then-extra": (s) => {
    s.respond(grpcOk, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    s.end(Buffer.concat([envelope(Buffer.from([0xff, 0xff, 0xff])), envelope(reply)]));
  },
  // gRPC-web (named web-: "grpc-" is gRPC's): the trailers as the body's last envelope.
  "web-ok": (s) => {
    s.respond({ ...webOk, "x-head": "h1" });
    s.end(Buffer.concat([envelope(reply), webOkTrailer]));
  },
  "web-ok-plain-type": (s) => {
    s.respond({ ":status": 200, "content-type": "application/grpc-web" });
    s.end(Buffer.concat([envelope(reply), webOkTrailer]));
  },
  "web-gzip": (s) => {
    s.respond({ ...webOk, "grpc-encoding": "gzip" });
    s.end(Buffer.concat([envelope(zlib.gzipSync(reply), 1), webOkTrailer]));
  },
  "web-gzip-trailer": (s) => {
    s.respond({ ...webOk, "grpc-encoding": "gzip" });
    s.end(
      Buffer.concat([
        envelope(reply),
        envelope(zlib.gzipSync(Buffer.from("grpc-status: 0\r\nx-tail: t2\r\n")), 0x81),
      ]),
    );
  },
  "web-identity": (s) => {
    s.respond({ ...webOk, "grpc-encoding": "identity" });
    s.end(Buffer.concat([envelope(reply), webOkTrailer]));
  },
  "web-unknown-encoding": (s) => {
    s.respond({ ...webOk, "grpc-encoding": "zstd" });
    s.end(Buffer.concat([envelope(reply), webOkTrailer]));
  },
  "web-trailer-error": (s) => {
    s.respond({ ...webOk, "x-head": "h1" });
    s.end(webTrailer("grpc-status: 8\ngrpc-message: too%20busy\nx-tail: t1\n"));
  },
  "web-trailers-only": (s) => {
    s.respond(
      { ...webOk, "grpc-status": "5", "grpc-message": encodeURIComponent("no such key ✓") },
      { endStream: true },
    );
  },
  "web-status-0-header-and-message": (s) => {
    s.respond({ ...webOk, "grpc-status": "0" });
    s.end(envelope(reply));
  },
  "web-missing-trailer": (s) => {
    s.respond(webOk);
    s.end(envelope(reply));
  },
  "web-http-trailers": (s) => {
    s.respond(webOk, { waitForTrailers: true });
    s.once("wantTrailers", () => s.sendTrailers({ "grpc-status": "0" }));
    s.end(envelope(reply));
  },
  "web-missing-status": (s) => {
    s.respond(webOk);
    s.end(Buffer.concat([envelope(reply), webTrailer("x-tail: t1\n")]));
  },
  "web-no-message": (s) => {
    s.respond(webOk);
    s.end(webOkTrailer);
  },
  "web-extra-message": (s) => {
    s.respond(webOk);
    s.end(Buffer.concat([envelope(reply), envelope(reply), webOkTrailer]));
  },
  "web-extra-trailer": (s) => {
    s.respond(webOk);
    s.end(Buffer.concat([envelope(reply), webOkTrailer, webOkTrailer]));
  },
  "web-message-after-trailer": (s) => {
    s.respond(webOk);
    s.end(Buffer.concat([webOkTrailer, envelope(reply)]));
  },
  "web-incomplete": (s) => {
    s.respond(webOk);
    s.end(Buffer.concat([envelope(reply), webOkTrailer.subarray(0, 7)]));
  },
  "web-big": (s) => {
    s.respond(webOk);
    s.end(Buffer.concat([envelope(Buffer.alloc(300, 1)), webOkTrailer]));
  },
  "web-bad-message": (s) => {
    s.respond(webOk);
    s.end(Buffer.concat([envelope(Buffer.from([0xff, 0xff, 0xff])), webOkTrailer]));
  },
  "web-http-status": (s) => {
    s.respond({ ":status": 503, "content-type": "text/plain" });
    s.end("unavailable");
  },
  /** Message and trailer sent two bytes at a time: envelope heads split across chunks. */
  "web-split": (s) => {
    s.respond(webOk);
    dribble(s, Buffer.concat([envelope(reply), webOkTrailer]), 2);
  },
  /** Response headers, then nothing (the deadline must still fire). */
  "headers-hang": (s, _session, request) => {
    s.respond({ ":status": 200, "content-type": request["content-type"] });
  },
  /** Headers, half a body, then the connection is cut. */
  "break-mid-response": (s, session, request) => {
    s.respond({ ":status": 200, "content-type": request["content-type"] });
    s.write(Buffer.alloc(3));
    setTimeout(() => session.destroy(), 20);
  },
  /**
   * Headers promise a body (Content-Length, or for gRPC an envelope header
   * announcing 42 bytes), then the connection is cut before the rest: a
   * plugin killed mid-answer sends no GOAWAY or RST_STREAM.
   */
  "break-short-body": (s, session, request) => {
    const grpc = String(request["content-type"]).startsWith("application/grpc");
    s.respond({
      ":status": 200,
      "content-type": request["content-type"],
      ...(!grpc && { "content-length": "42" }),
    });
    if (grpc) s.write(Buffer.from([0, 0, 0, 0, 42]));
    setTimeout(() => rawSockets.get(session)?.destroy(), 20);
  },
  /**
   * Headers and part of a body, then the server resets the stream with
   * CANCEL (a plugin that gives up on a call mid-answer).
   */
  "break-reset-mid-body": (s, _session, request) => {
    const grpc = String(request["content-type"]).startsWith("application/grpc");
    s.respond({
      ":status": 200,
      "content-type": request["content-type"],
      ...(!grpc && { "content-length": "42" }),
    });
    s.write(grpc ? Buffer.from([0, 0, 0, 0, 42, 1, 2]) : Buffer.from([1, 2]));
    setTimeout(() => s.close(http2.constants.NGHTTP2_CANCEL), 20);
  },
  /** The connection is cut before any answer. */
  "break-before-response": (_s, session) => {
    setTimeout(() => session.destroy(), 20);
  },
  /** The server refuses the stream (RST_STREAM REFUSED_STREAM): nothing was processed. */
  "break-refused": (s) => {
    s.close(http2.constants.NGHTTP2_REFUSED_STREAM);
  },
  /** Never answers (deadline, cancellation). */
  hang: () => {},
};

export interface WireServer {
  readonly url: string;
  /** The headers of every request, in order. */
  readonly requests: http2.IncomingHttpHeaders[];
  /**
   * The reset code of the request stream with header `x-id: id` once it has
   * closed (undefined: closed cleanly).
   */
  resetOf(id: string): Promise<number | undefined>;
  close(): Promise<void>;
}

/** Each session's own socket (node hands out a proxy that cannot be destroyed). */
const rawSockets = new WeakMap<http2.Http2Session, Socket>();

/** Starts the scenario server on 127.0.0.1, port 0. */
export async function startWireServer(): Promise<WireServer> {
  const server = http2.createServer();
  // Before node's own listener, which makes the session and emits "session" at once.
  let lastSocket: Socket | undefined;
  server.prependListener("connection", (socket: Socket) => (lastSocket = socket));
  const sessions = new Set<http2.Http2Session>();
  server.on("session", (s) => {
    if (lastSocket !== undefined) rawSockets.set(s, lastSocket);
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });
  const requests: http2.IncomingHttpHeaders[] = [];
  const resets = new Map<string, number | undefined>();
  const waiters: (() => void)[] = [];
  server.on("stream", (stream, headers) => {
    requests.push(headers);
    stream.on("error", () => {});
    stream.once("close", () => {
      const code = stream.rstCode === http2.constants.NGHTTP2_NO_ERROR ? undefined : stream.rstCode;
      resets.set(String(headers["x-id"]), code);
      for (const w of waiters.splice(0)) w();
    });
    // Read the request body in full before answering, as a server would.
    stream.resume();
    const name = String(headers["x-scenario"]);
    const respond = scenarios[name];
    if (respond === undefined) throw new Error(`unknown scenario ${name}`);
    stream.once("end", () => {
      if (!stream.destroyed) respond(stream, stream.session as http2.ServerHttp2Session, headers);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    async resetOf(id) {
      while (!resets.has(id)) await new Promise<void>((resolve) => waiters.push(resolve));
      return resets.get(id);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Sessions left open by a test end with the server.
        for (const s of sessions) s.destroy();
      }),
  };
}
