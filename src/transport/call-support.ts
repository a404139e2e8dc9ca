import {
  create,
  isMessage,
  type DescMessage,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { CallAbort } from "./lazy-abort.js";

/** Aborts a finished call's signal without building a DOMException per call. */
export const CALL_DONE = new ConnectError("call completed", Code.Canceled);

/**
 * The abort state a call runs under: it follows the caller's signal, fires
 * DeadlineExceeded at the deadline, and fires (with a shared reason, no
 * allocation) when the call completes, as Connect's transports do. Its
 * AbortSignal is created only if someone reads it (see lazy-abort.ts).
 */
export interface CallSignal {
  readonly abort: CallAbort;
  /** The call completed (or failed): stop the timer and fire the signal. */
  done(): void;
  /** The error the caller sees: their cancellation or deadline wins over the one seen. */
  error(error: unknown): ConnectError;
  /** The caller stopped reading a stream. */
  abandon(): void;
}

export function callSignal(
  signal: AbortSignal | undefined,
  timeoutMs: number | undefined,
): CallSignal {
  const abort = new CallAbort();
  let timer: NodeJS.Timeout | undefined;
  let follow: (() => void) | undefined;
  if (timeoutMs !== undefined && timeoutMs > 0) {
    timer = setTimeout(
      () => abort.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded)),
      timeoutMs,
    );
  } else if (timeoutMs !== undefined) {
    abort.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded));
  }
  if (signal !== undefined) {
    follow = (): void => abort.abort(ConnectError.from(signal.reason, Code.Canceled));
    if (signal.aborted) follow();
    else signal.addEventListener("abort", follow, { once: true });
  }
  const done = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    if (follow !== undefined) signal?.removeEventListener("abort", follow);
    abort.abort(CALL_DONE);
  };
  return {
    abort,
    done,
    error(error: unknown): ConnectError {
      if (abort.aborted && abort.reason !== CALL_DONE) {
        return ConnectError.from(abort.reason, Code.Canceled);
      }
      return ConnectError.from(error);
    },
    abandon(): void {
      abort.abort(new ConnectError("the caller stopped reading the stream", Code.Canceled));
      done();
    },
  };
}

export function applyInterceptors<T>(next: T, interceptors: readonly Interceptor[]): T {
  let fn = next as unknown as Parameters<Interceptor>[0];
  for (let i = interceptors.length - 1; i >= 0; i--) fn = (interceptors[i] as Interceptor)(fn);
  return fn as unknown as T;
}

export function normalize<I extends DescMessage>(
  desc: I,
  message: MessageInitShape<I>,
): MessageShape<I> {
  return isMessage(message, desc) ? message : create(desc, message);
}

export async function* normalizeIterable<I extends DescMessage>(
  desc: I,
  input: AsyncIterable<MessageInitShape<I>>,
): AsyncIterable<MessageShape<I>> {
  for await (const message of input) yield normalize(desc, message);
}
