import type * as http from "node:http";
import type * as http2 from "node:http2";
import type { DescMessage } from "@bufbuild/protobuf";
import type { UnaryRequest } from "@connectrpc/connect";
import { cutBefore, type H1Call, type H1Pool } from "./h1-pool.js";
import { H1StreamCall } from "./h1-stream-call.js";
import { HttpTarget, pathOn } from "./http-target.js";
import type { StreamCall, StreamStart } from "./stream-call.js";
import { UnaryCall, type CallEnd } from "./unary-call.js";

/**
 * Where the CallRunner sends Connect and gRPC-web calls over HTTP/1.1 (an
 * H1Pool's keep-alive connections), with the wires, checks, errors and
 * readers of the HTTP/2 path (HttpTarget): a unary request in one write
 * with its Content-Length, the answer gathered by the wire's reader; a
 * stream's request chunked, its response split into envelopes as it
 * arrives (StreamCall). No message is sized by the plugin's announcement.
 * A failure destroys the request (its connection is not reused): the
 * plugin sees the connection close, which cancels its handler.
 */
export class H1Target extends HttpTarget<H1Pool> {
  protected pathOf(url: string): string {
    return pathOn(this.http.origin, url, "HTTP/1.1 client");
  }

  protected send<I extends DescMessage, O extends DescMessage>(
    req: UnaryRequest<I, O>,
    headers: http2.OutgoingHttpHeaders,
    body: Uint8Array,
    end: CallEnd<O>,
  ): UnaryCall<I, O> {
    const request = this.http.request(headers);
    const call = new H1UnaryCall(request, req, this.wire, this.limits, end);
    this.http.listen(request, call);
    request.end(body);
    return call;
  }

  protected open<O extends DescMessage>(
    headers: http2.OutgoingHttpHeaders,
    start: StreamStart<O>,
  ): StreamCall<O> {
    const request = this.http.request(headers);
    const c = new H1StreamCall<O>(request, start);
    this.http.listen(request, c);
    // The headers go at once, as on HTTP/2: the plugin starts the call
    // before the first message is yielded.
    request.flushHeaders();
    return c;
  }
}

/** One unary call on an HTTP/1.1 request. */
class H1UnaryCall<I extends DescMessage, O extends DescMessage>
  extends UnaryCall<I, O, http.ClientRequest>
  implements H1Call
{
  private response: http.IncomingMessage | undefined;

  protected override stop(): void {
    this.exchange.destroy();
  }

  answered(response: http.IncomingMessage): void {
    this.response = response;
    this.respond(response.statusCode ?? 0, response.headers);
  }

  bodyEnd(complete: boolean): void {
    if (this.reader === undefined) return;
    if (!complete || !this.ended()) this.fail(cutBefore(true));
  }

  closed(): void {
    this.unsubscribe();
    const response = this.response;
    if (!this.finished) this.fail(cutBefore(response !== undefined, response?.errored));
  }
}
