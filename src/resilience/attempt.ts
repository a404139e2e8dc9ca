import { Code, ConnectError } from "@connectrpc/connect";
import { deadlineTimer } from "../transport/deadline.js";

/**
 * One attempt of a cluster call against its deadline: the hard deadline
 * that fails an attempt even when HTTP/2 never notices a partitioned peer,
 * the wait for discovery and the backoff (both bounded by the deadline and
 * the caller's signal), and what a failed attempt's error means.
 */

/** How long past its deadline an attempt may run before it is failed by force. */
export const HARD_DEADLINE_MARGIN_MS = 50;

/**
 * Runs one attempt with its own signal, which follows the caller's, and
 * fails it with DeadlineExceeded at most a few milliseconds after its
 * timeout even if the HTTP/2 stack never notices (a partitioned peer).
 */
export async function withHardDeadline<R>(
  attempt: (signal: AbortSignal) => Promise<R>,
  caller: AbortSignal | undefined,
  timeoutMs: number,
  name: string,
  closing: AbortSignal,
  /**
   * For streams: their signal must keep following the caller's after they
   * start, so on success the attempt is handed over instead of unlinked.
   */
  keep?: (attempt: KeptAttempt) => void,
): Promise<R> {
  const controller = new AbortController();
  const follow = (): void => controller.abort(caller?.reason);
  const close = (): void => controller.abort(closing.reason);
  if (caller?.aborted) follow();
  if (closing.aborted) close();
  caller?.addEventListener("abort", follow, { once: true });
  closing.addEventListener("abort", close, { once: true });
  const unlink = (): void => {
    caller?.removeEventListener("abort", follow);
    closing.removeEventListener("abort", close);
  };
  let timer: NodeJS.Timeout | undefined;
  const hard = new Promise<never>((_, reject) => {
    timer = deadlineTimer(() => {
      const error = new ConnectError(
        `${name}: deadline of ${timeoutMs} ms exceeded`,
        Code.DeadlineExceeded,
      );
      controller.abort(error);
      reject(error);
    }, timeoutMs + HARD_DEADLINE_MARGIN_MS);
  });
  let ok = false;
  try {
    const value = await Promise.race([attempt(controller.signal), hard]);
    ok = true;
    return value;
  } finally {
    clearTimeout(timer);
    if (ok && keep !== undefined) {
      keep({
        signal: controller.signal,
        abort: (reason) => controller.abort(reason),
        unlink,
      });
    } else unlink();
  }
}

/** A started stream's attempt: its signal, a way to end it, and its listener cleanup. */
export interface KeptAttempt {
  readonly signal: AbortSignal;
  abort(reason: unknown): void;
  unlink(): void;
}

/** Socket errors that mean the connection broke under the call. */
const BROKEN = new Set(["ECONNRESET", "EPIPE", "ECONNABORTED", "ETIMEDOUT"]);

/**
 * A call the caller did not cancel that fails as Canceled (an HTTP/2
 * RST_STREAM CANCEL, a session torn down) or as Aborted from a socket error
 * really failed because the connection broke: Unavailable says so, and
 * makes it retryable for idempotent methods. Codes the plugin chose pass
 * through.
 */
export function brokenToUnavailable(error: unknown): ConnectError {
  const ce = ConnectError.from(error);
  return ce.code === Code.Canceled || (ce.code === Code.Aborted && causedByBrokenSocket(ce))
    ? new ConnectError(
        `connection broke: ${ce.rawMessage}`,
        Code.Unavailable,
        ce.metadata,
        undefined,
        ce,
      )
    : ce;
}

/** A socket error that means a broken connection, within six causes down. */
function causedByBrokenSocket(ce: ConnectError): boolean {
  for (let e: unknown = ce.cause, d = 0; typeof e === "object" && e !== null && d < 6; d++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && BROKEN.has(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * Waits for `promise`, or fails with DeadlineExceeded at `deadline` (naming
 * what it waited for), or with the caller's cancellation. Leaves no timer
 * and no listener behind.
 */
export async function raceDeadline(
  promise: Promise<void>,
  deadline: number,
  signal?: AbortSignal,
  waitingFor = "discovery",
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  try {
    await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        if (signal?.aborted === true) {
          reject(ConnectError.from(signal.reason));
          return;
        }
        timer = deadlineTimer(
          () =>
            reject(
              new ConnectError(
                `deadline exceeded while waiting for ${waitingFor}`,
                Code.DeadlineExceeded,
              ),
            ),
          Math.max(0, deadline - Date.now()),
        );
        onAbort = () => reject(ConnectError.from(signal?.reason));
        signal?.addEventListener("abort", onAbort, { once: true });
      }),
    ]);
  } finally {
    clearTimeout(timer);
    // A caller's signal outlives the wait (it is the whole call's): leave
    // no listener on it.
    if (onAbort !== undefined) signal?.removeEventListener("abort", onAbort);
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(ConnectError.from(signal.reason));
      },
      { once: true },
    );
  });
}
