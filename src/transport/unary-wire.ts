import * as http from "node:http";
import * as http2 from "node:http2";
import type { ConnectError } from "@connectrpc/connect";
import {
  envelopeCompress,
  type Compression,
  type EnvelopedMessage,
  type UniversalHandlerOptions,
} from "@connectrpc/connect/protocol";
import { codeToHttpStatus, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { putEnvelopeHead } from "./codec/encode-body.js";
import { GRPC_WEB_TRAILER, grpcTrailer, grpcWebTrailer } from "./grpc-trailer.js";
import { appendHeader, refusedAsTrailers, webHeadersToNode } from "./node-headers.js";

/**
 * How the lean unary path (unary-handler.ts) answers in one protocol: the
 * same status, headers, body and trailers that connect-es' handler for that
 * protocol gives, written straight to the HTTP/2 stream.
 */
export interface UnaryWire {
  /** connect-es' protocol name, for HandlerContext.protocolName. */
  readonly protocolName: "connect" | "grpc" | "grpc-web";
  /** The header naming the encodings the client accepts for the response. */
  readonly acceptEncodingHeader: string;
  /**
   * Where the request message starts inside a complete body (it runs to
   * the body's end), or undefined if the body is not one plain message.
   * An offset, not a view: a Buffer's subarray() costs node a FastBuffer.
   */
  messageStart(body: Buffer): number | undefined;
  /**
   * The bytes the response message is serialized after (codec/encode-body.ts'
   * `prefix`), for ok() to fill in: gRPC's envelope head (5), so that an
   * uncompressed answer is written from the serializer's own buffer with
   * no copy; 0 for Connect and gRPC-web (whose body also carries the
   * trailer's envelope).
   */
  readonly messagePrefix: number;
  /**
   * Sends a response message (already checked against writeMaxBytes),
   * `body`: the message after messagePrefix bytes that ok() may overwrite.
   * Returns undefined once it is handed to node:http2, or, when it
   * compresses first, a promise of that; both throw (or reject) what
   * node:http2 throws, a header it refuses.
   */
  ok(out: Answer, body: Uint8Array): Promise<void> | undefined;
  /** Sends an error, with what the handler set in the response headers and trailers, as ok() sends. */
  error(out: Answer, error: ConnectError): Promise<void> | undefined;
}

/**
 * Where a lean call's response goes: node:http2's compatibility response,
 * or the stream itself (h2-streams.ts), written the same way; or, for a
 * unary call over HTTP/1.1, node:http's response.
 */
export type Sink = http2.Http2ServerResponse | http2.ServerHttp2Stream | http.ServerResponse;

/** One call's response: where it goes and what the handler left in its context. */
export interface Answer {
  readonly res: Sink;
  readonly responseHeader: Headers;
  readonly responseTrailer: Headers;
  /** The response encoding the client accepts (negotiated as connect-es does), or null. */
  readonly compression: Compression | null;
  readonly options: Pick<UniversalHandlerOptions, "compressMinBytes" | "jsonOptions">;
}

/** The Connect protocol, unary, binary: trailers travel as `trailer-` headers. */
export const connectUnary: UnaryWire = {
  protocolName: "connect",
  acceptEncodingHeader: "accept-encoding",
  messageStart: () => 0,
  messagePrefix: 0,
  ok: (out, message) => sendConnect(out, 200, "application/proto", message),
  error: (out, error) => {
    const header = out.responseHeader;
    header.set("content-type", "application/json");
    error.metadata.forEach((value, key) => header.set(key, value));
    return sendConnect(
      out,
      codeToHttpStatus(error.code),
      undefined,
      errorToJsonBytes(error, out.options.jsonOptions ?? {}),
    );
  },
};

/**
 * Sends a Connect response: at once (returns undefined), or after
 * compressing the body (returns the promise). No promise when there is
 * nothing to wait for: an async function's promise and the caller's
 * then() on it were about 300 bytes and a microtask a call
 * (docs/http2-server.md, session 16).
 */
function sendConnect(
  out: Answer,
  status: number,
  contentType: string | undefined,
  body: Uint8Array,
): Promise<void> | undefined {
  const headers: http2.OutgoingHttpHeaders = { ":status": status };
  // connect-es starts the response headers with the content type; a handler may replace it.
  const header = out.responseHeader;
  if (contentType !== undefined && !header.has("content-type")) {
    headers["content-type"] = contentType;
  }
  webHeadersToNode(header, headers);
  const compression = out.compression;
  if (compression !== null && body.byteLength >= out.options.compressMinBytes) {
    headers["content-encoding"] = compression.name;
    return compression.compress(body).then((compressed) => endConnect(out, headers, compressed));
  }
  endConnect(out, headers, body);
  return undefined;
}

/** The rest of sendConnect, once the body is final. */
function endConnect(out: Answer, headers: http2.OutgoingHttpHeaders, body: Uint8Array): void {
  // The headers are forEach's `this`: no closure per call.
  out.responseTrailer.forEach(appendTrailer, headers);
  headers["content-length"] = String(body.byteLength);
  // The body's DATA frame ends the stream: headers and body go in one
  // write, and the client reads once (docs/http2-client.md, session 13).
  // nghttp2 then closes the stream before the body's write completes, and
  // node 20's Writable builds an ERR_STREAM_DESTROYED nobody sees
  // (docs/http2-server.md, session 15). Ending with an empty DATA frame
  // after the body's write instead (the compatibility response's ending)
  // avoids that error, but node sends that frame a turn later: with many
  // calls in flight, every batch of answers then took two writes, loop
  // turns and TCP segments on the plugin and two reads on the client,
  // which finished no call before the second. Without it: half the
  // plugin's writes and segments per call, and ~350 B less allocated per
  // call, the error included; CPU per call did not settle either way at
  // the load measured (docs/http2-client.md, session 19).
  send(out.res, headers, body, undefined);
}

/**
 * Where the message of a body that is exactly one plain (uncompressed)
 * envelope starts (5); undefined for anything else, which is connect-es'
 * to judge: a gRPC or gRPC-web unary request, a server stream's request.
 */
export function oneEnvelope(body: Buffer): number | undefined {
  if (body.length < 5 || body[0] !== 0 || body.readUInt32BE(1) !== body.length - 5) {
    return undefined;
  }
  return 5;
}

/** gRPC (over HTTP/2, or chunked HTTP/1.1): a 5-byte envelope, the status in trailers. */
export const grpcUnary: UnaryWire = {
  protocolName: "grpc",
  acceptEncodingHeader: "grpc-accept-encoding",
  messageStart: oneEnvelope,
  messagePrefix: 5,
  ok: (out, body) => {
    const compression = out.compression;
    if (compression !== null && body.byteLength - 5 >= out.options.compressMinBytes) {
      return compression
        .compress(body.subarray(5))
        .then((compressed) => sendCompressedGrpcMessage(out, compressed));
    }
    // The envelope's head in the 5 bytes before the message: no second buffer, no copy.
    putEnvelopeHead(body, 0, 0, body.byteLength - 5);
    sendGrpcMessage(out, body);
    return undefined;
  },
  error: (out, error) => {
    sendGrpc(out, undefined, webHeadersToNode(grpcTrailer(out.responseTrailer, error)));
    return undefined;
  },
};

/**
 * Sends a compressed gRPC response message in its envelope (flag 1), status
 * 0 in the trailers. (An uncompressed one is serialized behind its envelope
 * head: no copy, see `ok`.)
 */
function sendCompressedGrpcMessage(out: Answer, compressed: Uint8Array): void {
  const body = Buffer.allocUnsafe(5 + compressed.byteLength);
  putEnvelope(body, 0, 1, compressed);
  sendGrpcMessage(out, body);
}

/** Sends a gRPC response body (the message's envelope), status 0 in the trailers. */
function sendGrpcMessage(out: Answer, body: Uint8Array): void {
  const trailers: http2.OutgoingHttpHeaders = { "grpc-status": "0" };
  sendGrpc(out, body, webHeadersToNode(out.responseTrailer, trailers));
}

/**
 * gRPC-web (binary): gRPC's envelope and headers, the status and trailers
 * as the body's last envelope (flag 0x80), which is compressed as the
 * message is (connect-es' gRPC-web handler compresses every envelope of
 * at least compressMinBytes), no HTTP trailers. The body goes in one
 * write (on the bare stream its DATA frame ends the stream, as a Connect
 * answer's does); connect-es' answer carries the same headers and body
 * bytes, one write per envelope.
 */
export const grpcWebUnary: UnaryWire = {
  protocolName: "grpc-web",
  acceptEncodingHeader: "grpc-accept-encoding",
  messageStart: oneEnvelope,
  messagePrefix: 0,
  ok: (out, message) => sendGrpcWeb(out, message, grpcWebTrailer(out.responseTrailer, undefined)),
  error: (out, error) => sendGrpcWeb(out, undefined, grpcWebTrailer(out.responseTrailer, error)),
};

/** Sends a gRPC-web answer: the message's envelope (none for an error), then the trailer's. */
function sendGrpcWeb(
  out: Answer,
  message: Uint8Array | undefined,
  trailer: Uint8Array,
): Promise<void> | undefined {
  const compression = out.compression;
  const min = out.options.compressMinBytes;
  if (
    compression !== null &&
    (trailer.byteLength >= min || (message !== undefined && message.byteLength >= min))
  ) {
    const squeeze = (data: Uint8Array, flags: number): Promise<EnvelopedMessage> =>
      envelopeCompress({ flags, data }, compression, min);
    return Promise.all([
      message === undefined ? undefined : squeeze(message, 0),
      squeeze(trailer, GRPC_WEB_TRAILER),
    ]).then(([m, t]) =>
      endGrpcWeb(out, m === undefined ? undefined : m.data, m?.flags ?? 0, t.data, t.flags),
    );
  }
  endGrpcWeb(out, message, 0, trailer, GRPC_WEB_TRAILER);
  return undefined;
}

/** The rest of sendGrpcWeb, once the envelopes' payloads are final. */
function endGrpcWeb(
  out: Answer,
  message: Uint8Array | undefined,
  messageFlags: number,
  trailer: Uint8Array,
  trailerFlags: number,
): void {
  const size = (message === undefined ? 0 : 5 + message.byteLength) + 5 + trailer.byteLength;
  const body = Buffer.allocUnsafe(size);
  let at = 0;
  if (message !== undefined) at = putEnvelope(body, at, messageFlags, message);
  putEnvelope(body, at, trailerFlags, trailer);
  const headers: http2.OutgoingHttpHeaders = { ":status": 200 };
  grpcHeaders(out, headers, "application/grpc-web+proto");
  send(out.res, headers, body, undefined);
}

/** Writes an envelope (flags, big-endian length, `data`) into `buf` at `at`; returns where it ends. */
function putEnvelope(buf: Buffer, at: number, flags: number, data: Uint8Array): number {
  putEnvelopeHead(buf, at, flags, data.byteLength);
  buf.set(data, at + 5);
  return at + 5 + data.byteLength;
}

/**
 * Headers, the body if any, then trailers in their own HEADERS frame: the
 * shape node:http2's compatibility API gives connect-es' responses (also
 * for errors, so a client sees the same frames whichever path answered).
 */
function sendGrpc(
  out: Answer,
  body: Uint8Array | undefined,
  trailers: http2.OutgoingHttpHeaders,
): void {
  const headers: http2.OutgoingHttpHeaders = { ":status": 200 };
  grpcHeaders(out, headers, "application/grpc+proto");
  send(out.res, headers, body, trailers);
}

/**
 * A gRPC or gRPC-web answer's headers, into `headers`: connect-es starts
 * them with the content type and the response's encoding, and the
 * handler's headers come over them.
 */
function grpcHeaders(out: Answer, headers: http2.OutgoingHttpHeaders, contentType: string): void {
  const header = out.responseHeader;
  if (!header.has("content-type")) headers["content-type"] = contentType;
  if (out.compression !== null) headers["grpc-encoding"] = out.compression.name;
  webHeadersToNode(header, headers);
}

/**
 * Writes through node:http2's compatibility API (or node:http's response),
 * as the adapter does for connect-es' responses, or straight to the stream
 * the way that API does (sendOnStream), so that all of them send the same
 * frames.
 */
function send(
  res: Sink,
  headers: http2.OutgoingHttpHeaders,
  body: Uint8Array | undefined,
  trailers: http2.OutgoingHttpHeaders | undefined,
): void {
  const http1 = res instanceof http.ServerResponse;
  if (!http1 && !(res instanceof http2.Http2ServerResponse)) {
    sendOnStream(res, headers, body, trailers);
    return;
  }
  if (http1 ? res.destroyed : res.stream.destroyed) return;
  const status = headers[":status"] as number;
  delete headers[":status"];
  res.writeHead(status, headers);
  if (trailers !== undefined) {
    // HTTP/1.1: as the adapter adds connect-es' trailers.
    if (http1) res.addTrailers(trailers);
    else if (!addTrailers(res, trailers)) return;
  }
  if (body === undefined) res.end();
  else res.end(body);
}

/**
 * Adds trailers to a compatibility response, or resets its stream (false)
 * when node:http2 refuses them (refusedAsTrailers): node's compatibility
 * response would throw ERR_HTTP2_INVALID_CONNECTION_HEADERS from its
 * trailer callback, where nothing catches it, and the process would end.
 * The stream path resets for the same trailers (sendTrailers below).
 */
export function addTrailers(
  res: http2.Http2ServerResponse,
  trailers: http2.OutgoingHttpHeaders,
): boolean {
  if (refusedAsTrailers(trailers)) {
    res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    return false;
  }
  res.addTrailers(trailers);
  return true;
}

/**
 * What Http2ServerResponse's writeHead(), addTrailers() and end(body) do
 * to the stream (node 20, lib/internal/http2/compat.js): a `connection`
 * header other than "trailers" is dropped (with node's warning), the
 * headers are sent, the body (if any) is written and the stream ended.
 * With trailers (gRPC) the headers ask for them (waitForTrailers) and they
 * go in their own HEADERS frame when node:http2 asks, as the compatibility
 * response sends them. Without (Connect) the last DATA frame ends the
 * stream: the compatibility response always waits for trailers and, having
 * none, ends the stream with an empty DATA frame of its own, which node
 * sends in a write of its own a turn of the event loop later, and the
 * client must wake once more to read it (docs/http2-client.md, session
 * 13). Throws what respond() throws: a header node:http2 refuses.
 */
function sendOnStream(
  stream: http2.ServerHttp2Stream,
  headers: http2.OutgoingHttpHeaders,
  body: Uint8Array | undefined,
  trailers: http2.OutgoingHttpHeaders | undefined,
): void {
  if (stream.destroyed) return;
  const connection = headers["connection"];
  if (connection !== undefined && connection !== "trailers") {
    delete headers["connection"];
    warnConnectionHeader();
  }
  const waitForTrailers = trailers !== undefined;
  if (waitForTrailers) {
    // on(), not once(): node:http2 asks once per stream, and once() costs a wrapper.
    stream.on("wantTrailers", () => sendTrailers(stream, trailers));
  }
  // writeHead() comes before end(), so the headers never end the stream.
  try {
    stream.respond(headers, { endStream: false, waitForTrailers });
  } catch (error) {
    refusedHeaders.add(stream);
    throw error;
  }
  // Written and ended in one turn: node:http2 sets END_STREAM on this last
  // DATA frame (without trailers) and sends the headers with it in one write.
  if (body !== undefined) stream.write(body);
  stream.end();
}

function sendTrailers(stream: http2.ServerHttp2Stream, trailers: http2.OutgoingHttpHeaders): void {
  // The compatibility response does not guard this; a stream closed
  // meanwhile has nobody to send trailers to.
  try {
    stream.sendTrailers(trailers);
  } catch {
    stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  }
}

/** Streams whose response headers node:http2 refused (see abandonStream). */
const refusedHeaders = new WeakSet<http2.ServerHttp2Stream>();

let connectionHeaderWarned = false;

/** node's compatibility response warns once per process about a dropped connection header. */
function warnConnectionHeader(): void {
  if (connectionHeaderWarned) return;
  connectionHeaderWarned = true;
  process.emitWarning(
    "The provided connection header is not valid, the value will be dropped from the header and will never be in use.",
    "UnsupportedWarning",
  );
}

/** endConnect's forEach callback: a trailer as a `trailer-` header of `this`, the response headers. */
function appendTrailer(this: http2.OutgoingHttpHeaders, value: string, key: string): void {
  appendHeader(this, `trailer-${key}`, value);
}

/**
 * Ends a call whose response could not be written: a bare 500 while nothing
 * was sent, else a reset. A header node:http2 refuses (a connection header a
 * handler set, say) stays in the response and is refused again by end(), so
 * a 500 that cannot be sent resets the stream too, instead of throwing out
 * of a promise callback (an unhandled rejection ends the process). The
 * reset says INTERNAL_ERROR, so a client sees Internal, not a clean end.
 */
export function abandonResponse(res: http.ServerResponse | http2.Http2ServerResponse): void {
  if (!res.headersSent) {
    try {
      res.statusCode = 500;
      res.end();
      return;
    } catch {
      // Reset below.
    }
  }
  if ("stream" in res) res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  else res.destroy();
}

/**
 * abandonResponse() for a response written straight to the stream: a bare
 * 500 while nothing was sent, else a reset. A call whose response headers
 * node:http2 refused is reset too: the compatibility response keeps such
 * headers, and its 500 is refused again.
 */
export function abandonStream(stream: http2.ServerHttp2Stream): void {
  if (!refusedHeaders.has(stream) && !stream.headersSent && !stream.destroyed) {
    try {
      // As res.statusCode = 500; res.end(): headers that end the stream.
      stream.respond({ ":status": 500 }, { endStream: true, waitForTrailers: true });
      return;
    } catch {
      // Reset below.
    }
  }
  stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
}
