import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues, type HandlerContext } from "@connectrpc/connect";
import { reachableTimeout } from "./deadline.js";
import { CALL_ABORT, CallAbort } from "./lazy-abort.js";

/** A HandlerContext that its server can abort (cancel, deadline, shutdown, completion). */
export interface CallContext extends HandlerContext {
  abort(reason?: unknown): void;
  /** The abort state behind `signal`, which is created only when read. */
  readonly [CALL_ABORT]: CallAbort;
}

/** What a server knows of a call when it starts. */
export interface CallInit {
  readonly service: DescService;
  readonly method: DescMethod;
  readonly protocolName: string;
  readonly url: string;
  readonly timeoutMs: number | undefined;
  readonly requestHeader: Headers;
  readonly contextValues: ContextValues;
  /**
   * The class of the response header and trailer. Default `Headers`, which
   * the direct server hands to its in-process caller as they are; the
   * framed server's PairsHeaders make no `Headers` (and do not load
   * undici) unless the handler uses them, and it sends them as pairs; the
   * HTTP/2 lean paths' ResponseHeaders are the same, `instanceof Headers`.
   */
  readonly responseHeaders?: new () => Headers;
}

/**
 * Makes the HandlerContext of each call for the framed and direct servers.
 * connect-es' createHandlerContext builds two AbortControllers per call and
 * links each to the shutdown signal; in Node 20 an AbortController costs
 * several µs, which is most of a local call's budget. Here a call gets one
 * only if its handler reads `ctx.signal` (see lazy-abort.ts), the deadline
 * is a plain timer, and shutdown walks the live calls.
 */
export class ContextFactory {
  /** Live calls, as an intrusive list (no allocation, O(1) removal). */
  private readonly live: LiveCalls = { head: undefined };
  /**
   * The shutdown signal once it has aborted. Read per call instead of the
   * signal's `aborted` getter, which cost node 20 about 1 µs per call on
   * the HTTP/2 path (docs/http2-server.md, session 14).
   */
  private shutDown: AbortSignal | undefined;

  constructor(shutdownSignal?: AbortSignal) {
    if (shutdownSignal === undefined) return;
    const onShutdown = (): void => {
      this.shutDown = shutdownSignal;
      for (const ctx of ServerCallContext.liveIn(this.live)) ctx.abort(shutdownSignal.reason);
    };
    if (shutdownSignal.aborted) this.shutDown = shutdownSignal;
    else shutdownSignal.addEventListener("abort", onShutdown, { once: true });
  }

  /**
   * A call's context, its deadline armed. A timeout beyond setTimeout's
   * reach (a `grpc-timeout: 99999999H`) is no deadline: see reachableTimeout.
   */
  create(request: CallInit): CallContext {
    const timeoutMs = reachableTimeout(request.timeoutMs);
    const init = timeoutMs === request.timeoutMs ? request : { ...request, timeoutMs };
    const ctx = new ServerCallContext(init, this.live);
    if (this.shutDown !== undefined) ctx.abort(this.shutDown.reason);
    else ServerCallContext.start(ctx, init.timeoutMs);
    return ctx;
  }
}

const noDeadline = (): undefined => undefined;

function expire(ctx: CallContext): void {
  ctx.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded));
}

/** The calls a ContextFactory has not seen end: a doubly linked list through their contexts. */
interface LiveCalls {
  head: ServerCallContext | undefined;
}

/**
 * A call's HandlerContext. Every HandlerContext field is an own property
 * (connect-es copies the context with Object.assign for streaming
 * handlers, handlers copy it with a spread) but `signal`, a prototype
 * getter that creates it on first read; handlers get the context through
 * handlerView (signal-view.ts), in which `signal` and `abort` are own
 * properties too.
 *
 * The transport's bookkeeping (abort state, deadline timer, live-list
 * links) is in private fields, so that a handler's `{ ...ctx }` copies
 * exactly connect-es' HandlerContext properties: no delegate gets the
 * transport's state, and no copy keeps the live list reachable. The abort
 * state is reached through a prototype getter (CALL_ABORT), which a
 * spread does not copy either.
 *
 * On the framed server, `requestHeader`, `responseHeader` and
 * `responseTrailer` are PairsHeaders (lazy-pairs-headers.ts): they behave
 * as `Headers` in every use, but `instanceof Headers` is false for them,
 * so that a call that never uses them does not load Node's fetch code. On
 * the lean HTTP paths the response header and trailer are ResponseHeaders
 * (lazy-response-headers.ts): the same, `instanceof Headers` too.
 */
class ServerCallContext implements CallContext {
  readonly service: DescService;
  readonly method: DescMethod;
  readonly protocolName: string;
  readonly requestMethod = "POST";
  readonly url: string;
  readonly timeoutMs: () => number | undefined;
  readonly requestHeader: Headers;
  readonly responseHeader: Headers;
  readonly responseTrailer: Headers;
  readonly values: ContextValues;
  readonly #abort = new CallAbort();
  readonly #live: LiveCalls;
  #timer: NodeJS.Timeout | undefined = undefined;
  /** Links of the live list; `linked` while in it. */
  #prev: ServerCallContext | undefined = undefined;
  #next: ServerCallContext | undefined = undefined;
  #linked = false;

  constructor(init: CallInit, live: LiveCalls) {
    this.service = init.service;
    this.method = init.method;
    this.protocolName = init.protocolName;
    this.url = init.url;
    this.requestHeader = init.requestHeader;
    const Made = init.responseHeaders ?? Headers;
    this.responseHeader = new Made();
    this.responseTrailer = new Made();
    this.values = init.contextValues;
    if (init.timeoutMs === undefined) this.timeoutMs = noDeadline;
    else {
      const deadline = Date.now() + init.timeoutMs;
      this.timeoutMs = () => deadline - Date.now();
    }
    this.#live = live;
  }

  /** The AbortSignal, created on first read (see signal-view.ts' handlerView). */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  get [CALL_ABORT](): CallAbort {
    return this.#abort;
  }

  abort(reason?: unknown): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#unlink();
    this.#abort.abort(reason);
  }

  /** Puts a new context in its live list and arms its deadline (none if `timeoutMs` is undefined). */
  static start(ctx: ServerCallContext, timeoutMs: number | undefined): void {
    const live = ctx.#live;
    ctx.#linked = true;
    ctx.#next = live.head;
    if (live.head !== undefined) live.head.#prev = ctx;
    live.head = ctx;
    if (timeoutMs === undefined) return;
    if (timeoutMs <= 0) expire(ctx);
    else ctx.#timer = setTimeout(expire, timeoutMs, ctx);
  }

  /** The contexts in `live`, as an array (aborting one unlinks it). */
  static liveIn(live: LiveCalls): ServerCallContext[] {
    const out: ServerCallContext[] = [];
    for (let c = live.head; c !== undefined; c = c.#next) out.push(c);
    return out;
  }

  #unlink(): void {
    if (!this.#linked) return;
    this.#linked = false;
    if (this.#prev !== undefined) this.#prev.#next = this.#next;
    else this.#live.head = this.#next;
    if (this.#next !== undefined) this.#next.#prev = this.#prev;
    this.#prev = this.#next = undefined;
  }
}
