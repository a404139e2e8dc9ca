/**
 * The longest delay Node's setTimeout honours: 2^31-1 ms, about 24.8 days.
 * A longer one (a `grpc-timeout: 99999999H`, a `timeoutMs` of a year) is
 * not refused but fires after 1 ms, so the call would fail at once with
 * DeadlineExceeded.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A call's timeout as this project arms it: the same number, or undefined
 * (no deadline) when it is beyond MAX_TIMER_MS (or not finite). Every place
 * that arms a deadline timer or passes a timeout to connect-es goes through
 * it. (No imports: the framed transport loads it, and its cold start
 * does without connect-es' protocol code.)
 *
 * No deadline rather than a clamp to 24.8 days: a clamped timer would fail
 * the call earlier than the caller asked, a deadline nobody can reach
 * changes nothing a caller can observe, and no header or frame then
 * carries a number that a peer (connect-es, grpc-go) might overflow in turn.
 * So a handler's `ctx.timeoutMs()` is undefined for such a call, as for one
 * without a timeout.
 */
export function reachableTimeout(timeoutMs: number | undefined): number | undefined {
  return timeoutMs !== undefined && Number.isFinite(timeoutMs) && timeoutMs <= MAX_TIMER_MS
    ? timeoutMs
    : undefined;
}

/**
 * setTimeout(callback, ms) for a deadline, or no timer (undefined) when `ms`
 * is beyond setTimeout's reach: that deadline is never reached (see
 * reachableTimeout).
 */
export function deadlineTimer(callback: () => void, ms: number): NodeJS.Timeout | undefined {
  return reachableTimeout(ms) === undefined ? undefined : setTimeout(callback, ms);
}
