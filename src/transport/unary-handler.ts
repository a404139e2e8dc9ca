import type * as http from "node:http";
import type * as http2 from "node:http2";
import type { Readable } from "node:stream";
import { fromBinary, type DescMessage } from "@bufbuild/protobuf";
import type { ConnectError, ContextValues } from "@connectrpc/connect";
import type { UniversalHandler, UniversalHandlerOptions } from "@connectrpc/connect/protocol";
import { parseTimeout as parseConnectTimeout } from "@connectrpc/connect/protocol-connect";
import { parseTimeout as parseGrpcTimeout } from "@connectrpc/connect/protocol-grpc";
import { callDone } from "./call-support.js";
import { decodeMessage } from "./codec/decode-message.js";
import { encodeBody } from "./codec/encode-body.js";
import { reachableTimeout } from "./deadline.js";
import { handlerError } from "./framed/errors.js";
import type { MethodEntry } from "./framed/methods.js";
import type { ContextFactory, CallContext } from "./handler-context.js";
import { invokeUnary, type UnarySpec } from "./invoke.js";
import { LeanBodyCall, isHttp1, leanContext, type CallLine } from "./lean-call.js";
import {
  RequestMemo,
  connectTimeout,
  grpcTimeout,
  plain,
  type RequestTimeout,
} from "./lean-request.js";
import {
  abandonResponse,
  abandonStream,
  connectUnary,
  grpcUnary,
  grpcWebUnary,
  type Answer,
  type Sink,
  type UnaryWire,
} from "./unary-wire.js";

/** The options of a router, as connect-es fills them in (validateUniversalHandlerOptions). */
export type LeanOptions = UniversalHandlerOptions;

/**
 * Gives a request to connect-es' handler after the lean path has read
 * `replay` of its body (`ended`: all of it). connect-es then answers
 * exactly as if it had read the body itself.
 */
export type HandOver = (replay: readonly Buffer[], ended: boolean) => void;

/** What contextValues is given: the request, or (for a bare stream) an object with its socket. */
export interface Peer {
  readonly socket: { readonly remoteAddress?: string | undefined } | null | undefined;
}

/**
 * The lean server path for unary calls in binary protobuf over HTTP/2 (and
 * HTTP/1.1: browsers over cleartext speak it), in the Connect protocol
 * (POST, application/proto), in gRPC (application/grpc,
 * application/grpc+proto) and in gRPC-web (application/grpc-web,
 * application/grpc-web+proto). connect-es' universal
 * handlers cost an HTTP/2 call most of its time (two AbortControllers and
 * a DOMException per call, async generator pipelines); this reads the
 * body into one buffer, runs the implementation under the same
 * interceptors with the framed server's CallContext (lazy signal, plain
 * deadline timer), and writes the response as connect-es would (see
 * unary-wire.ts).
 *
 * It takes only what it is sure to answer the same way: anything else
 * (JSON, GET, gRPC-web-text, compressed or malformed requests, bodies over
 * readMaxBytes, a bad timeout header, a parse failure) goes to connect-es'
 * handler, after the fact with the bytes already read replayed.
 */
export class LeanUnary {
  private readonly connect: boolean;
  private readonly grpc: boolean;
  private readonly grpcWeb: boolean;
  private readonly spec: UnarySpec;
  private readonly input: DescMessage;
  private readonly output: DescMessage;
  private readonly memo: RequestMemo;

  constructor(
    private readonly entry: MethodEntry,
    handler: UniversalHandler,
    private readonly options: LeanOptions,
    private readonly contexts: ContextFactory,
    private readonly contextValues: ((peer: Peer) => ContextValues) | undefined,
  ) {
    this.connect = handler.protocolNames.includes("connect");
    this.grpc = handler.protocolNames.includes("grpc");
    this.grpcWeb = handler.protocolNames.includes("grpc-web");
    this.spec = entry.spec as UnarySpec;
    this.input = entry.method.input;
    this.output = entry.method.output;
    this.memo = new RequestMemo(options.acceptCompression);
  }

  /**
   * Serves a request on `line` (its HTTP/2 stream, or node:http's response
   * for HTTP/1.1) if it is a call this path takes, returning true; false
   * leaves it untouched for connect-es' handler. The body is read from
   * `body` and the response written to `sink`: node:http2's compatibility
   * request and response, the stream itself for both, or node:http's
   * request and response. `peer` is what contextValues is given.
   * `handOver` is called if the call turns out to be connect-es' after its
   * body was read. Throws only before it has touched the line (a
   * :authority that makes no URL).
   */
  serve(
    line: CallLine,
    h: http2.IncomingHttpHeaders,
    peer: Peer,
    body: Readable,
    sink: Sink,
    handOver: HandOver,
  ): boolean {
    if (isHttp1(line)) {
      // connect-es' adapter refuses a request without a Host (universalRequest).
      if (line.req.method !== "POST" || h.host === undefined) return false;
    } else if (h[":method"] !== "POST") return false;
    const contentType = h["content-type"];
    let wire: UnaryWire;
    let timeout: RequestTimeout;
    if (contentType === "application/proto") {
      if (!this.connect || !plain(h["content-encoding"])) return false;
      const version = h["connect-protocol-version"];
      if (this.options.requireConnectProtocolHeader && version !== "1") return false;
      const length = h["content-length"];
      if (length !== undefined && Number(length) > this.options.readMaxBytes) return false;
      timeout = connectTimeout(h, this.options.maxTimeoutMs);
      wire = connectUnary;
    } else if (contentType === "application/grpc" || contentType === "application/grpc+proto") {
      if (!this.grpc || !plain(h["grpc-encoding"])) return false;
      timeout = grpcTimeout(h, this.options.maxTimeoutMs);
      wire = grpcUnary;
    } else if (
      contentType === "application/grpc-web" ||
      contentType === "application/grpc-web+proto"
    ) {
      if (!this.grpcWeb || !plain(h["grpc-encoding"])) return false;
      timeout = grpcTimeout(h, this.options.maxTimeoutMs);
      wire = grpcWebUnary;
    } else return false;
    if (timeout.error !== undefined) return false;
    const url = this.memo.urlOf(line, h);
    const compression = this.memo.responseCompression(h[wire.acceptEncodingHeader]);
    const ctx = leanContext(
      this.contexts,
      this.entry,
      wire.protocolName,
      url,
      timeout.timeoutMs,
      h,
      this.contextValues,
      peer,
    );
    new LeanCall(this, line, body, sink, wire, ctx, compression, handOver).read();
    return true;
  }

  /** Runs the implementation on `message` and answers. */
  run(call: LeanCall, message: unknown): void {
    const { ctx } = call;
    invokeUnary(this.spec, ctx, message, this.options.interceptors).then(
      (output) => {
        let bytes: Uint8Array;
        try {
          bytes = serialize(this.output, output, this.options, call.wire.messagePrefix);
        } catch (error) {
          call.fail(error);
          return;
        }
        call.answer(bytes);
      },
      (error: unknown) => call.fail(error),
    );
  }

  /**
   * The request message in `body` from `start` on, or undefined if it does
   * not parse (connect-es words that error).
   */
  parse(body: Buffer, start: number): unknown {
    try {
      // decodeMessage gives fromBinary's message, but keeps unknown fields.
      return this.options.binaryOptions?.readUnknownFields === false
        ? fromBinary(this.input, body.subarray(start), this.options.binaryOptions)
        : decodeMessage(this.input, body, start);
    } catch {
      return undefined;
    }
  }

  get readMaxBytes(): number {
    return this.options.readMaxBytes;
  }

  get answerOptions(): Answer["options"] {
    return this.options;
  }
}

/**
 * The response message's bytes after `prefix` bytes (UnaryWire.messagePrefix),
 * with connect-es' errors (codec/encode-body.ts).
 */
function serialize(
  desc: DescMessage,
  message: unknown,
  options: LeanOptions,
  prefix: number,
): Uint8Array {
  return encodeBody(desc, message, options.writeMaxBytes, prefix, options.binaryOptions);
}

/**
 * One call on the lean path, from its first body byte to the end of its
 * response. It is its own Answer (what the wire reads to respond): no
 * object per response for that.
 */
class LeanCall extends LeanBodyCall implements Answer {
  constructor(
    private readonly lean: LeanUnary,
    line: CallLine,
    body: Readable,
    readonly res: Sink,
    readonly wire: UnaryWire,
    ctx: CallContext,
    readonly compression: Answer["compression"],
    handOver: HandOver,
  ) {
    super(line, body, ctx, handOver);
  }

  read(): void {
    // gRPC and gRPC-web add a 5-byte envelope header to the message.
    this.readBody(this.lean.readMaxBytes + (this.wire === connectUnary ? 0 : 5));
  }

  protected received(body: Buffer): void {
    const start = this.wire.messageStart(body);
    const message = start === undefined ? undefined : this.lean.parse(body, start);
    if (message === undefined) {
      this.give(true);
      return;
    }
    this.lean.run(this, message);
  }

  get responseHeader(): Headers {
    return this.ctx.responseHeader;
  }

  get responseTrailer(): Headers {
    return this.ctx.responseTrailer;
  }

  get options(): Answer["options"] {
    return this.lean.answerOptions;
  }

  /**
   * Sends the response: the message's bytes (after the wire's
   * messagePrefix), or the error. The call is over once it is handed to
   * node:http2 (at once, or when the wire's promise, if any, resolves).
   */
  answer(outcome: Uint8Array | ConnectError): void {
    // Done already: the client went away (its reset aborted the context), nobody to answer.
    if (this.done) return;
    this.done = true;
    let sent: Promise<void> | undefined;
    try {
      sent =
        outcome instanceof Uint8Array
          ? this.wire.ok(this, outcome)
          : this.wire.error(this, outcome);
    } catch {
      // node:http2 may refuse a header right here.
      this.failed();
      return;
    }
    if (sent === undefined) this.ctx.abort(callDone());
    else {
      sent.then(
        () => this.ctx.abort(callDone()),
        () => this.failed(),
      );
    }
  }

  /** The response could not be written. */
  private failed(): void {
    this.ctx.abort(callDone());
    // As the adapter does for connect-es' responses.
    const { res, line } = this;
    if (res === line && !isHttp1(line)) abandonStream(line);
    else abandonResponse(res as http.ServerResponse | http2.Http2ServerResponse);
  }

  fail(error: unknown): void {
    if (this.done) return;
    // As connect-es: a ConnectError as it is, anything else "internal error".
    this.answer(handlerError(error));
  }
}

/**
 * Removes from a request's headers a Connect or gRPC timeout beyond
 * setTimeout's reach (see reachableTimeout), before connect-es' handler
 * parses it: its deadline timer would overflow and fire after 1 ms. Such a
 * call then has no deadline, as on the lean path. A timeout over the
 * server's `maxTimeoutMs`, or malformed, is left for connect-es to refuse.
 */
export function dropUnreachableTimeout(header: Headers, maxTimeoutMs: number): void {
  for (const [name, parse] of TIMEOUT_HEADERS) {
    const value = header.get(name);
    if (value === null) continue;
    const { timeoutMs, error } = parse(value, maxTimeoutMs);
    if (
      error === undefined &&
      timeoutMs !== undefined &&
      reachableTimeout(timeoutMs) === undefined
    ) {
      header.delete(name);
    }
  }
}

const TIMEOUT_HEADERS = [
  ["connect-timeout-ms", parseConnectTimeout],
  ["grpc-timeout", parseGrpcTimeout],
] as const;
