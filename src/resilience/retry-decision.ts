import { Code } from "@connectrpc/connect";

/** What is known when an attempt of a cluster call has failed. */
export interface FailedAttempt {
  /** The attempt's code, after a broken connection was read as Unavailable. */
  readonly code: Code;
  /** The caller cancelled, or the cluster closed: nothing more is tried. */
  readonly abandoned: boolean;
  /** The attempt provably never reached an instance (see neverSent). */
  readonly notSent: boolean;
  /** The method may run twice (idempotent, and a unary call). */
  readonly idempotent: boolean;
  /** The retry policy counts the code as retryable. */
  readonly retryableCode: boolean;
  /** The retry budget still allows a retry of a call that may have been sent. */
  readonly budgetAllows: boolean;
  readonly attempt: number;
  readonly maxAttempts: number;
  /** Some of the call's deadline is left. */
  readonly timeLeft: boolean;
  /** Unary and a fallback transport is configured (streams never fall back after an attempt). */
  readonly canFallBack: boolean;
}

/**
 * What the cluster does after a failed attempt: throw the error as it is,
 * try another attempt, hand the call to the fallback, or fail with a
 * sentence that says why no more was tried (empty when the code itself is
 * not retryable).
 */
export type RetryDecision =
  | { readonly action: "rethrow" }
  | { readonly action: "retry" }
  | { readonly action: "fallback" }
  | { readonly action: "fail"; readonly why: string };

/**
 * The cluster's retry rule, as a pure function so that every branch is
 * unit-tested. A call is tried again only when the code is retryable, it
 * is safe (idempotent, or provably never sent, so a non-idempotent call
 * runs at most once), time is left, attempts are left, and the retry
 * budget allows it (a never-sent attempt costs the budget nothing). When
 * only the attempts or the budget ran out, a unary call goes to the
 * fallback if there is one.
 */
export function decideRetry(failed: FailedAttempt, name: string, timeoutMs: number): RetryDecision {
  if (failed.abandoned) return { action: "rethrow" };
  const safe = failed.idempotent || failed.notSent;
  const budgetOk = failed.notSent || failed.budgetAllows;
  const worthIt = failed.retryableCode && safe && failed.timeLeft;
  if (worthIt && failed.attempt < failed.maxAttempts && budgetOk) return { action: "retry" };
  if (worthIt && failed.canFallBack) return { action: "fallback" };
  let why = "";
  if (!failed.timeLeft && failed.code === Code.DeadlineExceeded) {
    why = `; the call's deadline of ${timeoutMs} ms is used up`;
  } else if (failed.retryableCode && !safe) {
    why = `; not retried: ${name} is not idempotent and the request may have reached the plugin`;
  } else if (failed.retryableCode && failed.attempt >= failed.maxAttempts) {
    why = "; no attempts left";
  } else if (failed.retryableCode && !budgetOk) {
    why = "; not retried: the retry budget is spent";
  }
  return { action: "fail", why };
}
