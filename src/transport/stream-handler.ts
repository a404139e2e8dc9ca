import * as http2 from "node:http2";
import type { Readable } from "node:stream";
import { fromBinary, type DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues } from "@connectrpc/connect";
import {
  compressionNegotiate,
  type Compression,
  type UniversalHandler,
} from "@connectrpc/connect/protocol";
import { endStreamToJson } from "@connectrpc/connect/protocol-connect";
import { callDone } from "./call-support.js";
import { decodeMessage } from "./codec/decode-message.js";
import { MeasuredMessage } from "./codec/measured-message.js";
import { handlerError } from "./framed/errors.js";
import type { MethodEntry } from "./framed/methods.js";
import { GRPC_WEB_TRAILER, grpcTrailer, grpcWebTrailer } from "./grpc-trailer.js";
import type { CallContext, ContextFactory } from "./handler-context.js";
import { LeanBodyCall, leanContext } from "./lean-call.js";
import {
  RequestMemo,
  connectTimeout,
  grpcTimeout,
  plain,
  single,
  type RequestTimeout,
} from "./lean-request.js";
import {
  invokeServerStream,
  invokeStream,
  type ServerStreamSpec,
  type StreamSpec,
} from "./invoke.js";
import { MappedStream } from "./mapped-stream.js";
import { webHeadersToNode } from "./node-headers.js";
import { RequestStream, type RequestFormat } from "./request-stream.js";
import { StreamBatch } from "./stream-batch.js";
import { stopIterator } from "./stop-iterator.js";
import type { HandOver, LeanOptions, Peer } from "./unary-handler.js";
import { oneEnvelope, type Sink } from "./unary-wire.js";

/** Connect's end-of-stream envelope flag. */
const END_STREAM = 2;

/** How one protocol frames a stream's response (and marks the end of its request). */
interface StreamWire {
  readonly protocolName: "connect" | "grpc" | "grpc-web";
  readonly contentType: string;
  /** The header naming the message encoding (the request's and the response's). */
  readonly encodingHeader: string;
  /** The header naming the encodings the client accepts. */
  readonly acceptHeader: string;
  /**
   * How the response ends: gRPC with HTTP/2 trailers (undefined); Connect
   * and gRPC-web with a last envelope carrying this flag (Connect's
   * end-of-stream JSON, gRPC-web's trailer). A request envelope with the
   * flag is skipped, as connect-es' handlers skip it.
   */
  readonly endFlag: number | undefined;
}

const connectStream: StreamWire = {
  protocolName: "connect",
  contentType: "application/connect+proto",
  encodingHeader: "connect-content-encoding",
  acceptHeader: "connect-accept-encoding",
  endFlag: END_STREAM,
};

const grpcStream: StreamWire = {
  protocolName: "grpc",
  contentType: "application/grpc+proto",
  encodingHeader: "grpc-encoding",
  acceptHeader: "grpc-accept-encoding",
  endFlag: undefined,
};

const grpcWebStream: StreamWire = {
  protocolName: "grpc-web",
  contentType: "application/grpc-web+proto",
  encodingHeader: "grpc-encoding",
  acceptHeader: "grpc-accept-encoding",
  endFlag: GRPC_WEB_TRAILER,
};

/** One for all streams: append() measures and writes each message at once. */
const measured = new MeasuredMessage();

/** The envelope flag of a compressed message. */
const COMPRESSED = 1;

/**
 * The lean server path for streaming calls of every kind in binary
 * protobuf over HTTP/2 (gRPC, Connect and gRPC-web), beside LeanUnary
 * (unary-handler.ts). connect-es' streaming handler passes each message
 * through eight async generators (38 promises and about 4 µs of CPU per
 * 16-byte message, docs/http2-streams.md); this pulls the implementation's
 * output through invokeServerStream or invokeStream (the same
 * interceptors, no generator layers), writes each message after its 5-byte
 * prefix into a shared batch (StreamBatch) and sends the same headers,
 * body bytes and trailers (or Connect's end-of-stream envelope, or
 * gRPC-web's trailer envelope) as connect-es' handler. A client or bidi stream's request messages come
 * from a RequestStream (request-stream.ts), parsed as the body arrives.
 *
 * It takes only requests it is sure to answer the same way, served from
 * the bare stream (claimStream): anything else (JSON, gRPC-web-text, a bad
 * timeout, a request encoding it does not accept, a request through node's
 * compatibility objects; for a server stream also a compressed request or
 * a malformed or oversized body) goes to connect-es' handler, for a server
 * stream after the fact with the bytes already read replayed.
 */
export class LeanStream {
  private readonly connect: boolean;
  private readonly grpc: boolean;
  private readonly grpcWeb: boolean;
  /** A client or bidi stream: the request is a stream of messages. */
  private readonly requestStream: boolean;
  readonly spec: ServerStreamSpec | StreamSpec;
  private readonly input: DescMessage;
  readonly output: DescMessage;
  private readonly memo: RequestMemo;

  constructor(
    private readonly entry: MethodEntry,
    handler: UniversalHandler,
    readonly options: LeanOptions,
    private readonly contexts: ContextFactory,
    private readonly contextValues: ((peer: Peer) => ContextValues) | undefined,
  ) {
    this.connect = handler.protocolNames.includes("connect");
    this.grpc = handler.protocolNames.includes("grpc");
    this.grpcWeb = handler.protocolNames.includes("grpc-web");
    this.requestStream = entry.method.methodKind !== "server_streaming";
    this.spec = entry.spec as ServerStreamSpec | StreamSpec;
    this.input = entry.method.input;
    this.output = entry.method.output;
    this.memo = new RequestMemo(options.acceptCompression);
  }

  /**
   * As LeanUnary.serve(): serves the request if this path takes it and
   * returns true; false leaves the stream untouched. Only a response
   * written straight to the stream (`sink` is `stream`) is taken.
   */
  serve(
    stream: http2.ServerHttp2Stream,
    h: http2.IncomingHttpHeaders,
    peer: Peer,
    body: Readable,
    sink: Sink,
    handOver: HandOver,
  ): boolean {
    if (sink !== stream || h[":method"] !== "POST") return false;
    const contentType = h["content-type"];
    let wire: StreamWire;
    let timeout: RequestTimeout;
    if (contentType === "application/connect+proto") {
      if (!this.connect) return false;
      if (this.options.requireConnectProtocolHeader && h["connect-protocol-version"] !== "1") {
        return false;
      }
      timeout = connectTimeout(h, this.options.maxTimeoutMs);
      wire = connectStream;
    } else if (contentType === "application/grpc" || contentType === "application/grpc+proto") {
      if (!this.grpc) return false;
      timeout = grpcTimeout(h, this.options.maxTimeoutMs);
      wire = grpcStream;
    } else if (
      contentType === "application/grpc-web" ||
      contentType === "application/grpc-web+proto"
    ) {
      if (!this.grpcWeb) return false;
      timeout = grpcTimeout(h, this.options.maxTimeoutMs);
      wire = grpcWebStream;
    } else return false;
    if (timeout.error !== undefined) return false;
    const accept = h[wire.acceptHeader];
    let requestCompression: Compression | null = null;
    let compression: Compression | null;
    const encoding = h[wire.encodingHeader];
    if (plain(encoding)) compression = this.memo.responseCompression(accept);
    else {
      // A compressed request (client and bidi streams only: a server
      // stream's body is handed over as it came), negotiated as connect-es
      // does; an encoding it refuses is connect-es' to word.
      if (!this.requestStream || typeof encoding !== "string") return false;
      const negotiated = compressionNegotiate(
        this.options.acceptCompression,
        encoding,
        single(accept),
        wire.acceptHeader,
      );
      if (negotiated.error !== undefined) return false;
      requestCompression = negotiated.request;
      compression = negotiated.response;
    }
    const url = this.memo.urlOf(stream, h);
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
    const call = new StreamCall(this, stream, body, wire, ctx, compression, handOver);
    if (this.requestStream) call.readStream(requestCompression);
    else call.read();
    return true;
  }

  /** A client or bidi stream's request format for `compression`; envelopes flagged `endFlag` are skipped. */
  format(compression: Compression | null, endFlag: number | undefined): RequestFormat {
    return {
      readMaxBytes: this.options.readMaxBytes,
      compression,
      endFlag,
      parse: (bytes) => this.parseOrThrow(bytes),
    };
  }

  /** The request message, or undefined if it does not parse (connect-es words that error). */
  parse(bytes: Uint8Array): unknown {
    try {
      return this.options.binaryOptions?.readUnknownFields === false
        ? fromBinary(this.input, bytes, this.options.binaryOptions)
        : decodeMessage(this.input, bytes);
    } catch {
      return undefined;
    }
  }

  /** The request message; throws connect-es' error for bytes that do not parse. */
  private parseOrThrow(bytes: Uint8Array): unknown {
    const message = this.parse(bytes);
    if (message !== undefined) return message;
    try {
      // connect-es' words come from fromBinary's error.
      return fromBinary(this.input, bytes, this.options.binaryOptions);
    } catch (e) {
      throw new ConnectError(
        `parse binary: ${e instanceof Error ? e.message : String(e)}`,
        Code.Internal,
      );
    }
  }
}

/** One lean server stream, from its request's first byte to its last response frame. */
class StreamCall extends LeanBodyCall<http2.ServerHttp2Stream> {
  /** The client went away (or reset the stream) before the response ended. */
  private closed = false;
  private respondedHeaders = false;
  private it: AsyncIterator<unknown> | undefined;
  private readonly batch: StreamBatch;
  /** A client or bidi stream's request messages. */
  private input: RequestStream | undefined;

  constructor(
    private readonly lean: LeanStream,
    stream: http2.ServerHttp2Stream,
    body: Readable,
    private readonly wire: StreamWire,
    ctx: CallContext,
    private readonly compression: Compression | null,
    handOver: HandOver,
  ) {
    super(stream, body, ctx, handOver);
    this.batch = new StreamBatch(stream);
  }

  /** A server stream: the one request message, then the response. */
  read(): void {
    // The one request envelope's 5-byte prefix comes on top of readMaxBytes.
    this.readBody(this.lean.options.readMaxBytes + 5);
  }

  /** A client or bidi stream: the implementation runs at once and reads the messages as they come. */
  readStream(compression: Compression | null): void {
    const body = this.body;
    const input = new RequestStream(body, this.lean.format(compression, this.wire.endFlag));
    const onData = (chunk: Buffer): void => input.chunk(chunk);
    const onEnd = (): void => {
      // node:http2 ends a reset stream's readable side too: that body is not whole.
      if (!this.line.aborted && !this.line.destroyed) input.end();
    };
    body.on("data", onData);
    body.on("end", onEnd);
    this.input = input;
    this.watchClose(() => {
      body.off("data", onData);
      body.off("end", onEnd);
    });
    // After the response, the implementation may still read the request
    // (as on connect-es' handler): a close then cuts it (a no-op if it ended).
    this.line.on("close", () => input.fail(clientGone()));
    const { lean, ctx } = this;
    void this.pump(invokeStream(lean.spec as StreamSpec, ctx, input, lean.options.interceptors));
  }

  protected override cancelled(reason: ConnectError): void {
    this.closed = true;
    this.input?.fail(clientGone());
    super.cancelled(reason);
    // The implementation's finally runs (after the message it is making, if any).
    this.stopOutput();
  }

  protected received(body: Buffer): void {
    const start = oneEnvelope(body);
    const message = start === undefined ? undefined : this.lean.parse(body.subarray(start));
    if (message === undefined) {
      this.give(true);
      return;
    }
    const { lean, ctx } = this;
    void this.pump(
      invokeServerStream(lean.spec as ServerStreamSpec, ctx, message, lean.options.interceptors),
    );
  }

  /**
   * Pulls the implementation's messages (`invoked`) into the batch, then
   * ends the response. As the framed server's runStream, it pulls from the
   * implementation's own iterator and applies the normalising and error
   * maps itself (a MappedStream's parts): no wrapper promise per message.
   * Any error (of next(), of a map, of encoding or sending) calls return()
   * without waiting for it (stopOutput: a generator that threw is already
   * done and ignores it; one whose message was refused runs its finally);
   * a close stops it in cancelled().
   */
  private async pump(invoked: Promise<AsyncIterable<unknown>>): Promise<void> {
    const batch = this.batch;
    try {
      const { source, mapValue, mapError } = MappedStream.parts(await invoked);
      const it = (this.it = source[Symbol.asyncIterator]());
      if (this.closed) {
        this.stopOutput();
        return;
      }
      for (;;) {
        let message: unknown;
        try {
          const r = await it.next();
          if (this.closed) return;
          if (r.done === true) break;
          message = mapValue(r.value);
        } catch (error) {
          throw mapError(error);
        }
        if (!this.respondedHeaders && !this.respondOrReset()) {
          this.stopOutput();
          return;
        }
        const compress = this.append(message);
        if (compress !== undefined) {
          await this.appendCompressed(0, compress);
          if (this.closed) return;
        }
        const drained = batch.drained();
        if (drained !== undefined) {
          await drained;
          if (this.closed) return;
        }
      }
    } catch (error) {
      if (this.closed) return;
      // A message that could not be encoded or sent: the implementation stops.
      this.stopOutput();
      this.end(handlerError(error));
      return;
    }
    if (this.closed) return;
    this.end(undefined);
  }

  /**
   * Writes `message` into the batch after its prefix, unless it is to be
   * compressed: then returns its bytes, nothing written. Throws connect-es'
   * errors for a message that cannot be serialized or is over writeMaxBytes.
   */
  private append(message: unknown): Uint8Array | undefined {
    const { output, options } = this.lean;
    const size = measured.measure(output, message, options.writeMaxBytes, options.binaryOptions);
    if (this.compression !== null && size >= options.compressMinBytes) return measured.take();
    const { buf, at } = this.batch.room(5 + size);
    buf[at] = 0;
    buf.writeUInt32BE(size, at + 1);
    measured.write(buf, at + 5);
    return undefined;
  }

  /** An envelope, compressed as connect-es does when it is at least compressMinBytes. */
  private async appendCompressed(flags: number, data: Uint8Array): Promise<void> {
    if (this.compression !== null && data.byteLength >= this.lean.options.compressMinBytes) {
      data = await this.compression.compress(data);
      flags |= COMPRESSED;
    }
    if (!this.closed) this.batch.envelope(flags, data);
  }

  /** Sends the response headers: on the first message, or at the end of an empty stream. */
  private respond(): void {
    this.respondedHeaders = true;
    const wire = this.wire;
    const own = this.ctx.responseHeader;
    const headers: http2.OutgoingHttpHeaders = { ":status": 200 };
    if (!own.has("content-type")) headers["content-type"] = wire.contentType;
    if (this.compression !== null && !own.has(wire.encodingHeader)) {
      headers[wire.encodingHeader] = this.compression.name;
    }
    webHeadersToNode(own, headers);
    // node's compatibility response drops a connection header (with a warning).
    const connection = headers["connection"];
    if (connection !== undefined && connection !== "trailers") delete headers["connection"];
    this.line.respond(headers, { endStream: false, waitForTrailers: wire.endFlag === undefined });
  }

  /**
   * respond(), or, for headers node:http2 refuses (a connection-specific
   * one the handler set), a reset with INTERNAL_ERROR, as the compatibility
   * response ends up sending (its 500 carries the same headers and is
   * refused again). False then: the call is over.
   */
  private respondOrReset(): boolean {
    try {
      this.respond();
      return true;
    } catch {
      this.finished();
      this.line.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      return false;
    }
  }

  /**
   * Ends the response: trailers (gRPC), the end-of-stream envelope
   * (Connect) or the trailer envelope (gRPC-web), with `error` if any.
   */
  private end(error: ConnectError | undefined): void {
    if (this.done) return;
    if (!this.respondedHeaders && !this.respondOrReset()) return;
    try {
      const flag = this.wire.endFlag;
      if (flag === undefined) this.endGrpc(error);
      else if (flag === END_STREAM) this.endEnvelope(flag, this.connectEnd(error));
      else this.endEnvelope(flag, grpcWebTrailer(this.ctx.responseTrailer, error));
    } catch {
      // An end-of-stream that could not be made: nothing better to send than a reset.
      this.finished();
      this.line.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    }
  }

  private endGrpc(error: ConnectError | undefined): void {
    const own = this.ctx.responseTrailer;
    const trailers =
      error === undefined
        ? webHeadersToNode(own, { "grpc-status": "0" })
        : webHeadersToNode(grpcTrailer(own, error));
    const stream = this.line;
    this.finished();
    stream.once("wantTrailers", () => {
      try {
        stream.sendTrailers(trailers);
      } catch {
        stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      }
    });
    this.batch.close();
  }

  /** Connect's end-of-stream JSON. */
  private connectEnd(error: ConnectError | undefined): Buffer {
    const json = endStreamToJson(this.ctx.responseTrailer, error, this.lean.options.jsonOptions);
    return Buffer.from(JSON.stringify(json));
  }

  /** The body's last envelope (`flag`), compressed as the messages are, and the stream's end. */
  private endEnvelope(flag: number, data: Uint8Array): void {
    this.finished();
    if (this.compression !== null && data.byteLength >= this.lean.options.compressMinBytes) {
      void this.compression.compress(data).then(
        (compressed) => {
          this.batch.envelope(flag | COMPRESSED, compressed);
          this.batch.close();
        },
        () => this.line.close(http2.constants.NGHTTP2_INTERNAL_ERROR),
      );
      return;
    }
    this.batch.envelope(flag, data);
    this.batch.close();
  }

  private finished(): void {
    this.done = true;
    this.ctx.abort(callDone());
    // An implementation may read its request after its response (as on
    // connect-es' handler); a request left unread is dropped, not held.
    this.input?.detach();
  }

  /** Tells the implementation's iterator to stop, without waiting; its finally runs. */
  private stopOutput(): void {
    const it = this.it;
    this.it = undefined;
    stopIterator(it);
  }
}

/** A client or bidi stream's request cut by a reset or a close before its end. */
function clientGone(): ConnectError {
  return new ConnectError("the client went away before the request ended", Code.Aborted);
}
