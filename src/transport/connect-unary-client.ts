import type { DescMessage } from "@bufbuild/protobuf";
import { appendHeaders, type ConnectError } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import {
  errorFromJsonBytes,
  headerTimeout,
  requestHeaderWithCompression,
  trailerDemux,
  validateResponseWithCompression,
} from "@connectrpc/connect/protocol-connect";
import { defaultCompressions } from "./compression.js";
import { BodyBytes } from "./unary-body.js";
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
 * The headers connect-es' Connect transport sends on a unary call with our
 * options (binary, gzip and br accepted, nothing sent compressed), taken
 * from its own requestHeaderWithCompression: content-type
 * application/proto, connect-protocol-version 1, accept-encoding, and its
 * user-agent.
 */
const FIXED = headerPairs(
  requestHeaderWithCompression(
    "unary",
    true,
    undefined,
    undefined,
    defaultCompressions,
    null,
    true,
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
    const out = mergeRequestHeaders(path, header, FIXED);
    // Nothing is sent compressed; connect-es drops a caller's content-encoding.
    delete out["content-encoding"];
    if (timeoutMs !== undefined) out[TIMEOUT] = String(timeoutMs);
    return out;
  },
  requestBody: (message) => message,
  response(status, header, limits) {
    const v = validateResponseWithCompression("unary", defaultCompressions, true, status, header);
    return new ConnectUnaryBody(
      header,
      limits,
      v.compression,
      v.isUnaryError ? v.unaryError : undefined,
    );
  },
};

class ConnectUnaryBody implements UnaryBodyReader {
  private readonly body: BodyBytes;

  constructor(
    private readonly header: Headers,
    private readonly limits: UnaryLimits,
    private readonly compression: Compression | undefined,
    /** The error the HTTP status means, for a JSON error body to refine. */
    private readonly unaryError: ConnectError | undefined,
  ) {
    this.body = new BodyBytes(limits.readMaxBytes, header.get("content-length"));
  }

  push(chunk: Uint8Array): void {
    this.body.push(chunk);
  }

  cutShort(): boolean {
    return this.body.shortfall() !== undefined;
  }

  async finish<O extends DescMessage>(output: O): Promise<UnaryResult<O>> {
    let bytes = this.body.end();
    if (this.compression !== undefined) {
      bytes = await this.compression.decompress(bytes, this.limits.readMaxBytes);
    }
    const [header, trailer] = trailerDemux(this.header);
    if (this.unaryError !== undefined) {
      throw errorFromJsonBytes(bytes, appendHeaders(header, trailer), this.unaryError);
    }
    return { header, message: parseMessage(output, bytes), trailer };
  }
}
