import type {
  DescMessage,
  DescMethodStreaming,
  DescMethodUnary,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";
import {
  createContextValues,
  type ContextValues,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type Transport,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { callSignal, noop, normalize, normalizeIterable, type CallSignal } from "./call-support.js";
import { inlineOf, type InlineCall, type InlineInterceptor } from "./inline-interceptor.js";
import { LazyRequest, type CallAbort } from "./lazy-abort.js";
import { applyInterceptors } from "./signal-view.js";

type HeadersInit = ConstructorParameters<typeof Headers>[0];

/**
 * What a client transport does with a call once the interceptors let it
 * through: the framed connection sends it over its socket, the direct
 * transport runs the plugin's handler. `call` is the call's abort state
 * (caller's cancel, deadline, completion); `call.timeoutMs` is the caller's
 * timeout.
 */
export interface CallTarget {
  /** The request path of a method, `/package.Service/Method`. */
  path(method: DescMethodUnary | DescMethodStreaming): string;
  unary<I extends DescMessage, O extends DescMessage>(
    req: UnaryRequest<I, O>,
    call: CallSignal,
  ): Promise<UnaryResponse<I, O>>;
  stream<I extends DescMessage, O extends DescMessage>(
    req: StreamRequest<I, O>,
    call: CallSignal,
  ): Promise<StreamResponse<I, O>>;
  /**
   * True when stream() settles the call itself once the response messages
   * end (the framed transport does it in its message queue, one layer less
   * per message); otherwise the runner wraps the messages to settle it.
   */
  readonly settlesStreams: boolean;
  /**
   * True when unary() only reads a request's header and contextValues and
   * hands neither on (to a handler, to connect-es): then a call that has
   * none of its caller's, and that no interceptor sees, gets shared empty
   * ones instead of a Headers and a ContextValues of its own. Default false.
   */
  readonly privateRequests?: boolean;
  /**
   * Optional: a unary call whose caller reads only the response's message,
   * its outcome handed to `end` instead of a promise (so a target may give
   * a success empty placeholders for its header and trailer instead of
   * making them; errors are unchanged): the runner's own promise is then the caller's, settled from
   * the target's last event, one promise and one microtask hop less per
   * call (docs/http2-client.md, session 15). The target calls `end.ok` or
   * `end.fail` once; a throw counts as `end.fail`.
   */
  unaryTo?<I extends DescMessage, O extends DescMessage>(
    req: UnaryRequest<I, O>,
    call: CallSignal,
    end: UnaryEnd<O>,
  ): void;
}

/** Where a target's unaryTo hands a call's outcome (see CallTarget.unaryTo). */
export interface UnaryEnd<O extends DescMessage> {
  /** The call succeeded; only `res.message` is read. */
  ok(res: { readonly message: MessageShape<O> }): void;
  /** The call failed with `error` (settled as a rejection of unary() is). */
  fail(error: unknown): void;
}

/**
 * The one call runner of the framed and direct transports, the counterpart
 * of connect-es' runUnaryCall/runStreamingCall (whose HTTP/2 transports use
 * those): builds the request, applies the client's interceptors, hands the
 * call to its target and settles it (done or error, the caller's cancel or
 * deadline winning over the error seen). Unlike connect-es it creates no
 * AbortController per call: the request's signal is lazy (see
 * lazy-abort.ts). A class, so that a call allocates no transport closures.
 */
export class CallRunner implements Transport {
  private readonly interceptors: readonly Interceptor[];
  /**
   * How unary calls run: `null` with no interceptor, the InlineInterceptor
   * when it is the only one (run inline, see leanUnary), undefined
   * otherwise (the interceptor chain, built per call).
   */
  private readonly inline: InlineInterceptor | null | undefined;

  constructor(
    private readonly target: CallTarget,
    interceptors: readonly Interceptor[] = [],
  ) {
    this.interceptors = [...interceptors];
    this.inline =
      interceptors.length === 0
        ? null
        : interceptors.length === 1
          ? inlineOf(interceptors[0])
          : undefined;
  }

  unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: HeadersInit | undefined,
    input: MessageInitShape<I>,
    contextValues?: ContextValues,
  ): Promise<UnaryResponse<I, O>> {
    if (this.inline !== undefined) {
      return this.leanUnary(method, signal, timeoutMs, header, input, contextValues, whole);
    }
    const target = this.target;
    const url = target.path(method);
    const message = normalize(method.input, input);
    const requestHeader = new Headers(header);
    // The call state last: a request that cannot be built (a header name
    // Headers refuses) throws before it, leaving no deadline timer and no
    // listener on the caller's signal behind.
    const call = callSignal(signal, timeoutMs);
    const req = newRequest<UnaryRequest<I, O>>(
      call,
      false,
      method.parent,
      method,
      url,
      requestHeader,
      contextValues ?? createContextValues(),
      message,
    );
    const next = applyInterceptors(
      (r: UnaryRequest<I, O>) => target.unary(r, call),
      this.interceptors,
    );
    let pending: Promise<UnaryResponse<I, O>>;
    try {
      pending = next(req);
    } catch (error) {
      // An interceptor that throws instead of rejecting: the call is still
      // settled (its deadline timer would otherwise hold the process open).
      return Promise.reject(call.failed(error));
    }
    return pending.then((res) => {
      call.done();
      return res;
    }, settleFailed(call));
  }

  /**
   * unary()'s response message, for a caller that reads nothing else of the
   * response (connect-es' client without onHeader and onTrailer,
   * create-client.ts): the same call, its outcome, errors and settling
   * included; on the lean path without the extra `.then` that picks the
   * message, and without making the response's header and trailer.
   */
  unaryMessage<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: HeadersInit | undefined,
    input: MessageInitShape<I>,
    contextValues?: ContextValues,
  ): Promise<MessageShape<O>> {
    if (this.inline !== undefined) {
      return this.leanUnary(method, signal, timeoutMs, header, input, contextValues, messageOf);
    }
    return this.unary(method, signal, timeoutMs, header, input, contextValues).then(messageOf);
  }

  /**
   * A unary call with no interceptor but, at most, one InlineInterceptor
   * (the host's CallGuard): the same steps as the chain, in the same order,
   * without the chain's closures, the interceptor's own `.then` and its
   * copy of the request. The request is built once, with the abort state
   * the inline interceptor gives the call. Nobody but the target sees it,
   * so a target with privateRequests gets shared empty header and context
   * values for a call without its caller's (no Headers per call).
   * `pick` gives the caller's result: the response (`whole`) or its
   * message only (`messageOf`: through the target's unaryTo where it has one).
   */
  private leanUnary<I extends DescMessage, O extends DescMessage, T>(
    method: DescMethodUnary<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: HeadersInit | undefined,
    input: MessageInitShape<I>,
    contextValues: ContextValues | undefined,
    pick: (res: UnaryResponse<I, O>) => T,
  ): Promise<T> {
    const target = this.target;
    const url = target.path(method);
    const message = normalize(method.input, input);
    const shared = target.privateRequests === true;
    const requestHeader =
      header === undefined && shared ? sharedEmptyHeader() : new Headers(header);
    const values = contextValues ?? (shared ? SHARED_VALUES : createContextValues());
    // After the request's parts, which may throw (see unary()).
    const call = callSignal(signal, timeoutMs);
    const started = this.inline?.begin(method.parent, call);
    // instanceof Error: ConnectError's own instanceof (Symbol.hasInstance) is a slow path.
    if (started instanceof Error) return Promise.reject(call.failed(started));
    const req = newRequest<UnaryRequest<I, O>>(
      started?.state ?? call,
      false,
      method.parent,
      method,
      url,
      requestHeader,
      values,
      message,
    );
    if (pick === messageOf && target.unaryTo !== undefined) {
      const end = new LeanEnd<O>(call, started);
      const promise = promiseOf<T>(end);
      try {
        target.unaryTo(req, call, end);
      } catch (error) {
        end.failNow(error);
      }
      return promise;
    }
    let pending: Promise<UnaryResponse<I, O>>;
    try {
      pending = target.unary(req, call);
    } catch (error) {
      if (started === undefined) return Promise.reject(call.failed(error));
      const fail = settleFailed(call);
      return started.failed(error).then(fail, fail);
    }
    if (started === undefined) {
      return pending.then((res) => {
        call.done();
        return pick(res);
      }, settleFailed(call));
    }
    return pending.then(
      (res) => {
        started.ended();
        call.done();
        return pick(res);
      },
      (error: unknown) => {
        // The inline interceptor's error, or its own failure to give one
        // (the chain's runner settles the call with either, see unary()).
        const fail = settleFailed(call);
        return started.failed(error).then(fail, fail);
      },
    );
  }

  stream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodStreaming<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: HeadersInit | undefined,
    input: AsyncIterable<MessageInitShape<I>>,
    contextValues?: ContextValues,
  ): Promise<StreamResponse<I, O>> {
    const target = this.target;
    const url = target.path(method);
    const requestHeader = new Headers(header);
    // After the request's parts, which may throw (see unary()).
    const call = callSignal(signal, timeoutMs);
    const req = newRequest<StreamRequest<I, O>>(
      call,
      true,
      method.parent,
      method,
      url,
      requestHeader,
      contextValues ?? createContextValues(),
      normalizeIterable(method.input, input),
    );
    const next = applyInterceptors(
      (r: StreamRequest<I, O>) => target.stream(r, call),
      this.interceptors,
    );
    const fail = settleFailed(call);
    let pending: Promise<StreamResponse<I, O>>;
    try {
      pending = next(req);
    } catch (error) {
      return Promise.reject(call.failed(error));
    }
    return target.settlesStreams
      ? pending.catch(fail)
      : pending.then((res) => settleWhenRead(res, call), fail);
  }
}

/**
 * A request as interceptors see it (a LazyRequest: its signal is created on
 * first read), cast to connect-es' request type in this one place.
 */
export function newRequest<R extends UnaryRequest | StreamRequest>(
  abort: CallAbort,
  stream: R["stream"],
  service: R["service"],
  method: R["method"],
  url: string,
  header: Headers,
  contextValues: ContextValues,
  message: unknown,
): R {
  return new LazyRequest(
    abort,
    stream,
    service,
    method,
    url,
    header,
    contextValues,
    message,
  ) as unknown as R;
}

/** Settles a failed call with `error` (see CallSignal.failed), as a rejection handler. */
const settleFailed =
  (call: CallSignal) =>
  (error: unknown): never => {
    throw call.failed(error);
  };

/**
 * The end of a lean call through CallTarget.unaryTo: settles the call, and
 * the caller's promise, as leanUnary's `.then` does for unary()'s promise
 * (success: the inline interceptor's `ended`, the call done, the message;
 * failure: the inline interceptor's `failed`, then the call failed with
 * the error it gives). Only the first outcome counts.
 */
class LeanEnd<O extends DescMessage> implements UnaryEnd<O> {
  private over = false;
  private resolve: (value: unknown) => void = noop;
  private reject: (error: unknown) => void = noop;

  constructor(
    private readonly call: CallSignal,
    private readonly started: InlineCall | undefined,
  ) {}

  /** For bindEnd: the caller's promise's resolving functions. */
  bind(resolve: (value: unknown) => void, reject: (error: unknown) => void): void {
    this.resolve = resolve;
    this.reject = reject;
  }

  ok(res: { readonly message: MessageShape<O> }): void {
    if (this.over) return;
    this.over = true;
    try {
      this.started?.ended();
      this.call.done();
    } catch (error) {
      // As a throw in leanUnary's `.then` would: the caller sees it.
      this.reject(error);
      return;
    }
    this.resolve(res.message);
  }

  fail(error: unknown): void {
    if (this.over) return;
    this.over = true;
    // Judged a microtask later, as unary()'s rejection reached leanUnary's
    // handler: CallGuard asks whether the connection broke, and node emits
    // the session's "close" in the same tick as the stream's last event.
    this.resolve(Promise.resolve().then(() => this.settle(error)));
  }

  /** fail(), judged now: for a synchronous throw from unaryTo (as leanUnary's catch). */
  failNow(error: unknown): void {
    if (this.over) return;
    this.over = true;
    this.resolve(this.settle(error));
  }

  private settle(error: unknown): Promise<never> {
    const started = this.started;
    const fail = settleFailed(this.call);
    if (started === undefined) return Promise.reject(this.call.failed(error));
    return started.failed(error).then(fail, fail);
  }
}

/**
 * The caller's promise, settled by `end`. Its executor is one module
 * function, not a closure per call (nor that closure's context): the end
 * it fills is handed over in `binding`, which the executor, run at once by
 * the Promise constructor, reads. About 120 bytes less per call
 * (docs/http2-client.md, session 16).
 */
function promiseOf<T>(end: LeanEnd<DescMessage>): Promise<T> {
  binding = end;
  const promise = new Promise<T>(bindEnd);
  binding = undefined;
  return promise;
}

/** The LeanEnd whose promise is being made (see promiseOf). */
let binding: LeanEnd<DescMessage> | undefined;

/** The executor of every LeanEnd's promise: hands its resolving functions to `binding`. */
function bindEnd(resolve: (value: never) => void, reject: (error: unknown) => void): void {
  (binding as LeanEnd<DescMessage>).bind(resolve as (value: unknown) => void, reject);
}

const whole = <R>(res: R): R => res;
const messageOf = <M>(res: { readonly message: M }): M => res.message;

/**
 * The empty header of calls without headers on a target with
 * privateRequests: never changed (no code that could change it sees it).
 * Made on first use: the first Headers loads Node's fetch (undici).
 */
let emptyHeader: Headers | undefined;
export const sharedEmptyHeader = (): Headers => (emptyHeader ??= new Headers());
/** True for the shared empty header: a request's header known to be empty without reading it. */
export const isSharedEmptyHeader = (header: Headers): boolean => header === emptyHeader;
const SHARED_VALUES: ContextValues = createContextValues();

/**
 * The response, its messages settling the call as they end, fail or are
 * abandoned. `beneath`: the interceptors have yet to see the messages (a
 * target's own stream), so a failure settles the call after they saw the
 * error (CallSignal.failedLater).
 */
export function settleWhenRead<I extends DescMessage, O extends DescMessage>(
  res: StreamResponse<I, O>,
  call: CallSignal,
  beneath = false,
): StreamResponse<I, O> {
  const failed = beneath
    ? (error: unknown): never => {
        throw call.failedLater(error);
      }
    : settleFailed(call);
  const it = res.message[Symbol.asyncIterator]();
  const message: AsyncIterable<MessageShape<O>> = {
    [Symbol.asyncIterator]: () => ({
      next: () =>
        it.next().then((n) => {
          if (n.done === true) call.done();
          return n;
        }, failed),
      return: (): Promise<IteratorResult<MessageShape<O>>> => {
        call.abandon();
        return it.return?.() ?? Promise.resolve({ done: true, value: undefined });
      },
    }),
  };
  return { ...res, message };
}
