import type { HandlerContext, Interceptor } from "@connectrpc/connect";
import type { CallContext } from "./handler-context.js";
import { CALL_ABORT, type CallAbort } from "./lazy-abort.js";

/**
 * How requests and handler contexts show their signal to user code, which
 * may copy them with a spread. Requests and contexts here keep `signal` as
 * a prototype getter that creates the AbortSignal on first read
 * (lazy-abort.ts), and a spread copies own properties only: connect-es'
 * own objects carry `signal` as an own property, so code written for them
 * (`next({ ...req, header })`, `{ ...ctx, values }`) must find it on the
 * copy here as well. An own accessor costs V8 a runtime call per object
 * (`Object.defineProperty`, 0.2-0.3 µs), so requests get one only when a
 * user interceptor is about to see them (interceptedRequest), and
 * contexts are shown through a Proxy (handlerView).
 */

/** Where an interceptor of this project is marked signal-blind (see signalBlind). */
const SIGNAL_BLIND = Symbol("connect-plugin.signal-blind");

/**
 * `interceptor`, marked as one that never reads a request's `signal`
 * (the project's own find the call's state through abortOf): the
 * requests it sees need no own `signal`, so a chain of such interceptors
 * costs no AbortSignal and no accessor per call. One that copies a request
 * may still be blind: the copy keeps the call's state (CALL_ABORT), and a
 * user interceptor after it gets the copy through interceptedRequest.
 */
export function signalBlind<T extends Interceptor>(interceptor: T): T {
  return Object.assign(interceptor, { [SIGNAL_BLIND]: true });
}

/** True when `interceptor` was marked by signalBlind. */
function isSignalBlind(interceptor: Interceptor): boolean {
  return (interceptor as { [SIGNAL_BLIND]?: true })[SIGNAL_BLIND] === true;
}

/**
 * The chain of `interceptors` ending in `next`, the first one outermost.
 * Each interceptor not marked signalBlind is handed its requests through
 * interceptedRequest, so that its spreads keep the signal; a blind one gets
 * them as they are (no cost).
 */
export function applyInterceptors<T>(next: T, interceptors: readonly Interceptor[]): T {
  let fn = next as unknown as Parameters<Interceptor>[0];
  for (let i = interceptors.length - 1; i >= 0; i--) {
    const interceptor = interceptors[i] as Interceptor;
    fn = isSignalBlind(interceptor) ? interceptor(fn) : intercepted(interceptor(fn));
  }
  return fn as unknown as T;
}

/**
 * A user interceptor's step, handed its requests through interceptedRequest.
 * A function of its own: a closure made in applyInterceptors' loop would
 * have V8 allocate a scope for every step, the blind ones' too.
 */
function intercepted(step: ReturnType<Interceptor>): ReturnType<Interceptor> {
  return (req) => step(interceptedRequest(req));
}

/**
 * `req` with `signal` as an own, enumerable getter, for a user interceptor
 * to see: its `{ ...req }` then copies the signal (the spread reads it,
 * which creates it) as it would connect-es' request. A request with an own
 * `signal` already (connect-es' own, an interceptor's copy), or without
 * the call's state behind it, is returned as it is.
 */
export function interceptedRequest<R extends object>(req: R): R {
  if (Object.hasOwn(req, "signal") || !(CALL_ABORT in req)) return req;
  return Object.defineProperty(req, "signal", OWN_SIGNAL);
}

/**
 * A copy of `req` whose abort state is `state` (an interceptor's own, as
 * CallGuard's), its `signal` an own getter over that state: no AbortSignal
 * is made unless someone reads it, where a copy with `state.signal` made
 * one per call (an AbortController costs node 20 several µs).
 */
export function withCallState<R extends object>(req: R, state: CallAbort): R {
  return Object.defineProperty({ ...req, [CALL_ABORT]: state }, "signal", OWN_SIGNAL);
}

/**
 * `{ ...req, header }`, for the project's interceptors that add a header
 * on a copy (bearerAuth, apiKeyAuth, the host-services session): a spread
 * reads the own `signal` getter that a request has after a user
 * interceptor saw it (interceptedRequest), which makes the call's
 * AbortSignal for a copy that never needed it (0.3 µs of an 8 µs in-process
 * call: `node dist/bench/in-process.js --ab BASE NEW --auth`). This copies
 * that getter as a getter; any other request is spread as usual.
 */
export function withHeader<R extends { readonly header: Headers }>(req: R, header: Headers): R {
  if (Object.getOwnPropertyDescriptor(req, "signal")?.get !== callSignalGetter) {
    return { ...req, header };
  }
  const copy = Object.defineProperties({}, Object.getOwnPropertyDescriptors(req)) as R;
  return Object.defineProperty(copy, "header", {
    value: header,
    writable: true,
    enumerable: true,
    configurable: true,
  });
}

/** The call's signal, read from its state (created on first read); shared by every request. */
function callSignalGetter(this: { readonly [CALL_ABORT]: CallAbort }): AbortSignal {
  return this[CALL_ABORT].signal;
}

const OWN_SIGNAL: PropertyDescriptor = {
  get: callSignalGetter,
  enumerable: true,
  configurable: true,
};

/**
 * The signal of a request a target hands on to code that reads `signal`
 * (connect-es' transport, on the framed client's HTTP fallback): its own,
 * or, for a copy made by a signal-blind interceptor (which has no
 * `signal`), the call's, from the state the copy kept.
 */
export function requestSignal(req: { readonly signal: AbortSignal }): AbortSignal | undefined {
  const own = req.signal as AbortSignal | undefined;
  if (own !== undefined) return own;
  // A request an interceptor built from scratch may have neither: no
  // signal, as connect-es' transports accept (not a TypeError).
  return (req as unknown as { readonly [CALL_ABORT]?: CallAbort })[CALL_ABORT]?.signal;
}

/**
 * What a handler gets for its context: a view (a Proxy) in which `signal`
 * and `abort` are own, enumerable properties, as on connect-es' contexts,
 * so that the handler's copy (`{ ...ctx, values }` for a delegate) has
 * them too (the spread reads `signal`, which creates it), while a call
 * that never reads it makes no AbortSignal. The context itself keeps both
 * on its prototype: an own accessor costs V8 a runtime call per object,
 * a Proxy with shared traps about 0.02 µs, plus a trap call per property
 * the handler reads. A handler written for connect-es may call
 * `ctx.abort()`, on the view or on its copy: see boundAbort.
 */
export function handlerView(ctx: CallContext): HandlerContext {
  return new Proxy(ctx, VIEW);
}

const VIEW: ProxyHandler<CallContext> = {
  // The target's own properties and getters, read on the target (whose
  // private fields a getter called on the Proxy could not reach).
  get: (t, key) =>
    key === "abort" ? boundAbort(t) : (t as unknown as Record<PropertyKey, unknown>)[key],
  ownKeys: (t) => [...Reflect.ownKeys(t), "signal", "abort"],
  getOwnPropertyDescriptor: (t, key) =>
    // Data descriptors: a copy made from descriptors
    // (Object.defineProperties, Object.create) gets the signal itself, not
    // a getter that would read `signal` on the copy (itself, endlessly).
    key === "signal"
      ? { value: t.signal, writable: false, enumerable: true, configurable: true }
      : key === "abort"
        ? { value: boundAbort(t), writable: false, enumerable: true, configurable: true }
        : Reflect.getOwnPropertyDescriptor(t, key),
};

/**
 * The handler's `abort`, made when read (most handlers never do): as on
 * connect-es' contexts, it aborts the handler's signal, and the call goes
 * on until the handler answers (the server's own hooks, which would end
 * the call in process, are not told).
 */
const boundAbort =
  (ctx: CallContext) =>
  (reason?: unknown): void =>
    ctx[CALL_ABORT].abortSignal(reason);
