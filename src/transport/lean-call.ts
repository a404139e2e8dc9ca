import * as http from "node:http";
import type * as http2 from "node:http2";
import type { Readable } from "node:stream";
import { ConnectError, Code, type ContextValues, createContextValues } from "@connectrpc/connect";
import { callDone } from "./call-support.js";
import type { MethodEntry } from "./framed/methods.js";
import type { CallContext, ContextFactory } from "./handler-context.js";
import { IncomingHeaders } from "./incoming-headers.js";
import { onResponseClose } from "./h1-close.js";
import { ResponseHeaders } from "./lazy-response-headers.js";
import { errorFromNode, errorFromRstCode } from "./node-errors.js";
import type { HandOver, Peer } from "./unary-handler.js";

/**
 * The request side of a call on a lean path (LeanUnary in
 * unary-handler.ts, LeanStream in stream-handler.ts), one way for
 * both: its HandlerContext, and its one-message body, collected up to a
 * limit and handed to connect-es' handler when over it, with the line's
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
    responseHeaders: ResponseHeaders,
  });
}

/**
 * What a lean call travels on: its HTTP/2 stream, or, for a unary call
 * over HTTP/1.1, node:http's response (watched through onResponseClose:
 * a queued pipelined response sees no "close" when the connection goes).
 */
export type CallLine = http2.ServerHttp2Stream | http.ServerResponse;

/** Whether `line` is HTTP/1.1's. */
export function isHttp1(line: CallLine): line is http.ServerResponse {
  return line instanceof http.ServerResponse;
}

/**
 * A lean call from its first request byte on. readBody() collects the
 * body; a body over its limit goes to connect-es' handler (which reads the
 * rest and words the error), a whole one to received(). A close of the
 * line before the call is done (answered or handed over) aborts its
 * context with the reset's error (HTTP/1.1: the request's error, as the
 * adapter gives connect-es'), or Canceled.
 */
export abstract class LeanBodyCall<L extends CallLine = CallLine> {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  /** The response has been started or ended (or the call handed over): a close then is no cancel. */
  protected done = false;

  constructor(
    protected readonly line: L,
    protected readonly body: Readable,
    readonly ctx: CallContext,
    private readonly handOver: HandOver,
  ) {}

  /** The whole body, `limit` bytes at most (readMaxBytes, plus 5 for an envelope's prefix). */
  protected abstract received(body: Buffer): void;

  /** The line closed before the call was done: the context is aborted with `reason`. */
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
      if (cut(this.line)) return;
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

  /** A close of the line before the call is done: `stop`, then cancelled() with the reset's error. */
  protected watchClose(stop: () => void): void {
    const line: CallLine = this.line;
    const onClose = (): void => {
      if (this.done) return;
      this.done = true;
      stop();
      const error = isHttp1(line)
        ? line.req.errored === null
          ? undefined
          : errorFromNode(line.req.errored)
        : errorFromRstCode(line.rstCode);
      this.cancelled(
        error ?? new ConnectError("the client went away before the response", Code.Canceled),
      );
    };
    // HTTP/1.1: a pipelined request's response may be queued, its connection's close unseen.
    if (isHttp1(line)) onResponseClose(line, onClose);
    else line.on("close", onClose);
  }

  /** Gives the call to connect-es' handler, replaying what was read (`ended`: all of it). */
  protected give(ended: boolean): void {
    this.done = true;
    this.ctx.abort(callDone());
    this.handOver(this.chunks, ended);
  }
}

/** The request's body stopped short of its end (a reset HTTP/2 stream; an HTTP/1.1 request cut). */
function cut(line: CallLine): boolean {
  return isHttp1(line) ? !line.req.complete : line.aborted || line.destroyed;
}
