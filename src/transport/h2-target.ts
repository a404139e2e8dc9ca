import * as http2 from "node:http2";
import type { DescMessage } from "@bufbuild/protobuf";
import type { UnaryRequest } from "@connectrpc/connect";
import { failSlotOnError, releaseSlot, STREAM_SLOT, type H2Session } from "./h2-session.js";
import { openH2Stream } from "./h2-stream-call.js";
import { HttpTarget } from "./http-target.js";
import { closedBefore as cut, errorFromRstCode } from "./node-errors.js";
import type { StreamCall, StreamStart } from "./stream-call.js";
import { UnaryCall, type CallEnd } from "./unary-call.js";

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
export class H2Target extends HttpTarget<H2Session> {
  protected pathOf(url: string): string {
    return this.http.pathOf(url);
  }

  /** Sends the call on a new stream. */
  protected send<I extends DescMessage, O extends DescMessage>(
    req: UnaryRequest<I, O>,
    headers: http2.OutgoingHttpHeaders,
    body: Uint8Array,
    end: CallEnd<O>,
  ): UnaryCall<I, O> {
    // One "close" listener per stream for the session's count and ours.
    const stream = this.http.request(headers, onClose);
    const unary = new H2UnaryCall(stream, req, this.wire, this.limits, end);
    (stream as Listened)[CALL] = unary;
    stream.on("error", failSlotOnError);
    stream.on("response", onResponse);
    if (this.wire.trailers) stream.on("trailers", onTrailers);
    stream.on("data", onData);
    stream.on("end", onEnd);
    stream.end(body);
    return unary;
  }

  protected open<O extends DescMessage>(
    headers: http2.OutgoingHttpHeaders,
    start: StreamStart<O>,
  ): StreamCall<O> {
    return openH2Stream(this.http, headers, start);
  }
}

/** Where a stream keeps its H2UnaryCall, for the listeners below (one set for all calls). */
const CALL = STREAM_SLOT;
type Listened = http2.ClientHttp2Stream & { [CALL]?: H2UnaryCall<DescMessage, DescMessage> };

/**
 * One unary call on its HTTP/2 stream. The stream's listeners are module
 * functions that find it on the stream (`this` of a listener is the
 * emitter): no closures, no once-wrappers per call. Each event they listen
 * to comes at most once per stream. Any failure resets the stream with
 * CANCEL: the client has lost interest (gRPC's mapping of a cancelled or
 * expired call).
 */
class H2UnaryCall<I extends DescMessage, O extends DescMessage> extends UnaryCall<
  I,
  O,
  http2.ClientHttp2Stream
> {
  protected override stop(): void {
    const stream = this.exchange;
    if (!stream.closed && !stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
  }
}

/** The call of a stream; undefined once the stream closed (no event follows "close"). */
function callOf(
  stream: http2.ClientHttp2Stream,
): H2UnaryCall<DescMessage, DescMessage> | undefined {
  return (stream as Listened)[CALL];
}

function onClose(this: http2.ClientHttp2Stream): void {
  const call = releaseSlot<H2UnaryCall<DescMessage, DescMessage>>(this);
  if (call === undefined) return;
  call.unsubscribe();
  if (!call.finished) call.fail(cut(this, call.reader !== undefined));
}

function onResponse(
  this: http2.ClientHttp2Stream,
  h: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader,
): void {
  callOf(this)?.respond(h[":status"] ?? 0, h);
}

function onTrailers(this: http2.ClientHttp2Stream, t: http2.IncomingHttpHeaders): void {
  const call = callOf(this);
  if (call !== undefined) call.trailer = t;
}

function onData(this: http2.ClientHttp2Stream, chunk: Uint8Array): void {
  callOf(this)?.data(chunk);
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
  if (!call.ended()) call.fail(cut(this, true));
}
