import type * as http2 from "node:http2";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { compressedFlag, envelopeDecompress, type Compression } from "@connectrpc/connect/protocol";
import {
  headerGrpcStatus,
  headerTimeout,
  requestHeaderWithCompression,
  validateResponseWithCompression,
  validateTrailer,
} from "@connectrpc/connect/protocol-grpc";
import { defaultCompressions } from "./compression.js";
import { NodeHeaders } from "./lazy-headers.js";
import { EnvelopeBody } from "./unary-body.js";
import {
  bareResult,
  headerPairs,
  parseMessage,
  RequestHeaders,
  type UnaryBodyReader,
  type UnaryLimits,
  type UnaryResult,
  type UnaryClientWire,
} from "./unary-client-wire.js";

/**
 * The headers connect-es' gRPC transport sends with our options, taken from
 * its own requestHeaderWithCompression: content-type
 * application/grpc+proto, te: trailers, grpc-accept-encoding, and its
 * user-agent.
 */
const HEADERS = new RequestHeaders(
  headerPairs(requestHeaderWithCompression(true, undefined, undefined, defaultCompressions, null)),
);
const TIMEOUT = headerTimeout.toLowerCase();
/** Compressions we accept, by name. */
const ACCEPTED = new Map<string, Compression>(defaultCompressions.map((c) => [c.name, c]));

/**
 * The usual gRPC or gRPC-web answer, recognised on node's headers:
 * connect-es' checks would find no status and no error in them, and an
 * encoding we accept (named exactly as its validateResponseWithCompression
 * matches it) or none (null). undefined: anything else (identity, an
 * unknown name, a status), for connect-es' checks.
 */
export function usualCompression(h: http2.IncomingHttpHeaders): Compression | null | undefined {
  if (h["grpc-status"] !== undefined || h["grpc-status-details-bin"] !== undefined) {
    return undefined;
  }
  const encoding = h["grpc-encoding"];
  if (encoding === undefined) return null;
  return typeof encoding === "string" ? ACCEPTED.get(encoding) : undefined;
}

/**
 * gRPC's unary call (PROTOCOL-HTTP2.md): the message in a 5-byte envelope,
 * the timeout in grpc-timeout, the status in the trailers, or in the
 * headers of a trailers-only answer.
 */
export const grpcUnaryWire: UnaryClientWire = {
  requestHeaders(path, header, timeoutMs) {
    return HEADERS.of(path, header, TIMEOUT, timeoutMs === undefined ? undefined : `${timeoutMs}m`);
  },
  enveloped: true,
  trailers: true,
  response(status, h, limits) {
    // The usual answer, recognised on node's headers: connect-es' checks
    // would find no error and no status in it, and an encoding we accept
    // or none. A connect-es server (every Node plugin) names one
    // (`grpc-encoding: gzip`) on every answer, compressed or not (each
    // message says so itself); before this was recognised, every gRPC call
    // to a Node plugin went through the checks below, Headers built for them.
    if (
      status === 200 &&
      (h["content-type"] === "application/grpc+proto" || h["content-type"] === "application/grpc")
    ) {
      const compression = usualCompression(h);
      if (compression !== undefined) {
        return new GrpcUnaryBody(h, limits, compression ?? undefined, undefined);
      }
    }
    const header = new NodeHeaders(h);
    const v = validateResponseWithCompression(defaultCompressions, status, header);
    return new GrpcUnaryBody(h, limits, v.compression, v.headerError, header);
  },
};

class GrpcUnaryBody implements UnaryBodyReader {
  private readonly body: EnvelopeBody;

  constructor(
    private readonly h: http2.IncomingHttpHeaders,
    private readonly limits: UnaryLimits,
    private readonly compression: Compression | undefined,
    /** The status of a trailers-only answer, when it is an error. */
    private readonly headerError: ConnectError | undefined,
    private header: Headers | undefined = undefined,
  ) {
    this.body = new EnvelopeBody(limits.readMaxBytes);
  }

  push(chunk: Uint8Array): void {
    this.body.push(chunk);
  }

  /**
   * Never: a gRPC body announces no length in its headers, and an
   * incomplete envelope stays connect-es' InvalidArgument (finish() says it).
   */
  cutShort(): boolean {
    return false;
  }

  /**
   * The checks and their order are connect-es' gRPC transport's. The first
   * message is decompressed and parsed before the body's own checks (an
   * extra or incomplete envelope), in connect-es' order.
   */
  finish<O extends DescMessage>(
    output: O,
    t: http2.IncomingHttpHeaders | undefined,
    bare: boolean,
  ): UnaryResult<O> | Promise<UnaryResult<O>> {
    const body = this.body;
    const data = body.first;
    if (data !== undefined && (body.flags & compressedFlag) === compressedFlag) {
      const envelope = { flags: body.flags, data };
      return envelopeDecompress(envelope, this.compression ?? null, this.limits.readMaxBytes).then(
        (plain) => this.end(output, t, plain.data, bare),
      );
    }
    return this.end(output, t, data, bare);
  }

  private end<O extends DescMessage>(
    output: O,
    t: http2.IncomingHttpHeaders | undefined,
    data: Uint8Array | undefined,
    bare: boolean,
  ): UnaryResult<O> {
    const message: MessageShape<O> | undefined =
      data === undefined ? undefined : parseMessage(output, data);
    this.body.end();
    // A success nobody reads the metadata of (status 0 in the trailers, no
    // details, a message, no error in the headers): every check below
    // would pass, and no Headers need be made.
    if (
      bare &&
      message !== undefined &&
      this.headerError === undefined &&
      t?.["grpc-status"] === "0" &&
      t["grpc-status-details-bin"] === undefined
    ) {
      return bareResult(message);
    }
    const header = (this.header ??= new NodeHeaders(this.h));
    const trailer = t === undefined ? new Headers() : new NodeHeaders(t);
    // A trailer with status 0 and no details: validateTrailer finds no
    // error in it, and a status.
    if (t?.["grpc-status"] !== "0" || t["grpc-status-details-bin"] !== undefined) {
      validateTrailer(trailer, header);
    }
    if (message === undefined) {
      if (this.headerError !== undefined) throw this.headerError;
      throw new ConnectError(
        "protocol error: missing output message for unary method",
        trailer.has(headerGrpcStatus) ? Code.Unimplemented : Code.Unknown,
      );
    }
    if (this.headerError !== undefined) {
      throw new ConnectError(
        "protocol error: received output message for unary method with error status",
        Code.Unknown,
      );
    }
    return { header, message, trailer };
  }
}
