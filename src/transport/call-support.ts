import {
  create,
  isMessage,
  type DescMessage,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/** Aborts a finished call's signal without building a DOMException per call. */
export const CALL_DONE = new ConnectError("call completed", Code.Canceled);

/**
 * The signal a call runs under: it follows the caller's signal, fires
 * DeadlineExceeded at the deadline, and fires (with a shared reason, no
 * allocation) when the call completes, as Connect's transports do.
 */
/** A call's own signal and the means to settle it. */
export interface CallSignal {
  readonly signal: AbortSignal;
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
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const follow = (): void => {
    controller.abort(ConnectError.from(signal?.reason, Code.Canceled));
  };
  if (timeoutMs !== undefined && timeoutMs > 0) {
    timer = setTimeout(
      () => controller.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded)),
      timeoutMs,
    );
  } else if (timeoutMs !== undefined) {
    controller.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded));
  }
  if (signal !== undefined) {
    if (signal.aborted) follow();
    else signal.addEventListener("abort", follow, { once: true });
  }
  const done = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    signal?.removeEventListener("abort", follow);
    controller.abort(CALL_DONE);
  };
  return {
    signal: controller.signal,
    done,
    /** The caller cancelled or the deadline passed: that error wins over the one seen. */
    error(error: unknown): ConnectError {
      if (controller.signal.aborted && controller.signal.reason !== CALL_DONE) {
        return ConnectError.from(controller.signal.reason, Code.Canceled);
      }
      return ConnectError.from(error);
    },
    abandon(): void {
      if (!controller.signal.aborted) {
        controller.abort(new ConnectError("the caller stopped reading the stream", Code.Canceled));
      }
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
