import type * as http2 from "node:http2";
import { fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { webHeadersToNode } from "./node-headers.js";

/** Message size limits of a client, validated (connect-es' validateReadWriteMaxBytes). */
export interface UnaryLimits {
  readonly readMaxBytes: number;
  readonly writeMaxBytes: number;
}

/** A unary response as the wire gave it. */
export interface UnaryResult<O extends DescMessage> {
  readonly header: Headers;
  readonly message: MessageShape<O>;
  readonly trailer: Headers;
}

/**
 * How one protocol (Connect, gRPC) puts a client's unary call on an HTTP/2 stream
 * and reads its answer, with connect-es' own header builders, validators
 * and error parsers, so that headers, codes, messages and metadata come out
 * as connect-es' transports make them.
 */
export interface UnaryClientWire {
  /** The request's HTTP/2 headers: the caller's, then the protocol's set over them. */
  requestHeaders(
    path: string,
    header: Headers,
    timeoutMs: number | undefined,
  ): http2.OutgoingHttpHeaders;
  /** The request body carrying one serialized message. */
  requestBody(message: Uint8Array): Uint8Array;
  /**
   * Checks the response's status and headers, throwing the error connect-es
   * throws at that point; returns the reader of the body. The headers stay
   * node's object: the usual answer is recognised on it, and `Headers` are
   * made (for connect-es' checks, or for the caller) only when needed.
   */
  response(status: number, header: http2.IncomingHttpHeaders, limits: UnaryLimits): UnaryBodyReader;
}

/** Reads one unary response body, bounded by readMaxBytes. */
export interface UnaryBodyReader {
  /** Takes the next chunk; throws as soon as the body breaks a limit. */
  push(chunk: Uint8Array): void;
  /**
   * The response once body and trailers are in, or the error they carry
   * (thrown or rejected); synchronous unless the body must be decompressed.
   */
  finish<O extends DescMessage>(
    output: O,
    trailer: http2.IncomingHttpHeaders | undefined,
  ): UnaryResult<O> | Promise<UnaryResult<O>>;
  /** True while the body is short of the length its headers announced. */
  cutShort(): boolean;
}

/**
 * Request headers for the wire: the caller's (after the interceptors), the
 * protocol's fixed ones set over them (a caller's own user-agent stays), as
 * connect-es' requestHeader does.
 */
export function mergeRequestHeaders(
  path: string,
  header: Headers,
  fixed: readonly (readonly [string, string])[],
): http2.OutgoingHttpHeaders {
  const out = webHeadersToNode(header, { ":method": "POST", ":path": path });
  for (const [key, value] of fixed) {
    if (key !== "user-agent" || out[key] === undefined) out[key] = value;
  }
  return out;
}

/** Fixed headers of a connect-es request header set, lower-cased, as pairs. */
export function headerPairs(header: Headers): (readonly [string, string])[] {
  const pairs: (readonly [string, string])[] = [];
  header.forEach((value, key) => pairs.push([key, value]));
  return pairs;
}

/** toBinary, with connect-es' error for a message that cannot be serialized and its writeMaxBytes check. */
export function serializeMessage<I extends DescMessage>(
  desc: I,
  message: MessageShape<I>,
  writeMaxBytes: number,
): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = toBinary(desc, message);
  } catch (e) {
    throw new ConnectError(
      `serialize binary: ${e instanceof Error ? e.message : String(e)}`,
      Code.Internal,
    );
  }
  if (bytes.byteLength > writeMaxBytes) {
    throw new ConnectError(
      `message size ${bytes.byteLength} is larger than configured writeMaxBytes ${writeMaxBytes}`,
      Code.ResourceExhausted,
    );
  }
  return bytes;
}

/** fromBinary, with connect-es' error for a message that cannot be parsed. */
export function parseMessage<O extends DescMessage>(desc: O, bytes: Uint8Array): MessageShape<O> {
  try {
    return fromBinary(desc, bytes);
  } catch (e) {
    throw new ConnectError(
      `parse binary: ${e instanceof Error ? e.message : String(e)}`,
      Code.Internal,
    );
  }
}
