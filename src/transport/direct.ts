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
  createContextValues,
  type ConnectRouter,
  type ContextValues,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type Transport,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { transformInvokeImplementation } from "@connectrpc/connect/protocol";
import {
  CALL_DONE,
  applyInterceptors,
  callSignal,
  normalize,
  normalizeIterable,
} from "./call-support.js";
import type { ClientTransport } from "./client-transport.js";
import { ContextFactory, type CallContext } from "./handler-context.js";
import { handlerError } from "./framed/errors.js";
import { invokeUnary, type UnarySpec } from "./invoke.js";
import { CALL_ABORT, CallAbort, LazyRequest, abortOf, type AbortView } from "./lazy-abort.js";
import { collectMethods, type MethodEntry } from "./framed/methods.js";

type HeadersInit = ConstructorParameters<typeof Headers>[0];

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
  const methods = collectMethods(server.routes);
  const serverInterceptors = server.routerOptions.interceptors;
  const shutdownSignal = server.routerOptions.shutdownSignal;
  const clientInterceptors = [...(options.interceptors ?? [])];

  // Per method descriptor: its path and entry, so a call builds no strings.
  const resolved = new Map<
    DescMethodUnary | DescMethodStreaming,
    { url: string; entry?: MethodEntry }
  >();
  const resolve = (
    method: DescMethodUnary | DescMethodStreaming,
  ): { url: string; entry?: MethodEntry } => {
    let r = resolved.get(method);
    if (r === undefined) {
      const url = `/${method.parent.typeName}/${method.name}`;
      r = { url, entry: methods.get(url) };
      resolved.set(method, r);
    }
    return r;
  };
  const lookup = (method: DescMethodUnary | DescMethodStreaming): MethodEntry => {
    const { url, entry } = resolve(method);
    if (entry === undefined) {
      throw new ConnectError(
        `HTTP 404 Not Found: no method ${url} on this plugin`,
        Code.Unimplemented,
      );
    }
    return entry;
  };

  const contexts = new ContextFactory(shutdownSignal);
  const context = (
    entry: MethodEntry,
    req: { url: string; header: Headers; contextValues: ContextValues },
    timeoutMs: number | undefined,
  ): CallContext =>
    contexts.create({
      service: entry.service,
      method: entry.method,
      protocolName: "connect-plugin-direct",
      url: req.url,
      timeoutMs,
      requestHeader: req.header,
      contextValues: req.contextValues,
    });

  /** Adds the response metadata to an error, as it would arrive over the wire. */
  const withMetadata = (error: unknown, header: Headers, trailer: Headers): ConnectError => {
    const ce = handlerError(error);
    const out = new ConnectError(ce.rawMessage, ce.code, new Headers(header), undefined, ce.cause);
    out.details.push(...ce.details);
    trailer.forEach((v, k) => out.metadata.append(k, v));
    ce.metadata.forEach((v, k) => out.metadata.append(k, v));
    return out;
  };

  const transport: Transport = {
    unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: MessageInitShape<I>,
      contextValues?: ContextValues,
    ): Promise<UnaryResponse<I, O>> {
      const call = callSignal(signal, timeoutMs);
      const req = new LazyRequest(
        call,
        false,
        method.parent,
        method,
        resolve(method).url,
        new Headers(header),
        contextValues ?? createContextValues(),
        normalize(method.input, input),
      ) as unknown as UnaryRequest<I, O>;
      const next = applyInterceptors(
        async (r: UnaryRequest<I, O>): Promise<UnaryResponse<I, O>> => {
          const entry = lookup(r.method);
          const ctx = context(entry, r, timeoutMs);
          const caller = abortOf(r);
          const unsubscribe = follow(caller, ctx);
          try {
            const message = await raceAbortOnce(
              invokeUnary(entry.spec as UnarySpec, ctx, r.message, serverInterceptors),
              // Aborts on the caller's cancel, the deadline and the plugin's shutdown.
              ctx[CALL_ABORT],
            );
            return {
              stream: false,
              service: r.service,
              method: r.method,
              header: ctx.responseHeader,
              message: message as MessageShape<O>,
              trailer: ctx.responseTrailer,
            };
          } catch (error) {
            throw caller.aborted
              ? ConnectError.from(caller.reason)
              : withMetadata(error, ctx.responseHeader, ctx.responseTrailer);
          } finally {
            unsubscribe?.();
            ctx.abort(CALL_DONE);
          }
        },
        clientInterceptors,
      );
      return next(req).then(
        (res) => {
          call.done();
          return res;
        },
        (error: unknown) => {
          const e = call.error(error);
          call.done();
          throw e;
        },
      );
    },

    stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: AsyncIterable<MessageInitShape<I>>,
      contextValues?: ContextValues,
    ): Promise<StreamResponse<I, O>> {
      const call = callSignal(signal, timeoutMs);
      const req = new LazyRequest(
        call,
        true,
        method.parent,
        method,
        resolve(method).url,
        new Headers(header),
        contextValues ?? createContextValues(),
        normalizeIterable(method.input, input),
      ) as unknown as StreamRequest<I, O>;
      const next = applyInterceptors(
        async (r: StreamRequest<I, O>): Promise<StreamResponse<I, O>> => {
          const entry = lookup(r.method);
          const ctx = context(entry, r, timeoutMs);
          const caller = abortOf(r);
          const unsubscribe = follow(caller, ctx);
          const finish = (): void => {
            unsubscribe?.();
            ctx.abort(CALL_DONE);
          };
          const output = transformInvokeImplementation(
            entry.spec as Parameters<typeof transformInvokeImplementation>[0],
            ctx,
            serverInterceptors,
          )(r.message as AsyncIterable<never>)[Symbol.asyncIterator]();
          const fail = (error: unknown): never => {
            finish();
            throw caller.aborted
              ? ConnectError.from(caller.reason)
              : withMetadata(error, ctx.responseHeader, ctx.responseTrailer);
          };
          // Response headers are known once the handler produces its first message or ends.
          let first: IteratorResult<unknown>;
          try {
            first = await raceAbort(output.next(), ctx[CALL_ABORT]);
          } catch (error) {
            return fail(error);
          }
          if (first.done === true) finish();
          async function* messages(): AsyncGenerator<MessageShape<O>> {
            if (first.done === true) return;
            yield normalize(r.method.output, first.value as MessageInitShape<O>);
            try {
              for (;;) {
                const n = await raceAbort(output.next(), ctx[CALL_ABORT]);
                if (n.done === true) break;
                yield normalize(r.method.output, n.value as MessageInitShape<O>);
              }
            } catch (error) {
              fail(error);
            } finally {
              finish();
              output.return?.().catch(() => {});
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
        },
        clientInterceptors,
      );
      return next(req).then(
        (res) => {
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
                    const e = call.error(error);
                    call.done();
                    throw e;
                  },
                ),
              return: (): Promise<IteratorResult<MessageShape<O>>> => {
                call.abandon();
                return it.return?.() ?? Promise.resolve({ done: true, value: undefined });
              },
            }),
          };
          return { ...res, message };
        },
        (error: unknown) => {
          const e = call.error(error);
          call.done();
          throw e;
        },
      );
    },
  };
  return { transport, close: () => {}, isBroken: () => false };
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

/**
 * raceAbort for a unary call: the context is aborted when the call ends, so
 * the hook needs no unsubscribing (it then rejects a settled promise).
 */
function raceAbortOnce<T>(promise: Promise<T>, abort: CallAbort): Promise<T> {
  if (abort.aborted) {
    promise.catch(() => {});
    return Promise.reject(ConnectError.from(abort.reason));
  }
  return new Promise<T>((resolve, reject) => {
    abort.listen((reason) => reject(ConnectError.from(reason)));
    promise.then(resolve, reject);
  });
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
