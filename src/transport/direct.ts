import type {
  DescMessage,
  DescMethodStreaming,
  DescMethodUnary,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ContextValues,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { transformInvokeImplementation } from "@connectrpc/connect/protocol";
import { callDone, methodPath, normalize, type CallSignal } from "./call-support.js";
import type { ClientTransport } from "./client-transport.js";
import { ContextFactory, type CallContext } from "./handler-context.js";
import { handlerError } from "./framed/errors.js";
import { invokeUnary, type UnarySpec } from "./invoke.js";
import { handlerView } from "./signal-view.js";
import { CallRunner, type CallTarget } from "./run-call.js";
import { CALL_ABORT, CallAbort, abortOf, type AbortView } from "./lazy-abort.js";
import { collectMethods, type MethodEntry } from "./framed/methods.js";
import { stopIterator } from "./stop-iterator.js";

/**
 * An in-process transport that calls the plugin's implementation directly:
 * no serialization, no copies. Host interceptors, the plugin's interceptors,
 * a HandlerContext with headers and trailers, deadlines, cancellation,
 * errors and every streaming kind behave as over a socket; only the bytes
 * are skipped. Messages are passed by reference, so a plugin that mutates a
 * request (or keeps a response it returned and mutates it later) is seen by
 * the host; use the "serialize" mode (createRouterTransport) to rule that out.
 */
export function createDirectTransport(
  server: {
    routes: (router: ConnectRouter) => void;
    routerOptions: { interceptors: Interceptor[]; shutdownSignal?: AbortSignal };
  },
  options: { interceptors?: readonly Interceptor[] } = {},
): ClientTransport {
  const target = new DirectTarget(
    collectMethods(server.routes),
    server.routerOptions.interceptors,
    new ContextFactory(server.routerOptions.shutdownSignal),
  );
  const transport = new CallRunner(target, options.interceptors);
  return { transport, close: () => {}, isBroken: () => false };
}

/** Per method descriptor: its path and entry, so that a call builds no strings. */
interface Resolved {
  readonly url: string;
  readonly entry: MethodEntry | undefined;
}

/** Runs each call the CallRunner lets through on the plugin's handler, in this process. */
class DirectTarget implements CallTarget {
  readonly settlesStreams = false;
  private readonly resolved = new Map<DescMethodUnary | DescMethodStreaming, Resolved>();

  constructor(
    private readonly methods: Map<string, MethodEntry>,
    private readonly serverInterceptors: Interceptor[],
    private readonly contexts: ContextFactory,
  ) {}

  path(method: DescMethodUnary | DescMethodStreaming): string {
    return this.resolve(method).url;
  }

  /**
   * One promise per call, settled by the handler's answer or the call's
   * abort (the caller's cancel, the deadline, the plugin's shutdown),
   * whichever comes first; the handler's context is aborted (the call
   * done) before the caller sees the outcome, as a `finally` would.
   */
  unary<I extends DescMessage, O extends DescMessage>(
    r: UnaryRequest<I, O>,
    call: CallSignal,
  ): Promise<UnaryResponse<I, O>> {
    try {
      return this.unaryCall(r, call);
    } catch (error) {
      // An unknown method, a request the context cannot be made from: a
      // rejection, as from the async function this was, never a throw out
      // of a host interceptor's next().
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the error thrown
      return Promise.reject(error);
    }
  }

  private unaryCall<I extends DescMessage, O extends DescMessage>(
    r: UnaryRequest<I, O>,
    call: CallSignal,
  ): Promise<UnaryResponse<I, O>> {
    const entry = this.lookup(r.method);
    const ctx = this.context(entry, r, call.timeoutMs);
    const caller = abortOf(r);
    const unsubscribe = follow(caller, ctx);
    const pending = invokeUnary(entry.spec as UnarySpec, ctx, r.message, this.serverInterceptors);
    const abort = ctx[CALL_ABORT];
    if (abort.aborted) {
      // The abandoned answer may still reject (the handler sees the abort too).
      pending.catch(() => {});
      try {
        return Promise.reject(callerOrHandlerError(caller, ConnectError.from(abort.reason), ctx));
      } catch (error) {
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the thrown error as it is
        return Promise.reject(error);
      } finally {
        unsubscribe?.();
        ctx.abort(callDone());
      }
    }
    return new Promise<UnaryResponse<I, O>>((resolve, reject) => {
      let settled = false;
      // Settles the call whatever throws on the way (the error's conversion,
      // a hook of the context), as the `finally` of an async function did:
      // `settled` is set first, so a throw must not leave it unsettled.
      const fail = (error: unknown, fromAbort?: boolean): void => {
        if (settled) return;
        settled = true;
        try {
          reject(
            callerOrHandlerError(
              caller,
              fromAbort === true ? ConnectError.from(error) : error,
              ctx,
            ),
          );
        } catch (e) {
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the thrown error as it is
          reject(e);
        } finally {
          unsubscribe?.();
          ctx.abort(callDone());
        }
      };
      // The context is aborted when the call ends: no unsubscribing (see listen).
      abort.listen((reason) => fail(reason, true));
      pending.then((message) => {
        if (settled) return;
        settled = true;
        try {
          unsubscribe?.();
          ctx.abort(callDone());
        } catch (error) {
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the thrown error as it is
          reject(error);
          return;
        }
        resolve({
          stream: false,
          service: r.service,
          method: r.method,
          header: ctx.responseHeader,
          message: message as MessageShape<O>,
          trailer: ctx.responseTrailer,
        });
      }, fail);
    });
  }

  async stream<I extends DescMessage, O extends DescMessage>(
    r: StreamRequest<I, O>,
    call: CallSignal,
  ): Promise<StreamResponse<I, O>> {
    const entry = this.lookup(r.method);
    const ctx = this.context(entry, r, call.timeoutMs);
    // The view: connect-es copies the context it is given with a spread,
    // which would leave out the prototype's abort() (see handlerView).
    const output = transformInvokeImplementation(
      entry.spec as Parameters<typeof transformInvokeImplementation>[0],
      handlerView(ctx),
      this.serverInterceptors,
    )(r.message as AsyncIterable<never>)[Symbol.asyncIterator]();
    return streamResponse(r, ctx, output as AsyncIterator<MessageInitShape<O>>);
  }

  private resolve(method: DescMethodUnary | DescMethodStreaming): Resolved {
    let r = this.resolved.get(method);
    if (r === undefined) {
      const url = methodPath(method);
      r = { url, entry: this.methods.get(url) };
      this.resolved.set(method, r);
    }
    return r;
  }

  private lookup(method: DescMethodUnary | DescMethodStreaming): MethodEntry {
    const { url, entry } = this.resolve(method);
    if (entry === undefined) {
      throw new ConnectError(
        `HTTP 404 Not Found: no method ${url} on this plugin`,
        Code.Unimplemented,
      );
    }
    return entry;
  }

  private context(
    entry: MethodEntry,
    req: { url: string; header: Headers; contextValues: ContextValues },
    timeoutMs: number | undefined,
  ): CallContext {
    return this.contexts.create({
      service: entry.service,
      method: entry.method,
      protocolName: "connect-plugin-direct",
      url: req.url,
      timeoutMs,
      requestHeader: req.header,
      contextValues: req.contextValues,
    });
  }
}

/**
 * The response of a streaming handler: it resolves once the handler produced
 * its first message or ended (then its response headers are known), and its
 * messages follow the handler's, normalized, until the call aborts.
 */
async function streamResponse<I extends DescMessage, O extends DescMessage>(
  r: StreamRequest<I, O>,
  ctx: CallContext,
  output: AsyncIterator<MessageInitShape<O>>,
): Promise<StreamResponse<I, O>> {
  const caller = abortOf(r);
  const unsubscribe = follow(caller, ctx);
  // The call's end, however it comes (the caller's break or cancel, the
  // deadline, the plugin's shutdown, the last message), tells the handler's
  // output to stop, as the servers do when a stream closes: a handler
  // suspended at a yield, no longer pulled, runs its finally.
  const done = ctx[CALL_ABORT];
  if (done.aborted) stopIterator(output);
  else done.listen(() => stopIterator(output));
  const finish = (): void => {
    unsubscribe?.();
    ctx.abort(callDone());
  };
  const fail = (error: unknown): never => {
    finish();
    throw callerOrHandlerError(caller, error, ctx);
  };
  let first: IteratorResult<MessageInitShape<O>>;
  try {
    first = await raceAbort(output.next(), ctx[CALL_ABORT]);
  } catch (error) {
    return fail(error);
  }
  if (first.done === true) finish();
  async function* messages(): AsyncGenerator<MessageShape<O>> {
    if (first.done === true) return;
    try {
      yield normalize(r.method.output, first.value);
      for (;;) {
        const n = await raceAbort(output.next(), ctx[CALL_ABORT]);
        if (n.done === true) break;
        yield normalize(r.method.output, n.value);
      }
    } catch (error) {
      fail(error);
    } finally {
      finish();
    }
  }
  return {
    stream: true,
    service: r.service,
    method: r.method,
    header: ctx.responseHeader,
    trailer: ctx.responseTrailer,
    message: messages(),
  };
}

/**
 * The error the host sees: its own cancel (or deadline) as it is, otherwise
 * the handler's with the response metadata, as it would arrive over the wire.
 */
function callerOrHandlerError(caller: AbortView, error: unknown, ctx: CallContext): ConnectError {
  if (caller.aborted) return ConnectError.from(caller.reason);
  const ce = handlerError(error);
  const out = new ConnectError(
    ce.rawMessage,
    ce.code,
    new Headers(ctx.responseHeader),
    undefined,
    ce.cause,
  );
  out.details.push(...ce.details);
  ctx.responseTrailer.forEach((v, k) => out.metadata.append(k, v));
  ce.metadata.forEach((v, k) => out.metadata.append(k, v));
  return out;
}

/** The handler's context follows the caller's cancel (and deadline); returns the unsubscribe. */
function follow(caller: AbortView, ctx: CallContext): (() => void) | undefined {
  if (caller.aborted) {
    ctx.abort(caller.reason);
    return undefined;
  }
  const hook = (reason: unknown): void => ctx.abort(reason);
  // The host's own call state is aborted when the call ends (and a late
  // abort of a finished context does nothing): no need to unsubscribe.
  if (caller instanceof CallAbort) {
    caller.listen(hook);
    return undefined;
  }
  return caller.onAbort(hook);
}

/** Settles with the promise, or rejects as soon as the call aborts. */
function raceAbort<T>(promise: Promise<T>, abort: CallAbort): Promise<T> {
  if (abort.aborted) {
    // The abandoned promise may still reject (the handler sees the abort too).
    promise.catch(() => {});
    return Promise.reject(ConnectError.from(abort.reason));
  }
  return new Promise<T>((resolve, reject) => {
    const unsubscribe = abort.onAbort((reason) => reject(ConnectError.from(reason)));
    promise.then(
      (v) => {
        unsubscribe();
        resolve(v);
      },
      (e: unknown) => {
        unsubscribe();
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- passes the handler's error on as it is
        reject(e);
      },
    );
  });
}
