import type * as http2 from "node:http2";
import type { Readable } from "node:stream";
import { ConnectError, Code, type ContextValues, createContextValues } from "@connectrpc/connect";
import { callDone } from "./call-support.js";
import type { MethodEntry } from "./framed/methods.js";
import type { CallContext, ContextFactory } from "./handler-context.js";
import { IncomingHeaders } from "./incoming-headers.js";
import { errorFromRstCode } from "./node-errors.js";
import type { HandOver, Peer } from "./unary-handler.js";

/**
 * The request side of a call on a lean HTTP/2 path (LeanUnary in
 * unary-handler.ts, LeanStream in stream-handler.ts), one way for
 * both: its HandlerContext, and its one-message body, collected up to a
 * limit and handed to connect-es' handler when over it, with the stream's
 * close (a reset, the client gone) aborting the context. (A client or
 * bidi stream's body is read by StreamCall.readStream in
 * stream-handler.ts, message by message, with the same close watch.)
 */

/** A lean call's context, made from its request's headers and the route's options. */
export function leanContext(
  contexts: ContextFactory,
  entry: MethodEntry,
  protocolName: string,
  url: string,
  timeoutMs: number | undefined,
  h: http2.IncomingHttpHeaders,
  contextValues: ((peer: Peer) => ContextValues) | undefined,
  peer: Peer,
): CallContext {
  return contexts.create({
    service: entry.service,
    method: entry.method,
    protocolName,
    url,
    timeoutMs,
    requestHeader: new IncomingHeaders(h),
    contextValues: contextValues?.(peer) ?? createContextValues(),
  });
}

/**
 * A lean call from its first request byte on. readBody() collects the
 * body; a body over its limit goes to connect-es' handler (which reads the
 * rest and words the error), a whole one to received(). A close of the
 * stream before the call is done (answered or handed over) aborts its
 * context with the reset's error, or Canceled.
 */
export abstract class LeanBodyCall {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  /** The response has been started or ended (or the call handed over): a close then is no cancel. */
  protected done = false;

  constructor(
    protected readonly stream: http2.ServerHttp2Stream,
    protected readonly body: Readable,
    readonly ctx: CallContext,
    private readonly handOver: HandOver,
  ) {}

  /** The whole body, `limit` bytes at most (readMaxBytes, plus 5 for an envelope's prefix). */
  protected abstract received(body: Buffer): void;

  /** The stream closed before the call was done: the context is aborted with `reason`. */
  protected cancelled(reason: ConnectError): void {
    this.ctx.abort(reason);
  }

  protected readBody(limit: number): void {
    const req = this.body;
    const onData = (chunk: Buffer): void => {
      this.chunks.push(chunk);
      this.size += chunk.length;
      if (this.size > limit) {
        req.pause();
        stop();
        this.give(false);
      }
    };
    const onEnd = (): void => {
      stop();
      // node:http2 ends a reset stream's readable side too: that body is not whole.
      if (this.stream.aborted || this.stream.destroyed) return;
      const { chunks } = this;
      this.received(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, this.size));
    };
    const stop = (): void => {
      req.off("data", onData);
      req.off("end", onEnd);
    };
    // on(), not once(): each fires once here (stop() removes both), and
    // once() costs a wrapper per listener and call.
    req.on("data", onData);
    req.on("end", onEnd);
    this.watchClose(stop);
  }

  /** A close of the stream before the call is done: `stop`, then cancelled() with the reset's error. */
  protected watchClose(stop: () => void): void {
    this.stream.on("close", () => {
      if (this.done) return;
      this.done = true;
      stop();
      this.cancelled(
        errorFromRstCode(this.stream.rstCode) ??
          new ConnectError("the client went away before the response", Code.Canceled),
      );
    });
  }

  /** Gives the call to connect-es' handler, replaying what was read (`ended`: all of it). */
  protected give(ended: boolean): void {
    this.done = true;
    this.ctx.abort(callDone());
    this.handOver(this.chunks, ended);
  }
}
