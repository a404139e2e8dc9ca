import type * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import {
  createEndStreamSerialization,
  endStreamFlag,
  requestHeaderWithCompression as connectRequestHeader,
  validateResponseWithCompression as validateConnect,
} from "@connectrpc/connect/protocol-connect";
import {
  requestHeaderWithCompression as grpcRequestHeader,
  validateResponseWithCompression as validateGrpc,
  validateTrailer,
} from "@connectrpc/connect/protocol-grpc";
import {
  requestHeaderWithCompression as grpcWebRequestHeader,
  trailerFlag,
  trailerParse,
  validateResponseWithCompression as validateGrpcWeb,
} from "@connectrpc/connect/protocol-grpc-web";
import { defaultCompressions } from "./compression.js";
import { webHeadersToNode } from "./node-headers.js";

/**
 * How one protocol (Connect, gRPC, gRPC-web) carries a stream (server,
 * client or bidi: connect-es' headers and checks differ only for unary
 * calls) on an HTTP/2 stream or an HTTP/1.1 request for the host's lean
 * paths (StreamCall: h2-stream-call.ts, h1-stream-call.ts), with
 * connect-es' own header builders, validators and end-of-stream parser, in
 * the order its transports apply them, so that headers, codes, messages
 * and metadata come out as connect-es' streaming transports make them. The
 * request offers gzip and Brotli, as connect-es' does: a plugin that
 * compresses large messages is read on the lean path (see StreamCall);
 * requests are sent uncompressed, as connect-es sends them.
 */
export interface StreamWire {
  /** The request's HTTP/2 headers: the caller's, the protocol's set over them, then `fixed`. */
  requestHeaders(
    path: string,
    header: Headers,
    timeoutMs: number | undefined,
  ): http2.OutgoingHttpHeaders;
  /**
   * Checks the response's status and headers (connect-es' order), throwing
   * its error; returns the compression the messages may use.
   */
  response(status: number, header: Headers): ResponseHead;
  /** The envelope that ends the stream (Connect's end-of-stream JSON, gRPC-web's trailers); gRPC: none. */
  readonly end: EndEnvelope | undefined;
  /** gRPC-web: a status in the headers (trailers-only) allows no envelope after it. */
  readonly statusEndsBody: boolean;
  /**
   * True when the answer's HTTP trailers are the call's trailer (gRPC);
   * Connect and gRPC-web ignore them.
   */
  readonly trailers: boolean;
  /**
   * The stream's body ended (after every message, and the end-of-stream
   * envelope if any): throws the error connect-es raises there.
   */
  finish(
    head: ResponseHead,
    ended: EndOfStream | undefined,
    header: Headers,
    trailer: Headers,
  ): void;
}

/** A stream's last envelope, marked by a flag. */
export interface EndEnvelope {
  readonly flag: number;
  /** What connect-es' errors call it: "EndStreamResponse", "trailer". */
  readonly name: string;
  /**
   * Reads it (decompressed): throws the error it carries, else copies its
   * metadata to `trailer`.
   */
  read(data: Uint8Array, header: Headers, trailer: Headers): EndOfStream;
}

/** What the response's headers said. */
export interface ResponseHead {
  readonly compression: Compression | null;
  /** gRPC: the status was in the headers (trailers-only). */
  readonly foundStatus: boolean;
}

/** Connect's end-of-stream message, parsed. */
export interface EndOfStream {
  readonly metadata: Headers;
  readonly error?: ConnectError;
}

const endStream = createEndStreamSerialization(undefined);

/**
 * Connect's end-of-stream envelope (already decompressed): its error, with
 * the response headers added to the error's metadata, is thrown; its
 * metadata goes to the trailer (as connect-es' Connect transport).
 */
function readEndOfStream(data: Uint8Array, header: Headers, trailer: Headers): EndOfStream {
  const end = endStream.parse(data);
  const error = end.error;
  if (error !== undefined) {
    header.forEach((value, key) => error.metadata.append(key, value));
    throw error;
  }
  end.metadata.forEach((value, key) => trailer.set(key, value));
  return end;
}

function withFixed(
  header: Headers,
  path: string,
  fixed: readonly (readonly [string, string])[],
): http2.OutgoingHttpHeaders {
  const out = webHeadersToNode(header, { ":method": "POST", ":path": path });
  for (const [k, v] of fixed) out[k] = v;
  return out;
}

/** Connect's streams (connectrpc.com/docs/protocol): enveloped messages, then the end-of-stream JSON. */
export function connectStreamWire(fixed: readonly (readonly [string, string])[]): StreamWire {
  return {
    requestHeaders: (path, header, timeoutMs) =>
      withFixed(
        connectRequestHeader(
          "server_streaming",
          true,
          timeoutMs,
          header,
          defaultCompressions,
          null,
          true,
        ),
        path,
        fixed,
      ),
    response(status, header) {
      const v = validateConnect("server_streaming", defaultCompressions, true, status, header);
      return { compression: v.compression ?? null, foundStatus: false };
    },
    end: { flag: endStreamFlag, name: "EndStreamResponse", read: readEndOfStream },
    statusEndsBody: false,
    trailers: false,
    finish(_head, ended) {
      if (ended === undefined) {
        throw new ConnectError("protocol error: missing EndStreamResponse", Code.InvalidArgument);
      }
    },
  };
}

/** gRPC's streams (PROTOCOL-HTTP2.md): enveloped messages, the status in the trailers. */
export function grpcStreamWire(fixed: readonly (readonly [string, string])[]): StreamWire {
  return {
    requestHeaders: (path, header, timeoutMs) =>
      withFixed(grpcRequestHeader(true, timeoutMs, header, defaultCompressions, null), path, fixed),
    response(status, header) {
      const v = validateGrpc(defaultCompressions, status, header);
      if (v.headerError) throw v.headerError;
      return { compression: v.compression ?? null, foundStatus: v.foundStatus };
    },
    end: undefined,
    statusEndsBody: false,
    trailers: true,
    finish(head, _ended, header, trailer) {
      if (!head.foundStatus) validateTrailer(trailer, header);
    },
  };
}

/**
 * gRPC-web's streams (PROTOCOL-WEB.md): enveloped messages, then the
 * status and trailers as the body's last envelope (flag 0x80), as
 * connect-es' gRPC-web transport reads them.
 */
export function grpcWebStreamWire(fixed: readonly (readonly [string, string])[]): StreamWire {
  return {
    requestHeaders: (path, header, timeoutMs) =>
      withFixed(
        grpcWebRequestHeader(true, timeoutMs, header, defaultCompressions, null, true),
        path,
        fixed,
      ),
    response(status, header) {
      const v = validateGrpcWeb(defaultCompressions, status, header);
      if (v.headerError) throw v.headerError;
      return { compression: v.compression ?? null, foundStatus: v.foundStatus };
    },
    end: { flag: trailerFlag, name: "trailer", read: readGrpcWebTrailer },
    statusEndsBody: true,
    trailers: false,
    finish(head, ended) {
      if (ended === undefined && !head.foundStatus) {
        throw new ConnectError("protocol error: missing trailer", Code.Internal);
      }
    },
  };
}

/**
 * gRPC-web's trailer envelope (already decompressed): its error status,
 * with the response headers in the error's metadata, is thrown; its fields
 * go to the trailer (as connect-es' gRPC-web transport).
 */
function readGrpcWebTrailer(data: Uint8Array, header: Headers, trailer: Headers): EndOfStream {
  const metadata = trailerParse(data);
  validateTrailer(metadata, header);
  metadata.forEach((value, key) => trailer.set(key, value));
  return { metadata };
}
