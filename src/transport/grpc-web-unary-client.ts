import type * as http2 from "node:http2";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { compressedFlag, envelopeDecompress, type Compression } from "@connectrpc/connect/protocol";
import {
  headerGrpcStatus,
  headerTimeout,
  requestHeaderWithCompression,
  trailerFlag,
  trailerParse,
  validateResponseWithCompression,
  validateTrailer,
} from "@connectrpc/connect/protocol-grpc-web";
import { defaultCompressions } from "./compression.js";
import { EnvelopeSplitter, type EnvelopeSink } from "./envelope-split.js";
import { usualCompression } from "./grpc-unary-client.js";
import { NodeHeaders } from "./lazy-headers.js";
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
import { incompleteEnvelope } from "./unary-body.js";

/**
 * The headers connect-es' gRPC-web transport sends with our options, taken
 * from its own requestHeaderWithCompression: content-type
 * application/grpc-web+proto, x-grpc-web: 1, grpc-accept-encoding, and its
 * user-agent in user-agent and x-user-agent.
 */
const HEADERS = new RequestHeaders(
  headerPairs(
    requestHeaderWithCompression(true, undefined, undefined, defaultCompressions, null, true),
  ),
);
const TIMEOUT = headerTimeout.toLowerCase();

/**
 * gRPC-web's unary call (PROTOCOL-WEB.md) on HTTP/2: the message in a
 * 5-byte envelope, the timeout in grpc-timeout, the status and trailers as
 * a last envelope in the body (flag 0x80), or in the headers of a
 * trailers-only answer. The body is split with EnvelopeSplitter, so a
 * message grows with its bytes, never sized by the plugin's announcement.
 */
export const grpcWebUnaryWire: UnaryClientWire = {
  requestHeaders(path, header, timeoutMs) {
    return HEADERS.of(
      path,
      header,
      TIMEOUT,
      timeoutMs === undefined ? undefined : `${timeoutMs}m`,
      (out) => userAgent(out, header),
    );
  },
  enveloped: true,
  trailers: false,
  response(status, h, limits) {
    // The usual answer (connect-es' gRPC-web checks look at no content-type).
    const compression = status === 200 ? usualCompression(h) : undefined;
    if (compression !== undefined) {
      return new GrpcWebUnaryBody(h, limits, compression ?? undefined, undefined);
    }
    const header = new NodeHeaders(h);
    const v = validateResponseWithCompression(defaultCompressions, status, header);
    return new GrpcWebUnaryBody(h, limits, v.compression, v.headerError, header);
  },
};

/**
 * connect-es' user agent rule for a caller's headers: the caller's
 * user-agent, else its x-user-agent, goes in both fields.
 */
function userAgent(out: http2.OutgoingHttpHeaders, header: Headers): void {
  const ua = header.get("user-agent") ?? header.get("x-user-agent");
  if (ua === null) return;
  out["user-agent"] = ua;
  out["x-user-agent"] = ua;
}

/** One envelope of the body, as it came. */
interface Envelope {
  readonly flags: number;
  readonly data: Uint8Array;
}

class GrpcWebUnaryBody implements UnaryBodyReader, EnvelopeSink {
  private readonly split: EnvelopeSplitter;
  /** The message and the trailer envelopes, in the order they came (at most one of each). */
  private readonly envelopes: Envelope[] = [];
  private messages = 0;
  private trailers = 0;
  /** A second message or trailer: connect-es' error, thrown once the ones before are read. */
  private extra: ConnectError | undefined;

  constructor(
    private readonly h: http2.IncomingHttpHeaders,
    private readonly limits: UnaryLimits,
    private readonly compression: Compression | undefined,
    /** The status of a trailers-only answer, when it is an error. */
    private readonly headerError: ConnectError | undefined,
    private header: Headers | undefined = undefined,
  ) {
    this.split = new EnvelopeSplitter(this, limits.readMaxBytes);
  }

  /** Splitting stops at an extra envelope (EnvelopeSink): connect-es reads no further. */
  get finished(): boolean {
    return this.extra !== undefined;
  }

  push(chunk: Uint8Array): void {
    if (this.extra === undefined) this.split.push(chunk);
  }

  envelope(flags: number, data: Uint8Array): void {
    if ((flags & trailerFlag) === trailerFlag) {
      if (++this.trailers > 1) {
        this.extra = new ConnectError("protocol error: received extra trailer", Code.Unimplemented);
        return;
      }
    } else if (++this.messages > 1) {
      this.extra = new ConnectError(
        "protocol error: received extra output message for unary method",
        Code.Unimplemented,
      );
      return;
    }
    this.envelopes.push({ flags, data });
  }

  /** Never: a gRPC-web body announces no length in its headers (see GrpcUnaryBody). */
  cutShort(): boolean {
    return false;
  }

  /**
   * The checks and their order are connect-es' gRPC-web transport's: each
   * envelope decompressed and parsed as it came, then the body's own
   * checks (an extra or incomplete envelope), then the trailer's.
   */
  finish<O extends DescMessage>(
    output: O,
    _t: http2.IncomingHttpHeaders | undefined,
    bare: boolean,
  ): UnaryResult<O> | Promise<UnaryResult<O>> {
    const envelopes = this.envelopes;
    if (!envelopes.some((e) => (e.flags & compressedFlag) === compressedFlag)) {
      return this.end(output, envelopes, bare);
    }
    const max = this.limits.readMaxBytes;
    const compression = this.compression ?? null;
    return envelopes
      .reduce<Promise<Envelope[]>>(
        (all, e) =>
          all.then(async (plain) => [...plain, await envelopeDecompress(e, compression, max)]),
        Promise.resolve([]),
      )
      .then((plain) => this.end(output, plain, bare));
  }

  private end<O extends DescMessage>(
    output: O,
    envelopes: readonly Envelope[],
    bare: boolean,
  ): UnaryResult<O> {
    let message: MessageShape<O> | undefined;
    let trailer: Headers | undefined;
    for (const e of envelopes) {
      if ((e.flags & trailerFlag) === trailerFlag) trailer = trailerParse(e.data);
      else message = parseMessage(output, e.data);
    }
    if (this.extra !== undefined) throw this.extra;
    if (this.split.partial) {
      throw incompleteEnvelope();
    }
    const header = (this.header ??= new NodeHeaders(this.h));
    if (trailer === undefined) {
      if (this.headerError !== undefined) throw this.headerError;
      throw new ConnectError(
        "protocol error: missing trailer",
        header.has(headerGrpcStatus) ? Code.Unimplemented : Code.Unknown,
      );
    }
    validateTrailer(trailer, header);
    if (message === undefined) {
      throw new ConnectError(
        "protocol error: missing output message for unary method",
        trailer.has(headerGrpcStatus) ? Code.Unimplemented : Code.Unknown,
      );
    }
    return bare ? bareResult(message) : { header, message, trailer };
  }
}
