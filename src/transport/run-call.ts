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
import {
  applyInterceptors,
  callSignal,
  normalize,
  normalizeIterable,
  type CallSignal,
} from "./call-support.js";
import { LazyRequest, type CallAbort } from "./lazy-abort.js";

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

  constructor(
    private readonly target: CallTarget,
    interceptors: readonly Interceptor[] = [],
  ) {
    this.interceptors = [...interceptors];
  }

  unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: HeadersInit | undefined,
    input: MessageInitShape<I>,
    contextValues?: ContextValues,
  ): Promise<UnaryResponse<I, O>> {
    const call = callSignal(signal, timeoutMs);
    const target = this.target;
    const req = clientRequest<UnaryRequest<I, O>>(
      call,
      false,
      method,
      target.path(method),
      header,
      contextValues,
      normalize(method.input, input),
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
    return pending.then(
      (res) => {
        call.done();
        return res;
      },
      (error: unknown) => {
        throw call.failed(error);
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
    const call = callSignal(signal, timeoutMs);
    const target = this.target;
    const req = clientRequest<StreamRequest<I, O>>(
      call,
      true,
      method,
      target.path(method),
      header,
      contextValues,
      normalizeIterable(method.input, input),
    );
    const next = applyInterceptors(
      (r: StreamRequest<I, O>) => target.stream(r, call),
      this.interceptors,
    );
    const fail = (error: unknown): never => {
      throw call.failed(error);
    };
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

function clientRequest<R extends UnaryRequest | StreamRequest>(
  call: CallSignal,
  stream: R["stream"],
  method: R["method"],
  url: string,
  header: HeadersInit | undefined,
  contextValues: ContextValues | undefined,
  message: R["message"],
): R {
  return newRequest<R>(
    call,
    stream,
    method.parent,
    method,
    url,
    new Headers(header),
    contextValues ?? createContextValues(),
    message,
  );
}

/** The response, its messages settling the call as they end, fail or are abandoned. */
export function settleWhenRead<I extends DescMessage, O extends DescMessage>(
  res: StreamResponse<I, O>,
  call: CallSignal,
): StreamResponse<I, O> {
  const it = res.message[Symbol.asyncIterator]();
  const message: AsyncIterable<MessageShape<O>> = {
    [Symbol.asyncIterator]: () => ({
      next: () =>
        it.next().then(
          (n) => {
            if (n.done === true) call.done();
            return n;
          },
          (error: unknown) => {
            throw call.failed(error);
          },
        ),
      return: (): Promise<IteratorResult<MessageShape<O>>> => {
        call.abandon();
        return it.return?.() ?? Promise.resolve({ done: true, value: undefined });
      },
    }),
  };
  return { ...res, message };
}
