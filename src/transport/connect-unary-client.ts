import type * as http2 from "node:http2";
import type { DescMessage } from "@bufbuild/protobuf";
import { appendHeaders, type ConnectError } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import {
  errorFromJsonBytes,
  headerTimeout,
  requestHeaderWithCompression,
  validateResponseWithCompression,
} from "@connectrpc/connect/protocol-connect";
import { defaultCompressions } from "./compression.js";
import { NodeHeaders, TRAILER } from "./lazy-headers.js";
import { BodyBytes } from "./unary-body.js";
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
 * The headers connect-es' Connect transport sends on a unary call with our
 * options (binary, gzip and br accepted, nothing sent compressed), taken
 * from its own requestHeaderWithCompression: content-type
 * application/proto, connect-protocol-version 1, accept-encoding, and its
 * user-agent.
 */
const HEADERS = new RequestHeaders(
  headerPairs(
    requestHeaderWithCompression(
      "unary",
      true,
      undefined,
      undefined,
      defaultCompressions,
      null,
      true,
    ),
  ),
);
const TIMEOUT = headerTimeout.toLowerCase();

/**
 * The Connect protocol's unary call (connectrpc.com/docs/protocol): the
 * message as the body, the timeout in connect-timeout-ms, trailers as
 * `trailer-` headers, an error as a JSON body with a non-200 status.
 */
export const connectUnaryWire: UnaryClientWire = {
  requestHeaders(path, header, timeoutMs) {
    return HEADERS.of(
      path,
      header,
      TIMEOUT,
      timeoutMs === undefined ? undefined : String(timeoutMs),
      dropContentEncoding,
    );
  },
  enveloped: false,
  trailers: false,
  response(status, h, limits) {
    // The usual answer, recognised on node's headers: connect-es' checks
    // would find no error and no compression in it.
    if (
      status === 200 &&
      h["content-type"] === "application/proto" &&
      h["content-encoding"] === undefined
    ) {
      return new ConnectUnaryBody(h, limits, undefined, undefined);
    }
    const header = new NodeHeaders(h);
    const v = validateResponseWithCompression("unary", defaultCompressions, true, status, header);
    return new ConnectUnaryBody(
      h,
      limits,
      v.compression,
      v.isUnaryError ? v.unaryError : undefined,
    );
  },
};

/** Nothing is sent compressed; connect-es drops a caller's content-encoding. */
function dropContentEncoding(out: http2.OutgoingHttpHeaders): void {
  delete out["content-encoding"];
}

class ConnectUnaryBody implements UnaryBodyReader {
  private readonly body: BodyBytes;

  constructor(
    private readonly h: http2.IncomingHttpHeaders,
    private readonly limits: UnaryLimits,
    private readonly compression: Compression | undefined,
    /** The error the HTTP status means, for a JSON error body to refine. */
    private readonly unaryError: ConnectError | undefined,
  ) {
    this.body = new BodyBytes(limits.readMaxBytes, h["content-length"] ?? null);
  }

  push(chunk: Uint8Array): void {
    this.body.push(chunk);
  }

  cutShort(): boolean {
    return this.body.shortfall() !== undefined;
  }

  finish<O extends DescMessage>(
    output: O,
    _trailer: http2.IncomingHttpHeaders | undefined,
    bare: boolean,
  ): UnaryResult<O> | Promise<UnaryResult<O>> {
    const bytes = this.body.end();
    if (this.compression === undefined) return this.end(output, bytes, bare);
    return this.compression
      .decompress(bytes, this.limits.readMaxBytes)
      .then((plain) => this.end(output, plain, bare));
  }

  private end<O extends DescMessage>(output: O, bytes: Uint8Array, bare: boolean): UnaryResult<O> {
    // A success nobody reads the metadata of, with no `trailer-` field to
    // check (see below): no Headers made.
    if (bare && this.unaryError === undefined && this.h[TRAILER] === undefined) {
      return bareResult(parseMessage(output, bytes));
    }
    // connect-es' trailerDemux, made lazily: `trailer-` fields are the trailer.
    const header = new NodeHeaders(this.h, "header");
    const trailer = new NodeHeaders(this.h, "trailer");
    // A `trailer-` field with no name after the prefix cannot be a trailer:
    // trailerDemux throws, and so must this, here, failing the call, not
    // later in the caller's first read of the trailer.
    if (this.h[TRAILER] !== undefined) trailer.has("x");
    if (this.unaryError !== undefined) {
      throw errorFromJsonBytes(bytes, appendHeaders(header, trailer), this.unaryError);
    }
    return { header, message: parseMessage(output, bytes), trailer };
  }
}
