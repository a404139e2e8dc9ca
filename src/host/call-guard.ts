import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { HostCallbacks } from "../gen/connectplugin/v1/host_callbacks_pb.js";
import { IdleWaiters } from "../transport/idle-waiters.js";
import {
  inlinable,
  type InlineCall,
  type InlineInterceptor,
} from "../transport/inline-interceptor.js";
import {
  CallAbort,
  LazyRequest,
  abortOf,
  type AbortListener,
  type AbortView,
} from "../transport/lazy-abort.js";
import type { PluginExit, PluginProcess } from "./launcher.js";
import { withCallState } from "../transport/signal-view.js";

/** Codes a broken connection shows up as, before the guard rewrites them. */
const TRANSPORT_CODES = new Set([
  Code.Canceled,
  Code.Aborted,
  Code.Unknown,
  Code.Internal,
  Code.Unavailable,
]);

/**
 * Stands between a host's calls and the connection to its plugin, for every
 * source, so that calls never hang on a plugin that is gone and never fail
 * with a misleading error.
 *
 * - A call in flight when the connection breaks fails with Code.Unavailable.
 *   For a subprocess the message says how the process ended and what it last
 *   wrote to stderr ("was killed by SIGKILL during the call; last stderr:
 *   ..."); without it, the caller would see whatever the HTTP/2 stack saw,
 *   often "canceled", which reads like the caller's own doing.
 * - Calls made after the plugin died or the client closed fail at once.
 * - close() ends every call still in flight, over any transport.
 *
 * Errors the plugin sent itself, and the caller's own cancellations and
 * deadlines, pass through untouched. A plugin's own errors carry response
 * metadata and leave the connection up; a broken connection does neither.
 */
export class CallGuard implements InlineInterceptor {
  /**
   * The calls in flight that have their own abort state (see ownSignals),
   * newest first, linked through the calls themselves: no Set entry per call.
   */
  private newest: GuardedCall | undefined;
  /** Calls in flight, with or without their own abort state. */
  private active = 0;
  private closedMessage: string | undefined;
  private readonly idle = new IdleWaiters();

  /**
   * @param connectionBroken whether the transport's connection has failed
   * @param process the plugin subprocess, if there is one
   * @param canBreak false where no connection exists (in process): then every
   *   error is the plugin's own and passes through
   * @param ownSignals false when the transport itself fails every call in
   *   flight on close (framed, direct): the guard then gives calls no abort
   *   state of their own. Where it does, that state is the call's
   *   GuardedCall, a CallAbort whose AbortSignal is made only if someone
   *   reads it (lazy-abort.ts): an AbortController per call, aborted when
   *   the call ends, cost the HTTP/2 paths a sixth of their client CPU
   *   (docs/http2-client.md)
   */
  constructor(
    private readonly name: string,
    private readonly connectionBroken: () => boolean,
    private readonly process?: PluginProcess,
    private readonly canBreak = true,
    private readonly ownSignals = true,
  ) {}

  /** Resolves when no call is in flight, or after `ms`. */
  async drain(ms: number): Promise<void> {
    if (this.active > 0) await this.idle.wait(ms);
  }

  /** Fails every call in flight, and every later call, as closed. */
  close(): void {
    this.closedMessage ??= `plugin ${this.name} was closed`;
    // A snapshot first (aborting a call may end others, and unlink them),
    // then the calls in the order they began.
    const open: GuardedCall[] = [];
    for (let call = this.newest; call !== undefined; call = call.older) open.push(call);
    for (let i = open.length - 1; i >= 0; i--) {
      const call = open[i] as GuardedCall;
      if (!call.over) call.abort(new ConnectError(this.closedMessage, Code.Unavailable));
    }
  }

  /**
   * The guard as an interceptor. A CallRunner whose only interceptor this
   * is runs it inline instead (see begin() and inline-interceptor.ts).
   */
  readonly interceptor: Interceptor = inlinable(
    (next) => (req) => {
      // Read without creating the request's signal (see lazy-abort.ts).
      const caller = abortOf(req);
      const started = this.begin(req.service, caller);
      if (started === undefined) return next(req);
      if (started instanceof Error) return Promise.reject(started);
      const failed = (error: unknown): Promise<never> => started.failed(error).then(rethrow);
      // then() rather than an async function: one promise and hop less per call.
      let pending: ReturnType<typeof next>;
      try {
        pending = next(started.state === undefined ? req : withAbort(req, started.state));
      } catch (error) {
        return failed(error);
      }
      return pending.then((res) => {
        if (!res.stream) {
          started.ended();
          return res;
        }
        return {
          ...res,
          message: this.guardStream(res.message, caller, () => started.ended()),
        };
      }, failed);
    },
    this,
  );

  /**
   * Starts a call (as the interceptor does, or inline for a CallRunner):
   * undefined for the host's callback tunnel, which lives as long as the
   * client and is not a call to drain or to judge (host-services.ts reopens
   * it and ends it on close); the refusal when the plugin is gone or the
   * client closed; otherwise the call, counted until it ends.
   */
  begin(service: DescService, caller: AbortView): InlineCall | ConnectError | undefined {
    if (service.typeName === HostCallbacks.typeName) return undefined;
    return this.refusal() ?? this.track(caller);
  }

  /**
   * Counts a call in flight until it ends. One object per call (a
   * GuardedCall), where a CallAbort, three closures, the call's object and
   * a Set entry were about 480 bytes (docs/http2-client.md, session 16).
   */
  private track(caller: AbortView): InlineCall {
    const call = new GuardedCall(this, caller, this.ownSignals);
    if (this.ownSignals) {
      const newest = this.newest;
      call.older = newest;
      if (newest !== undefined) newest.newer = call;
      this.newest = call;
    }
    this.active++;
    // A call ends when it settles, or when the caller's signal aborts, which
    // Connect also does when a call completes: a server stream the caller
    // abandons (break) never finishes its iteration, but its signal does.
    if (caller.aborted) call.abortWith(caller.reason);
    // A local transport's own call state always ends aborted: no unsubscribing.
    else if (caller instanceof CallAbort) caller.listen(call);
    else call.unsubscribe = caller.onAbort((reason) => call.abortWith(reason));
    return call;
  }

  /** For GuardedCall: `call` ended; it is no longer in flight. */
  release(call: GuardedCall): void {
    if (this.ownSignals) {
      const { newer, older } = call;
      if (newer === undefined) this.newest = older;
      else newer.older = older;
      if (older !== undefined) older.newer = newer;
      call.newer = call.older = undefined;
    }
    if (--this.active === 0) this.idle.wake();
  }

  /**
   * The response stream, with its errors translated and the call ended when
   * it ends. A plain iterator rather than an async generator: one promise hop
   * per message instead of several, which shows at 100k+ messages/s.
   */
  private guardStream<T>(
    messages: AsyncIterable<T>,
    callerSignal: AbortView,
    done: () => void,
  ): AsyncIterable<T> {
    const translate = (error: unknown): Promise<unknown> => this.translate(error, callerSignal);
    return {
      [Symbol.asyncIterator]: (): AsyncIterator<T> => {
        const it = messages[Symbol.asyncIterator]();
        return {
          next: () =>
            it.next().then(
              (r) => {
                if (r.done === true) done();
                return r;
              },
              async (error: unknown) => {
                const translated = await translate(error);
                done();
                throw translated;
              },
            ),
          return: async (): Promise<IteratorResult<T>> => {
            try {
              await it.return?.();
            } finally {
              done();
            }
            return { done: true, value: undefined };
          },
        };
      },
    };
  }

  /** Why a new call cannot be made, if it cannot. */
  private refusal(): ConnectError | undefined {
    const exit = this.process?.exit;
    if (exit !== undefined) return this.exited(exit, false);
    if (this.closedMessage !== undefined)
      return new ConnectError(this.closedMessage, Code.Unavailable);
    return undefined;
  }

  /** For GuardedCall: the error the caller is to see for `error`, seen by a call (see class doc). */
  async translate(error: unknown, callerSignal: AbortView): Promise<unknown> {
    // The caller's own cancellation or deadline is not the plugin's doing.
    if (callerSignal.aborted) return error;
    const ce = ConnectError.from(error);
    if (ce.code === Code.DeadlineExceeded) return error;
    const exit = this.process?.exit;
    if (exit !== undefined) return this.exited(exit, true, error);
    if (this.closedMessage !== undefined) {
      return new ConnectError(this.closedMessage, Code.Unavailable, undefined, undefined, error);
    }
    if (!this.canBreak) return error;
    // Every error a plugin sends arrives with response metadata (content-type
    // at least, over Connect, gRPC and gRPC-web alike). An error without any
    // is the host's own (an interceptor, the caller's request stream) unless
    // the connection itself failed.
    if ([...ce.metadata.keys()].length > 0 || !TRANSPORT_CODES.has(ce.code)) return error;
    if (!this.connectionBroken() && !isSocketFailure(ce)) return error;
    if (this.process !== undefined) {
      const late = await this.process.exitWithin(1_000);
      if (late !== undefined) return this.exited(late, true, error);
    }
    if (ce.code === Code.Unavailable) return error;
    return new ConnectError(
      `lost the connection to plugin ${this.name} during the call: ${ce.rawMessage}`,
      Code.Unavailable,
      undefined,
      undefined,
      error,
    );
  }

  private exited(exit: PluginExit, during: boolean, cause?: unknown): ConnectError {
    const tail =
      exit.expected || exit.stderrTail === "" ? "" : `; last stderr: ${lastLine(exit.stderrTail)}`;
    return new ConnectError(
      `plugin ${this.name} ${exit.expected ? "was closed" : exit.description}${during ? " during the call" : ""}${tail}`,
      Code.Unavailable,
      undefined,
      undefined,
      cause,
    );
  }
}

/**
 * One call in flight through a CallGuard: the call's own abort state (when
 * the guard gives it one, `state` is the call itself), the listener that
 * follows the caller's abort state, the InlineCall the runner or the
 * interceptor reports the outcome to, and its link in the guard's list.
 * The first of ended() and an abort of the caller's state ends it.
 */
class GuardedCall extends CallAbort implements InlineCall, AbortListener {
  readonly state: CallAbort | undefined;
  /** True once the call ended (counted out of the guard). */
  over = false;
  unsubscribe: (() => void) | undefined = undefined;
  /** The guard's list of calls with their own state (see CallGuard.newest). */
  newer: GuardedCall | undefined = undefined;
  older: GuardedCall | undefined = undefined;

  constructor(
    private readonly guard: CallGuard,
    private readonly caller: AbortView,
    own: boolean,
  ) {
    super();
    this.state = own ? this : undefined;
  }

  /** The caller's state aborted (its cancel, deadline, or the call's end): follow it, and end. */
  abortWith(reason: unknown): void {
    if (this.state !== undefined) this.abort(reason);
    this.ended();
  }

  ended(): void {
    if (this.over) return;
    this.over = true;
    this.unsubscribe?.();
    this.guard.release(this);
  }

  failed(error: unknown): Promise<unknown> {
    this.ended();
    return this.guard.translate(error, this.caller);
  }
}

/**
 * The request with `call` as its abort state: a LazyRequest when it is one,
 * else a copy whose signal is `call`'s (withCallState); no signal is made
 * unless read.
 */
function withAbort<R extends { readonly signal: AbortSignal }>(req: R, call: CallAbort): R {
  if (!(req instanceof LazyRequest)) return withCallState(req, call);
  return new LazyRequest(
    call,
    req.stream,
    req.service,
    req.method,
    req.url,
    req.header,
    req.contextValues,
    req.message,
  ) as unknown as R;
}

function rethrow(error: unknown): never {
  throw error;
}

/** Node error codes of a socket or HTTP/2 session that failed under a call. */
const SOCKET_ERROR_CODES = new Set([
  "ECONNRESET",
  "EPIPE",
  "ECONNREFUSED",
  "ECONNABORTED",
  "ERR_STREAM_PREMATURE_CLOSE",
]);

/** True when the error (or what caused it) is a socket or HTTP/2 failure. */
function isSocketFailure(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (
      typeof code === "string" &&
      (SOCKET_ERROR_CODES.has(code) || code.startsWith("ERR_HTTP2"))
    ) {
      return true;
    }
    if (e.message.includes("socket hang up")) return true;
  }
  return false;
}

function lastLine(text: string): string {
  const lines = text.trimEnd().split("\n");
  return lines[lines.length - 1] ?? "";
}
