import {
  Code,
  ConnectError,
  type Interceptor,
  type StreamResponse,
  type UnaryResponse,
} from "@connectrpc/connect";
import { IdleWaiters } from "../transport/idle-waiters.js";
import { CallAbort, abortOf } from "../transport/lazy-abort.js";
import { MappedStream } from "../transport/mapped-stream.js";
import { signalBlind } from "../transport/signal-view.js";

/**
 * Counts the calls a plugin is serving, and turns new calls away once a
 * shutdown has begun. Shutdown waits on it, so that calls in flight finish
 * before the process exits.
 *
 * A call ends when its handler context's signal aborts, which Connect does
 * for every call when it completes, fails, times out or is cancelled, so the
 * count cannot leak even when a client walks away from a stream.
 */
export class CallTracker {
  private active = 0;
  private draining = false;
  private readonly idle = new IdleWaiters();

  /**
   * @param exempt services whose calls are neither counted nor refused while
   *   draining (the controller and health checks)
   * @param cancelled aborted when the grace period is over; calls that fail
   *   after it fail with its reason, whatever error the handler threw
   */
  constructor(
    private readonly exempt: ReadonlySet<string>,
    private readonly cancelled: AbortSignal,
  ) {}

  get inFlight(): number {
    return this.active;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /**
   * Counts the call until its signal aborts. The callbacks are shared, not
   * made per call (closures cost a tenth of an in-process call): every call
   * ends exactly once, as its abort state fires its hooks once.
   */
  readonly interceptor: Interceptor = signalBlind((next) => (req) => {
    if (this.exempt.has(req.service.typeName)) return next(req);
    if (this.draining) {
      return Promise.reject(
        new ConnectError(
          `plugin is shutting down and takes no new calls (${req.service.typeName}/${req.method.name})`,
          Code.Unavailable,
        ),
      );
    }
    this.active++;
    const abort = abortOf(req);
    if (abort.aborted) this.end();
    else if (abort instanceof CallAbort) abort.listen(this.end);
    // A signal of its own (an interceptor's): a listener per call, as an
    // EventTarget would add a shared one only once for calls sharing it.
    else abort.onAbort(() => this.end());
    return next(req).then(this.answered, this.failed);
  });

  private readonly end = (): void => {
    this.active--;
    if (this.active === 0) this.idle.wake();
  };

  private readonly answered = (
    res: UnaryResponse | StreamResponse,
  ): UnaryResponse | StreamResponse =>
    res.stream ? { ...res, message: this.explainStream(res.message) } : res;

  private readonly failed = (error: unknown): never => {
    throw this.explain(error);
  };

  /** A handler that gave up because the plugin stopped says so, not "internal error". */
  private explain(error: unknown): Error {
    if (this.cancelled.aborted) return ConnectError.from(this.cancelled.reason);
    return error instanceof Error ? error : ConnectError.from(error);
  }

  /**
   * The stream with its errors explained: a MappedStream, so the map joins
   * the normalising one rather than adding a promise per message, and the
   * framed server applies it without any wrapper (see mapped-stream.ts).
   */
  private explainStream<T>(messages: AsyncIterable<T>): AsyncIterable<T> {
    return MappedStream.errors(messages, this.explainError);
  }

  private readonly explainError = (error: unknown): Error => this.explain(error);

  /**
   * Refuses new calls from now on, and resolves once no call is in flight or
   * `graceMs` has passed, whichever is first. Returns the calls still running.
   */
  async drain(graceMs: number): Promise<number> {
    this.draining = true;
    if (this.active > 0) await this.idle.wait(graceMs);
    return this.active;
  }
}
