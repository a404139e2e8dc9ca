import {
  isMessage,
  type DescMessage,
  type DescMethod,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { createMessage } from "./create-message.js";
import { reachableTimeout } from "./deadline.js";
import { CallAbort } from "./lazy-abort.js";
import { PairsHeaders } from "./lazy-pairs-headers.js";

let done: ConnectError | undefined;
/**
 * Aborts a finished call's signal without building a DOMException per call.
 * Made on the first call, not when the module loads, and without a real
 * `Headers` for its (empty) metadata: ConnectError's constructor makes one,
 * and the first Headers loads Node's fetch (undici, about 16 ms of CPU on
 * a plugin's first call; Node 20 cannot hold it in a startup snapshot,
 * docs/local-transports.md).
 */
export const callDone = (): ConnectError =>
  (done ??= headerlessError("call completed", Code.Canceled));

/**
 * A ConnectError with the own properties its constructor gives, in the
 * same order and with the same attributes, but whose `metadata` is an
 * empty PairsHeaders (a Headers in every use but `instanceof`).
 */
function headerlessError(message: string, code: Code): ConnectError {
  const error = new Error(`[${codeToString(code)}] ${message}`) as Error & Record<string, unknown>;
  Object.setPrototypeOf(error, ConnectError.prototype);
  error.name = "ConnectError";
  error.rawMessage = message;
  error.code = code;
  error.metadata = new PairsHeaders();
  error.details = [];
  error.cause = undefined;
  // The stack from the caller on, as the constructor's (whose own frame
  // V8 leaves out), headed "ConnectError: ..." as that one reads.
  Error.captureStackTrace(error, headerlessError);
  return error as unknown as ConnectError;
}

/** Connect's name of a code, as ConnectError's message shows it ("canceled"). */
function codeToString(code: Code): string {
  return Code[code].replace(/[A-Z]/g, (c, i: number) => (i === 0 ? "" : "_") + c.toLowerCase());
}

/**
 * The abort state a call runs under: it follows the caller's signal, fires
 * DeadlineExceeded at the deadline, and fires (with a shared reason, no
 * allocation) when the call completes, as Connect's transports do. Its
 * AbortSignal is created only if someone reads it (see lazy-abort.ts). One
 * object per call, no closures unless the caller passed a signal.
 */
export class CallSignal extends CallAbort {
  private timer: NodeJS.Timeout | undefined;
  private follow: (() => void) | undefined;
  /** When the deadline falls (performance.now()), for error(); 0 for none. */
  private deadline = 0;

  /**
   * The caller's timeout, as the transport passes it on; undefined for none.
   * A timeout of 0 or less means none, as connect-es' CallOptions document
   * it (and its transports do); so does one beyond setTimeout's reach
   * (see reachableTimeout), which is then not sent on either.
   */
  readonly timeoutMs: number | undefined;

  constructor(
    private readonly callerSignal: AbortSignal | undefined,
    requestedMs: number | undefined,
  ) {
    super();
    const timeoutMs = reachableTimeout(requestedMs);
    if (timeoutMs !== undefined && timeoutMs > 0) {
      this.timeoutMs = timeoutMs;
      this.deadline = performance.now() + timeoutMs;
      this.timer = setTimeout(expire, timeoutMs, this);
    }
    if (callerSignal !== undefined) {
      const follow = (): void => this.abort(ConnectError.from(callerSignal.reason, Code.Canceled));
      if (callerSignal.aborted) follow();
      else {
        this.follow = follow;
        callerSignal.addEventListener("abort", follow, { once: true });
      }
    }
  }

  /** The call completed (or failed): stop the timer and fire the signal. */
  done(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.follow !== undefined) this.callerSignal?.removeEventListener("abort", this.follow);
    this.abort(callDone());
  }

  /**
   * The error the caller sees: their cancellation or deadline wins over the
   * one seen. A deadline that has passed wins even if its timer has not run
   * yet: the plugin's copy of the deadline fires at the same moment, and
   * node may read the plugin's answer to it (say, "internal error" from a
   * handler whose Node API threw AbortError) before it runs an expired timer.
   */
  error(error: unknown): ConnectError {
    if (this.deadline !== 0 && !this.aborted && performance.now() >= this.deadline) expire(this);
    if (this.aborted && this.reason !== callDone()) {
      return ConnectError.from(this.reason, Code.Canceled);
    }
    return ConnectError.from(error);
  }

  /** The call failed: settles it and returns the error the caller sees (see error()). */
  failed(error: unknown): ConnectError {
    const e = this.error(error);
    this.done();
    return e;
  }

  /**
   * failed(), for a target that settles a stream's call beneath the
   * interceptors: the error the caller sees now, the signal a macrotask
   * later, once interceptors (CallGuard) have judged the error with the
   * signal as the failure found it (not aborted: the plugin's or the
   * connection's doing, not the caller's), as framed/client.ts' queue does.
   */
  failedLater(error: unknown): ConnectError {
    const e = this.error(error);
    setImmediate(settleNow, this);
    return e;
  }

  /** The caller stopped reading a stream. */
  abandon(): void {
    this.abort(new ConnectError("the caller stopped reading the stream", Code.Canceled));
    this.done();
  }
}

/** A hook that does nothing: the default of an unset callback (one for all callers). */
export function noop(): void {}

function settleNow(call: CallSignal): void {
  call.done();
}

function expire(call: CallAbort): void {
  call.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded));
}

/** The abort state of a new call (see CallSignal). */
export function callSignal(
  signal: AbortSignal | undefined,
  timeoutMs: number | undefined,
): CallSignal {
  return new CallSignal(signal, timeoutMs);
}

export function normalize<I extends DescMessage>(
  desc: I,
  message: MessageInitShape<I>,
): MessageShape<I> {
  return isMessage(message, desc) ? message : createMessage(desc, message);
}

export async function* normalizeIterable<I extends DescMessage>(
  desc: I,
  input: AsyncIterable<MessageInitShape<I>>,
): AsyncIterable<MessageShape<I>> {
  for await (const message of input) yield normalize(desc, message);
}

/**
 * A method's request path, `/package.Service/Method`: the key the framed
 * and direct transports find a method by, and what their calls carry.
 */
export function methodPath(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}
