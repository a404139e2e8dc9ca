import * as http2 from "node:http2";
import { addAbortSignal } from "node:stream";
import type { DescMessage } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import { failSlotOnError, releaseSlot, STREAM_SLOT, type H2Session } from "./h2-session.js";
import { closedBefore, errorFromRstCode } from "./node-errors.js";
import { StreamCall, type StreamStart } from "./stream-call.js";

/**
 * A stream call (StreamCall) on an HTTP/2 stream of the host's lean path:
 * the stream carries the request and the response.
 */
class H2StreamCall<O extends DescMessage> extends StreamCall<O, http2.ClientHttp2Stream> {
  /**
   * Resets the stream with CANCEL unless it is closed: the client has lost
   * interest. With the request still open, node's close(CANCEL) would send
   * END_STREAM before RST_STREAM, and the plugin could take the cut request
   * for a whole one; a destroy with node's AbortError (what
   * addAbortSignal does) sends RST_STREAM CANCEL alone.
   */
  protected reset(): void {
    const stream = this.out;
    if (stream.closed || stream.destroyed) return;
    if (stream.writableEnded) stream.close(http2.constants.NGHTTP2_CANCEL);
    else addAbortSignal(AbortSignal.abort(), stream);
  }

  protected cut(responded: boolean): ConnectError {
    return closedBefore(this.out, responded);
  }

  /**
   * node:http2 also ends a stream's readable side when the stream is reset
   * or its session breaks: that end is not the response's. But a server
   * may answer in full, then reset with NO_ERROR a stream whose request is
   * still open (RFC 9113 §8.1; Go's servers do when a handler returns
   * first), which node marks `aborted` too: an end that follows the
   * protocol's own end is the response's.
   */
  protected cutAtEnd(protocolEnded: boolean): boolean {
    const stream = this.out;
    return (stream.aborted && !protocolEnded) || errorFromRstCode(stream.rstCode) !== undefined;
  }
}

/**
 * Opens a stream on `session` with `headers` for a call (see StreamCall):
 * the headers go at once; the caller sends the request's messages
 * (StreamCall.send). Throws when no stream can be opened.
 */
export function openH2Stream<O extends DescMessage>(
  session: H2Session,
  headers: http2.OutgoingHttpHeaders,
  start: StreamStart<O>,
): StreamCall<O> {
  const stream = session.request(headers, onClose);
  const c = new H2StreamCall<O>(stream, start);
  (stream as Listened)[STREAM_SLOT] = c as unknown as H2StreamCall<DescMessage>;
  stream.on("error", failSlotOnError);
  stream.on("response", onResponse);
  if (start.wire.trailers) stream.on("trailers", onTrailers);
  stream.on("data", onData);
  stream.on("end", onEnd);
  return c;
}

type Listened = http2.ClientHttp2Stream & {
  [STREAM_SLOT]?: H2StreamCall<DescMessage>;
};

function callOf(stream: http2.ClientHttp2Stream): H2StreamCall<DescMessage> | undefined {
  return (stream as Listened)[STREAM_SLOT];
}

function onClose(this: http2.ClientHttp2Stream): void {
  releaseSlot<H2StreamCall<DescMessage>>(this)?.closed();
}

function onResponse(
  this: http2.ClientHttp2Stream,
  h: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader,
): void {
  callOf(this)?.respond(h[":status"] ?? 0, h);
}

function onTrailers(this: http2.ClientHttp2Stream, t: http2.IncomingHttpHeaders): void {
  callOf(this)?.trailers(t);
}

function onData(this: http2.ClientHttp2Stream, chunk: Uint8Array): void {
  callOf(this)?.data(chunk);
}

function onEnd(this: http2.ClientHttp2Stream): void {
  callOf(this)?.end();
}
