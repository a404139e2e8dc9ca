/**
 * Abort state whose AbortSignal is created only when someone asks for it.
 *
 * Every Connect call carries a signal (the request's, the handler
 * context's), but in Node 20 an AbortController with a listener costs 3-6 µs
 * to create, abort and collect: more than the whole of an in-process call
 * should. Most calls are never cancelled and no handler reads `ctx.signal`,
 * so the transports here keep the abort state in a CallAbort and hand out
 * the real AbortSignal lazily, through a getter. Their own code (and the
 * CallGuard and CallTracker interceptors) listen through `abortOf(req)`,
 * which reaches the CallAbort behind a request without creating a signal.
 */
export class CallAbort {
  aborted = false;
  reason: unknown = undefined;
  private controller: AbortController | undefined;
  /**
   * The hooks, in the order they came: the first one apart, the others in
   * an array made for them, because a pushed-to empty array reserves 17
   * slots (152 bytes); every call state has two or three hooks.
   */
  private first: Hook | AbortListener | undefined;
  private rest: (Hook | AbortListener)[] | undefined;

  /** The AbortSignal, created on first use (already aborted if the call is over). */
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  /** The signal if someone created it, without creating it. */
  get createdSignal(): AbortSignal | undefined {
    return this.controller?.signal;
  }

  /**
   * Aborts the signal only, not the call: for a handler's `ctx.abort()`,
   * which on connect-es' contexts aborts the handler's signal while the
   * call goes on until the handler answers. The hooks (the server's own)
   * are not told; a later abort() still tells them.
   */
  abortSignal(reason: unknown): void {
    if (this.aborted) return;
    this.controller ??= new AbortController();
    this.controller.abort(reason);
  }

  /** Aborts once: later calls are ignored. */
  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.controller?.abort(reason);
    const { first, rest } = this;
    this.first = this.rest = undefined;
    if (first !== undefined) tell(first, reason);
    if (rest !== undefined) for (const hook of rest) tell(hook, reason);
  }

  /**
   * Calls `hook` once on abort, with no means to unsubscribe: for hooks of a
   * call whose state is always aborted when the call ends (then the hook
   * must be harmless), which saves a closure and a splice per call.
   */
  listen(hook: Hook | AbortListener): void {
    if (this.first === undefined) this.first = hook;
    // A literal, not a push onto []: sized for its one hook.
    else if (this.rest === undefined) this.rest = [hook];
    else this.rest.push(hook);
  }

  /** Calls `hook` once on abort (not if already aborted); returns the means to unsubscribe. */
  onAbort(hook: Hook): () => void {
    this.listen(hook);
    return () => {
      if (this.first === hook) {
        // The next one moves up, so that later hooks still come after it.
        this.first = this.rest?.shift();
        return;
      }
      const rest = this.rest;
      const i = rest === undefined ? -1 : rest.indexOf(hook);
      if (i >= 0) rest?.splice(i, 1);
    };
  }
}

type Hook = (reason: unknown) => void;

/**
 * An object CallAbort.listen tells of the abort (`abortWith`), instead of a
 * hook function: a call's state can listen itself, without a closure per
 * call (H2Target's unary calls, docs/http2-client.md, session 15).
 */
export interface AbortListener {
  abortWith(reason: unknown): void;
}

function tell(hook: Hook | AbortListener, reason: unknown): void {
  if (typeof hook === "function") hook(reason);
  else hook.abortWith(reason);
}

/** Where a request or context keeps its CallAbort (copied along when an interceptor spreads it). */
export const CALL_ABORT = Symbol("connect-plugin.call-abort");

/** The abort state of a call, as the transports and interceptors here read it. */
export interface AbortView {
  readonly aborted: boolean;
  readonly reason: unknown;
  onAbort(hook: (reason: unknown) => void): () => void;
}

/**
 * A request handed to interceptors, whose `signal` is a getter on the
 * prototype, created on first read. (An object literal with a getter costs
 * V8 a slow path and is allocated so that it keeps every call's garbage
 * alive until a full GC: measured, half the CPU time of an in-process call.)
 * A signal-blind interceptor (the project's own) that copies the request
 * (`{...req}`) gets a copy without `signal`; the transports here then still
 * find the call's state through CALL_ABORT, which is an own property and is
 * copied. A user interceptor sees the request with an own `signal` getter,
 * which its copies keep (interceptedRequest, signal-view.ts).
 */
export class LazyRequest {
  readonly [CALL_ABORT]: CallAbort;
  constructor(
    abort: CallAbort,
    readonly stream: boolean,
    readonly service: unknown,
    readonly method: unknown,
    readonly url: string,
    readonly header: Headers,
    readonly contextValues: unknown,
    readonly message: unknown,
  ) {
    this[CALL_ABORT] = abort;
  }

  readonly requestMethod = "POST";

  get signal(): AbortSignal {
    return this[CALL_ABORT].signal;
  }
}

/**
 * The abort state behind a request's (or handler context's) signal: its
 * CallAbort when the signal is still the lazy one, otherwise (an interceptor
 * put in a signal of its own) a view over that AbortSignal.
 */
export function abortOf(req: { readonly signal: AbortSignal }): AbortView {
  const state = (req as { [CALL_ABORT]?: CallAbort })[CALL_ABORT];
  if (state !== undefined) {
    if (req instanceof LazyRequest) return state;
    // A copy: the state's own signal, or none (a copy of a LazyRequest).
    const d = Object.getOwnPropertyDescriptor(req, "signal");
    if (d === undefined || d.get !== undefined || d.value === state.createdSignal) return state;
  }
  return signalView(req.signal);
}

function signalView(signal: AbortSignal): AbortView {
  return {
    get aborted() {
      return signal.aborted;
    },
    get reason(): unknown {
      return signal.reason as unknown;
    },
    onAbort(hook) {
      const listener = (): void => hook(signal.reason);
      signal.addEventListener("abort", listener, { once: true });
      return () => signal.removeEventListener("abort", listener);
    },
  };
}

/**
 * The abort state that has already ended a call before it is sent: the
 * request's (`abort`, maybe an interceptor's signal), else the runner's
 * (the caller's cancel, the deadline), which an interceptor's own signal
 * must not hide: an interceptor that awaits past the deadline and then
 * passes its own signal down would otherwise send a call nobody waits for.
 */
export function abortedBefore(
  abort: AbortView,
  runner: CallAbort,
): { readonly reason: unknown } | undefined {
  if (abort.aborted) return abort;
  return runner.aborted ? runner : undefined;
}

/**
 * Tells `call` of the abort of a request whose abort state (abortOf) is
 * `abort`, on a lean path whose calls listen themselves: a CallAbort is
 * listened to (it always ends aborted, when the call settles: no
 * unsubscribe). A signal an interceptor put in instead gets a hook,
 * unsubscribed through `call.unsubscribe`, and the runner's own state
 * (`runner`: the caller's cancel and the deadline) is listened to as
 * well: an interceptor's signal must take neither the caller's cancel nor
 * the deadline away from the call (connect-es' runners enforce the
 * deadline whatever signal is passed down, but follow the cancel only
 * through it).
 */
export function listenAbort(
  abort: AbortView,
  runner: CallAbort,
  call: AbortListener & { unsubscribe: () => void; fail(reason: unknown): void },
): void {
  if (abort instanceof CallAbort) {
    abort.listen(call);
    return;
  }
  call.unsubscribe = abort.onAbort((reason) => call.fail(reason));
  runner.listen(call);
}
