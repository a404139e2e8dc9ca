import * as http2 from "node:http2";
import type { DescMessage, DescMethodStreaming, DescMethodUnary } from "@bufbuild/protobuf";
import {
  ConnectError,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { createMethodUrl } from "@connectrpc/connect/protocol";
import { noop, type CallSignal } from "./call-support.js";
import { CallOutcome } from "./call-outcome.js";
import { failSlotOnError, releaseSlot, STREAM_SLOT, type H2Session } from "./h2-session.js";
import { openStream } from "./h2-stream-call.js";
import { abortedBefore, abortOf, listenAbort, type AbortListener } from "./lazy-abort.js";
import { closedBefore as cut, errorFromNode, errorFromRstCode } from "./node-errors.js";
import type { CallTarget, UnaryEnd } from "./run-call.js";
import type { StreamWire } from "./stream-wire.js";
import {
  requestBody,
  type UnaryBodyReader,
  type UnaryLimits,
  type UnaryClientWire,
  type UnaryResult,
} from "./unary-client-wire.js";

/**
 * Where the CallRunner sends Connect and gRPC calls over one H2Session.
 *
 * Unary calls take a lean path: one stream each, the message serialized
 * and sent in one write, the answer gathered into one buffer and checked
 * with connect-es' own validators (see UnaryClientWire), with no AbortController,
 * async-iterable pipeline or per-call closures of connect-es' protocol
 * layer, which profiling showed to be where HTTP/2 calls lost their time.
 *
 * Streams of every kind take a lean path too (h2-stream-call.ts: the
 * request's messages written as they come, the response's envelopes split
 * and decoded as DATA arrives, a queue the caller's iterator reads, the
 * call settled there), so that no stream runs connect-es' envelope reader,
 * which allocates the size a plugin announces before its bytes arrive.
 */
export class H2Target implements CallTarget {
  /** Streams settle in their queue (StreamCall). */
  readonly settlesStreams = true;
  /** unary() reads the request's header and hands on neither it nor its context values. */
  readonly privateRequests = true;

  constructor(
    private readonly session: H2Session,
    private readonly baseUrl: string,
    private readonly wire: UnaryClientWire,
    private readonly limits: UnaryLimits,
    private readonly streams: StreamWire,
  ) {}

  private readonly urls = new Map<DescMethodUnary | DescMethodStreaming, string>();

  /** The full URL, as connect-es' transports give it to interceptors. */
  path(method: DescMethodUnary | DescMethodStreaming): string {
    let url = this.urls.get(method);
    if (url === undefined) this.urls.set(method, (url = createMethodUrl(this.baseUrl, method)));
    return url;
  }

  unary<I extends DescMessage, O extends DescMessage>(
    req: UnaryRequest<I, O>,
    call: CallSignal,
  ): Promise<UnaryResponse<I, O>> {
    return new Promise((resolve, reject) =>
      this.start(req, call, new PromiseEnd(req, resolve, reject)),
    );
  }

  /** A message-only unary call, its outcome handed to `end` (see CallTarget.unaryTo). */
  unaryTo<I extends DescMessage, O extends DescMessage>(
    req: UnaryRequest<I, O>,
    call: CallSignal,
    end: UnaryEnd<O>,
  ): void {
    this.start(req, call, end);
  }

  /** Sends the call on a new stream; its outcome goes to `end`, once. */
  private start<I extends DescMessage, O extends DescMessage>(
    req: UnaryRequest<I, O>,
    call: CallSignal,
    end: CallEnd<O>,
  ): void {
    const abort = abortOf(req);
    const gone = abortedBefore(abort, call);
    if (gone !== undefined) {
      end.fail(errorFromNode(gone.reason));
      return;
    }
    let path: string;
    let body: Uint8Array;
    try {
      path = this.session.pathOf(req.url);
      body = requestBody(
        req.method.input,
        req.message,
        this.limits.writeMaxBytes,
        this.wire.enveloped,
      );
    } catch (e) {
      end.fail(ConnectError.from(e));
      return;
    }
    const headers = this.wire.requestHeaders(path, req.header, call.timeoutMs);
    let stream: http2.ClientHttp2Stream;
    try {
      // One "close" listener per stream for the session's count and ours.
      stream = this.session.request(headers, onClose);
    } catch (e) {
      end.fail(errorFromNode(e));
      return;
    }
    const unary = new UnaryCall(stream, req, this.wire, this.limits, end);
    // A call's own abort state (the runner's, or CallGuard's that follows
    // it) always ends aborted, when the call settles: the call listens
    // itself and may stay (it then finds the call finished), no hook or
    // unsubscribe closure per call.
    listenAbort(abort, call, unary);
    (stream as Listened)[CALL] = unary;
    stream.on("error", failSlotOnError);
    stream.on("response", onResponse);
    if (this.wire.trailers) stream.on("trailers", onTrailers);
    stream.on("data", onData);
    stream.on("end", onEnd);
    stream.end(body);
  }

  stream<I extends DescMessage, O extends DescMessage>(
    req: StreamRequest<I, O>,
    call: CallSignal,
  ): Promise<StreamResponse<I, O>> {
    return openStream(
      this.session,
      req as unknown as StreamRequest<DescMessage, O>,
      call,
      this.streams,
      this.limits,
    ) as Promise<StreamResponse<I, O>>;
  }
}

/** Where a stream keeps its UnaryCall, for the listeners below (one set for all calls). */
const CALL = STREAM_SLOT;
type Listened = http2.ClientHttp2Stream & { [CALL]?: UnaryCall<DescMessage, DescMessage> };

/** Where a UnaryCall hands its outcome: the call's promise (PromiseEnd) or the runner's UnaryEnd. */
interface CallEnd<O extends DescMessage> {
  ok(res: UnaryResult<O>): void;
  fail(error: ConnectError): void;
}

/** unary()'s promise, resolved with the response as connect-es' transports make it. */
class PromiseEnd<I extends DescMessage, O extends DescMessage> implements CallEnd<O> {
  constructor(
    private readonly req: UnaryRequest<I, O>,
    private readonly resolve: (res: UnaryResponse<I, O>) => void,
    readonly fail: (error: ConnectError) => void,
  ) {}

  ok(res: UnaryResult<O>): void {
    const req = this.req;
    this.resolve({
      stream: false,
      service: req.service,
      method: req.method,
      header: res.header,
      message: res.message,
      trailer: res.trailer,
    });
  }
}

/**
 * One unary call's state on its stream. The stream's listeners are module
 * functions that find it on the stream (`this` of a listener is the
 * emitter): no closures, no once-wrappers per call. Each event they listen
 * to comes at most once per stream. Any failure resets the stream with
 * CANCEL: the client has lost interest (gRPC's mapping of a cancelled or
 * expired call).
 */
class UnaryCall<I extends DescMessage, O extends DescMessage>
  extends CallOutcome
  implements AbortListener
{
  reader: UnaryBodyReader | undefined;
  trailer: http2.IncomingHttpHeaders | undefined;
  unsubscribe: () => void = noop;

  constructor(
    readonly stream: http2.ClientHttp2Stream,
    readonly req: UnaryRequest<I, O>,
    readonly wire: UnaryClientWire,
    readonly limits: UnaryLimits,
    private readonly end: CallEnd<O>,
  ) {
    super(noop);
  }

  /** The call's abort state fired (AbortListener): the caller's cancel, the deadline, or the end. */
  abortWith(reason: unknown): void {
    this.fail(reason);
  }

  protected override rejected(error: ConnectError): void {
    this.end.fail(error);
  }

  protected override stop(): void {
    const stream = this.stream;
    if (!stream.closed && !stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
  }

  /** The body and trailers are in: the response, or the error they carry. */
  complete(reader: UnaryBodyReader): void {
    this.finished = true;
    this.unsubscribe();
    let result: UnaryResult<O> | Promise<UnaryResult<O>>;
    try {
      // Only the message is read unless the response goes to unary()'s
      // promise (see CallTarget.unaryTo).
      result = reader.finish(
        this.req.method.output,
        this.trailer,
        !(this.end instanceof PromiseEnd),
      );
    } catch (e) {
      this.reject(e);
      return;
    }
    if (result instanceof Promise)
      result.then(
        (r) => this.deliver(r),
        (e: unknown) => this.reject(e),
      );
    else this.deliver(result);
  }

  private deliver(res: UnaryResult<O>): void {
    if (this.settle()) this.end.ok(res);
  }

  private reject(e: unknown): void {
    if (this.settle()) this.end.fail(ConnectError.from(e));
  }
}

/** The call of a stream; undefined once the stream closed (no event follows "close"). */
function callOf(stream: http2.ClientHttp2Stream): UnaryCall<DescMessage, DescMessage> | undefined {
  return (stream as Listened)[CALL];
}

function onClose(this: http2.ClientHttp2Stream): void {
  const call = releaseSlot<UnaryCall<DescMessage, DescMessage>>(this);
  if (call === undefined) return;
  call.unsubscribe();
  if (!call.finished) call.fail(cut(this, call.reader !== undefined));
}

function onResponse(
  this: http2.ClientHttp2Stream,
  h: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader,
): void {
  const call = callOf(this);
  if (call === undefined) return;
  try {
    call.reader = call.wire.response(h[":status"] ?? 0, h, call.limits);
  } catch (e) {
    call.fail(e);
  }
}

function onTrailers(this: http2.ClientHttp2Stream, t: http2.IncomingHttpHeaders): void {
  const call = callOf(this);
  if (call !== undefined) call.trailer = t;
}

function onData(this: http2.ClientHttp2Stream, chunk: Uint8Array): void {
  const call = callOf(this);
  if (call === undefined || call.reader === undefined || call.settled) return;
  try {
    call.reader.push(chunk);
  } catch (e) {
    call.fail(e);
  }
}

function onEnd(this: http2.ClientHttp2Stream): void {
  const call = callOf(this);
  if (call === undefined) return;
  const reader = call.reader;
  // node:http2 also ends a stream's readable side when the stream is
  // reset or its session breaks: that end is not the response's.
  if (reader === undefined || this.aborted || errorFromRstCode(this.rstCode) !== undefined) {
    call.fail(cut(this, reader !== undefined));
    return;
  }
  if (call.settled) return;
  // A body short of its promise is taken as a cut connection, which a
  // caller may retry, not as the server's protocol error (connect-es'
  // InvalidArgument): node can end the readable side with no reset code
  // before it marks the session gone, and CI saw exactly that, twice,
  // as "promised 41 bytes, received 0" for a Go plugin SIGKILLed
  // mid-answer. A server that really sends a short body is rarer.
  if (reader.cutShort()) {
    call.fail(cut(this, true));
    return;
  }
  call.complete(reader);
}
