import type {
  DescMessage,
  DescMethodBiDiStreaming,
  DescMethodClientStreaming,
  DescMethodServerStreaming,
  DescMethodUnary,
  MessageShape,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type HandlerContext,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { normalize } from "./call-support.js";
import type { CallContext } from "./handler-context.js";
import { CALL_ABORT } from "./lazy-abort.js";
import { MappedStream } from "./mapped-stream.js";
import { newRequest } from "./run-call.js";
import { applyInterceptors, handlerView } from "./signal-view.js";

/** The parts of connect-es' unary handler spec that the framed and direct servers call. */
export interface UnarySpec {
  readonly method: DescMethodUnary;
  impl(req: unknown, ctx: HandlerContext): unknown;
}

/**
 * Runs a unary implementation under the plugin's interceptors, as connect-es'
 * invokeUnaryImplementation does, but without reading the context's signal:
 * the request it gives interceptors has a lazy `signal` getter, and when no
 * interceptor replaced the request, the handler gets `ctx` itself rather
 * than a copy (a copy would create the signal). Resolves to the normalized
 * output message; the response headers and trailers end up in `ctx`.
 *
 * Promise chains rather than async functions: a handler that answers at
 * once costs one promise hop here (and one per interceptor that waits on
 * its `next`), not the three of an async function awaiting another; an
 * error thrown by the handler or an interceptor still comes out as a
 * rejection.
 */
export function invokeUnary(
  spec: UnarySpec,
  ctx: CallContext,
  input: unknown,
  interceptors: readonly Interceptor[],
): Promise<unknown> {
  const output = spec.method.output;
  if (interceptors.length === 0) return answer(spec, input, handlerView(ctx), output, asMessage);
  const req = handlerRequest<UnaryRequest>(spec.method, ctx, false, input);
  const anyFn = (r: UnaryRequest): Promise<UnaryResponse> => {
    let handlerCtx: HandlerContext;
    try {
      // A request an interceptor broke: next() rejects, as an async next did.
      handlerCtx = contextFor(r, req, ctx);
    } catch (error) {
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the thrown error as it is
      return Promise.reject(error);
    }
    return answer(spec, r.message, handlerCtx, output, (message) => ({
      stream: false,
      service: spec.method.parent,
      method: spec.method,
      header: ctx.responseHeader,
      message,
      trailer: ctx.responseTrailer,
    }));
  };
  let res: Promise<UnaryResponse>;
  try {
    // Promise.resolve: an interceptor may return a bare thenable (whose
    // then() returns nothing) or the response itself, as await accepted;
    // a native promise passes through as it is, without a hop.
    res = Promise.resolve(applyInterceptors(anyFn, interceptors)(req));
  } catch (error) {
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the thrown error as it is
    return Promise.reject(error);
  }
  return res.then((r) => {
    copyHeaders(r.header, ctx.responseHeader);
    copyHeaders(r.trailer, ctx.responseTrailer);
    return r.message;
  });
}

const asMessage = <T>(message: T): T => message;

/**
 * The handler's answer, normalized and passed through `wrap`, as a promise:
 * an already settled one when the handler answered (or threw) at once.
 */
function answer<R>(
  spec: UnarySpec,
  input: unknown,
  ctx: HandlerContext,
  output: DescMessage,
  wrap: (message: MessageShape<DescMessage>) => R,
): Promise<R> {
  try {
    const result = spec.impl(input, ctx);
    if (isThenable(result)) {
      return Promise.resolve(result).then((m) => wrap(normalize(output, m as never)));
    }
    return Promise.resolve(wrap(normalize(output, result as never)));
  } catch (error) {
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the thrown error as it is
    return Promise.reject(error);
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { then?: unknown }).then === "function"
  );
}

/** The request the plugin's interceptors see (its signal is the context's, created on read). */
function handlerRequest<R extends UnaryRequest | StreamRequest>(
  method: R["method"],
  ctx: CallContext,
  stream: R["stream"],
  message: unknown,
): R {
  return newRequest<R>(
    ctx[CALL_ABORT],
    stream,
    method.parent,
    method,
    ctx.url,
    ctx.requestHeader,
    ctx.values,
    message,
  );
}

/**
 * The handler's context: `ctx` itself, unless an interceptor passed a request
 * of its own (other headers, another signal); then the handler sees that
 * one, as in connect-es.
 */
function contextFor(
  r: UnaryRequest | StreamRequest,
  req: UnaryRequest | StreamRequest,
  ctx: CallContext,
): HandlerContext {
  if (r === req) return handlerView(ctx);
  const copy = {
    ...ctx,
    service: r.service,
    requestHeader: r.header,
    // A copy made by a signal-blind interceptor has no signal (see signal-view.ts).
    signal: (r as Partial<UnaryRequest>).signal ?? ctx.signal,
    values: r.contextValues,
    // As on handlerView and connect-es' contexts.
    abort: (reason?: unknown) => ctx[CALL_ABORT].abortSignal(reason),
  };
  return copy;
}

function copyHeaders(from: Headers, to: Headers): void {
  if (from === to) return;
  to.forEach((_, key) => to.delete(key));
  from.forEach((value, key) => to.set(key, value));
}

/** The parts of connect-es' server-streaming handler spec that the framed server calls. */
export interface ServerStreamSpec {
  readonly method: DescMethodServerStreaming;
  impl(req: unknown, ctx: HandlerContext): AsyncIterable<unknown>;
}

/**
 * Runs a server-streaming implementation under the plugin's interceptors,
 * as connect-es' transformInvokeImplementation does, minus its async
 * generator layers (each adds promise hops per message) and without
 * creating the context's signal. `input` is the single request message.
 * Resolves to the output messages, normalized; response headers are in
 * `ctx` when it resolves, trailers once the messages are consumed.
 */
export async function invokeServerStream(
  spec: ServerStreamSpec,
  ctx: CallContext,
  input: unknown,
  interceptors: readonly Interceptor[],
): Promise<AsyncIterable<unknown>> {
  const output = spec.method.output;
  if (interceptors.length === 0) return normalizeStream(output, spec.impl(input, handlerView(ctx)));
  const req = handlerRequest<StreamRequest>(spec.method, ctx, true, singleMessage(input));
  const anyFn = async (r: StreamRequest): Promise<StreamResponse> => {
    const message = r === req ? input : await onlyMessage(r.message);
    const handlerCtx = contextFor(r, req, ctx);
    return {
      stream: true,
      service: spec.method.parent,
      method: spec.method,
      header: ctx.responseHeader,
      message: normalizeStream(output, spec.impl(message, handlerCtx)) as AsyncIterable<never>,
      trailer: ctx.responseTrailer,
    };
  };
  return settled(await applyInterceptors(anyFn, interceptors)(req), ctx);
}

/** An interceptors' response: its headers into `ctx` now, its trailers once its messages are consumed. */
function settled(res: StreamResponse, ctx: CallContext): AsyncIterable<unknown> {
  copyHeaders(res.header, ctx.responseHeader);
  if (res.trailer === ctx.responseTrailer) return res.message;
  const trailer = res.trailer;
  return afterStream(res.message, () => copyHeaders(trailer, ctx.responseTrailer));
}

/** The parts of connect-es' client- and bidi-streaming handler specs that the lean stream path calls. */
export interface StreamSpec {
  readonly method: DescMethodClientStreaming | DescMethodBiDiStreaming;
  impl(req: AsyncIterable<unknown>, ctx: HandlerContext): unknown;
}

/**
 * Runs a client- or bidi-streaming implementation under the plugin's
 * interceptors, as invokeServerStream does (connect-es'
 * transformInvokeImplementation without its generators). `input` is the
 * request's messages. A client stream's implementation is awaited before
 * the interceptors get the response, as in connect-es; its answer is the
 * one output message.
 */
export async function invokeStream(
  spec: StreamSpec,
  ctx: CallContext,
  input: AsyncIterable<unknown>,
  interceptors: readonly Interceptor[],
): Promise<AsyncIterable<unknown>> {
  const method = spec.method;
  const run = async (
    messages: AsyncIterable<unknown>,
    handlerCtx: HandlerContext,
  ): Promise<AsyncIterable<unknown>> =>
    method.methodKind === "bidi_streaming"
      ? normalizeStream(method.output, spec.impl(messages, handlerCtx) as AsyncIterable<unknown>)
      : singleMessage(normalize(method.output, (await spec.impl(messages, handlerCtx)) as never));
  if (interceptors.length === 0) return run(input, handlerView(ctx));
  const req = handlerRequest<StreamRequest>(method, ctx, true, input);
  const anyFn = async (r: StreamRequest): Promise<StreamResponse> => ({
    stream: true,
    service: method.parent,
    method,
    header: ctx.responseHeader,
    message: (await run(r.message, contextFor(r, req, ctx))) as AsyncIterable<never>,
    trailer: ctx.responseTrailer,
  });
  return settled(await applyInterceptors(anyFn, interceptors)(req), ctx);
}

/**
 * The messages, each normalized: a MappedStream, which the call tracker's
 * error map joins and the framed server pulls from without wrapper promises.
 */
function normalizeStream(
  desc: DescMessage,
  messages: AsyncIterable<unknown>,
): AsyncIterable<unknown> {
  return MappedStream.values(messages, (value) => normalize(desc, value as never));
}

function afterStream(messages: AsyncIterable<unknown>, then: () => void): AsyncIterable<unknown> {
  return {
    [Symbol.asyncIterator]: () => {
      const it = messages[Symbol.asyncIterator]();
      return {
        next: () =>
          it.next().then((r) => {
            if (r.done === true) then();
            return r;
          }),
        return: (value?: unknown) =>
          it.return?.(value) ?? Promise.resolve({ done: true as const, value: undefined }),
      };
    },
  };
}

/** A stream of one message: a server stream's request for its interceptors, a client stream's answer. */
function singleMessage(message: unknown): AsyncIterable<unknown> {
  return {
    [Symbol.asyncIterator]: () => {
      let sent = false;
      return {
        next: () => {
          if (sent) return Promise.resolve({ done: true as const, value: undefined });
          sent = true;
          return Promise.resolve({ done: false, value: message });
        },
      };
    },
  };
}

/** The one message of a request stream (an interceptor may have replaced it). */
export async function onlyMessage(messages: AsyncIterable<unknown>): Promise<unknown> {
  const it = messages[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done === true) {
    throw new ConnectError(
      "protocol error: missing input message for server-streaming method",
      Code.Unimplemented,
    );
  }
  const second = await it.next();
  if (second.done !== true) {
    throw new ConnectError(
      "protocol error: received extra input message for server-streaming method",
      Code.Unimplemented,
    );
  }
  return first.value;
}
