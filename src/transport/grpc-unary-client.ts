import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { envelopeDecompress, type Compression } from "@connectrpc/connect/protocol";
import {
  headerGrpcStatus,
  headerTimeout,
  requestHeaderWithCompression,
  validateResponseWithCompression,
  validateTrailer,
} from "@connectrpc/connect/protocol-grpc";
import { defaultCompressions } from "./compression.js";
import { EnvelopeBody } from "./unary-body.js";
import {
  headerPairs,
  mergeRequestHeaders,
  parseMessage,
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
const FIXED = headerPairs(
  requestHeaderWithCompression(true, undefined, undefined, defaultCompressions, null),
);
const TIMEOUT = headerTimeout.toLowerCase();

/**
 * gRPC's unary call (PROTOCOL-HTTP2.md): the message in a 5-byte envelope,
 * the timeout in grpc-timeout, the status in the trailers, or in the
 * headers of a trailers-only answer.
 */
export const grpcUnaryWire: UnaryClientWire = {
  requestHeaders(path, header, timeoutMs) {
    const out = mergeRequestHeaders(path, header, FIXED);
    if (timeoutMs !== undefined) out[TIMEOUT] = `${timeoutMs}m`;
    return out;
  },
  requestBody(message) {
    const out = new Uint8Array(message.byteLength + 5);
    new DataView(out.buffer).setUint32(1, message.byteLength);
    out.set(message, 5);
    return out;
  },
  response(status, header, limits) {
    const v = validateResponseWithCompression(defaultCompressions, status, header);
    return new GrpcUnaryBody(header, limits, v.compression, v.headerError);
  },
};

class GrpcUnaryBody implements UnaryBodyReader {
  private readonly body: EnvelopeBody;

  constructor(
    private readonly header: Headers,
    private readonly limits: UnaryLimits,
    private readonly compression: Compression | undefined,
    /** The status of a trailers-only answer, when it is an error. */
    private readonly headerError: ConnectError | undefined,
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

  /** The checks and their order are connect-es' gRPC transport's. */
  async finish<O extends DescMessage>(output: O, trailer: Headers): Promise<UnaryResult<O>> {
    // The first message is decompressed and parsed before the body's own
    // checks (an extra or incomplete envelope), in connect-es' order.
    const envelope = this.body.message;
    let message: MessageShape<O> | undefined;
    if (envelope !== undefined) {
      const { data } = await envelopeDecompress(
        envelope,
        this.compression ?? null,
        this.limits.readMaxBytes,
      );
      message = parseMessage(output, data);
    }
    this.body.end();
    validateTrailer(trailer, this.header);
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
    return { header: this.header, message, trailer };
  }
}
