import type * as http2 from "node:http2";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { parseError } from "./codec/codec-errors.js";
import { decodeMessage } from "./codec/decode-message.js";
import { encodeBody, putEnvelopeHead } from "./codec/encode-body.js";
import { isEmptyHeaders, webHeadersToNode } from "./node-headers.js";
import { isSharedEmptyHeader, sharedEmptyHeader } from "./run-call.js";

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
 * How one protocol (Connect, gRPC, gRPC-web) puts a client's unary call on
 * an HTTP/2 stream or an HTTP/1.1 request (HttpTarget; its headers are
 * HTTP/2's, pseudo-headers dropped over HTTP/1.1) and reads its answer,
 * with connect-es' own header builders, validators and error parsers, so
 * that headers, codes, messages and metadata come out as connect-es'
 * transports make them.
 */
export interface UnaryClientWire {
  /**
   * The request's HTTP/2 headers: the caller's, then the protocol's set over
   * them. May be a shared frozen object (see RequestHeaders): not to be
   * changed (node:http2's request() copies what it is given).
   */
  requestHeaders(
    path: string,
    header: Headers,
    timeoutMs: number | undefined,
  ): http2.OutgoingHttpHeaders;
  /**
   * True when the body carries the message in gRPC's 5-byte envelope
   * (flags 0, big-endian length), false when the body is the message.
   */
  readonly enveloped: boolean;
  /** True when the answer's HTTP trailers are read (gRPC); Connect has none. */
  readonly trailers: boolean;
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
   * `bare`: only the message will be read, so a success may carry
   * placeholders (the shared empty header) instead of its header and
   * trailer; every check still runs.
   */
  finish<O extends DescMessage>(
    output: O,
    trailer: http2.IncomingHttpHeaders | undefined,
    bare: boolean,
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

/**
 * A protocol's request headers for calls that carry no header of the
 * caller's (after the interceptors), made once per path and frozen: per
 * call, only a timeout is added, to a copy. Merging the fixed headers into
 * a new object per call was about 240 bytes of garbage per call (heap
 * sampling, docs/http2-client.md, session 12). Up to 1,024 paths are kept:
 * an interceptor that rewrote every URL would otherwise grow it for ever;
 * beyond that, headers are built per call as before.
 */
export class RequestHeaders {
  private readonly byPath = new Map<string, http2.OutgoingHttpHeaders>();

  constructor(private readonly fixed: readonly (readonly [string, string])[]) {}

  /**
   * The headers of a request to `path`, for `header` (the request's), with
   * `key: value` added when `value` is given; `adjust` changes headers that
   * carry caller's fields (never the shared object).
   */
  of(
    path: string,
    header: Headers,
    key: string,
    value: string | undefined,
    adjust?: (out: http2.OutgoingHttpHeaders) => void,
  ): http2.OutgoingHttpHeaders {
    if (!isSharedEmptyHeader(header) && !isEmptyHeaders(header)) {
      const out = mergeRequestHeaders(path, header, this.fixed);
      adjust?.(out);
      if (value !== undefined) out[key] = value;
      return out;
    }
    let shared = this.byPath.get(path);
    if (shared === undefined) {
      shared = Object.freeze(mergeRequestHeaders(path, header, this.fixed));
      if (this.byPath.size < 1024) this.byPath.set(path, shared);
    }
    return value === undefined ? shared : { ...shared, [key]: value };
  }
}

/** A bare success's header and trailer (see UnaryBodyReader.finish): never read. */
export function bareResult<O extends DescMessage>(message: MessageShape<O>): UnaryResult<O> {
  const empty = sharedEmptyHeader();
  return { header: empty, message, trailer: empty };
}

/** Fixed headers of a connect-es request header set, lower-cased, as pairs. */
export function headerPairs(header: Headers): (readonly [string, string])[] {
  const pairs: (readonly [string, string])[] = [];
  header.forEach((value, key) => pairs.push([key, value]));
  return pairs;
}

/**
 * The request body: `message` serialized (with the 5-byte gRPC envelope
 * before it when `enveloped`), with codec/encode-body.ts' errors: "serialize
 * binary: ..." (Internal), and ResourceExhausted over writeMaxBytes (the
 * envelope not counted).
 */
export function requestBody<I extends DescMessage>(
  desc: I,
  message: MessageShape<I>,
  writeMaxBytes: number,
  enveloped: boolean,
): Uint8Array {
  const body = encodeBody(desc, message, writeMaxBytes, enveloped ? 5 : 0);
  if (enveloped) putEnvelopeHead(body, 0, 0, body.length - 5);
  return body;
}

/**
 * fromBinary (by decodeMessage: the flat decoder for a flat message, a
 * copied zero message for other plain ones, the same message as
 * fromBinary's), with connect-es' error for a message that cannot be parsed.
 */
export function parseMessage<O extends DescMessage>(desc: O, bytes: Uint8Array): MessageShape<O> {
  try {
    return decodeMessage(desc, bytes);
  } catch (e) {
    throw parseError(e);
  }
}
