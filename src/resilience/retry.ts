import type { DescMethod } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";

/**
 * How calls are retried. Only idempotent methods are retried after they may
 * have reached the plugin; see {@link isIdempotent} and {@link neverSent}.
 */
export interface RetryOptions {
  /** Attempts in total, the first included. Default 3. */
  readonly maxAttempts?: number;
  /** First backoff, before jitter. Default 25 ms. */
  readonly baseDelayMs?: number;
  /** Largest backoff, before jitter. Default 1,000 ms. */
  readonly maxDelayMs?: number;
  /** Codes worth another attempt. Default: Unavailable, DeadlineExceeded (of one attempt), Aborted. */
  readonly retryableCodes?: readonly Code[];
  /**
   * Fully-qualified method names ("example.kv.v1.KV.Put" or
   * "example.kv.v1.KV/Put") to treat as idempotent although their .proto
   * does not say so.
   */
  readonly idempotentMethods?: readonly string[];
  /** Limits retries across all calls, so that retries cannot multiply an outage. */
  readonly budget?: RetryBudgetOptions;
}

/**
 * gRPC's retry throttling: a token bucket that every failure drains by one
 * and every success refills by `tokenRatio`. Retries are allowed only while
 * more than half the tokens are left, so when most calls fail, retries stop
 * and the plugin is not hit with three times its normal load.
 */
export interface RetryBudgetOptions {
  /** Default 10. */
  readonly maxTokens?: number;
  /** Default 0.1. */
  readonly tokenRatio?: number;
}

export class RetryBudget {
  private tokens: number;
  private readonly maxTokens: number;
  private readonly tokenRatio: number;
  constructor(options: RetryBudgetOptions = {}) {
    this.maxTokens = options.maxTokens ?? 10;
    this.tokenRatio = options.tokenRatio ?? 0.1;
    this.tokens = this.maxTokens;
  }
  /** Whether a retry may be made now. */
  get canRetry(): boolean {
    return this.tokens > this.maxTokens / 2;
  }
  get available(): number {
    return this.tokens;
  }
  onSuccess(): void {
    this.tokens = Math.min(this.maxTokens, this.tokens + this.tokenRatio);
  }
  onFailure(): void {
    this.tokens = Math.max(0, this.tokens - 1);
  }
}

export class RetryPolicy {
  readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly retryable: ReadonlySet<Code>;
  private readonly explicit: ReadonlySet<string>;
  readonly budget: RetryBudget;

  constructor(options: RetryOptions = {}) {
    this.maxAttempts = Math.max(1, options.maxAttempts ?? 3);
    this.baseDelayMs = options.baseDelayMs ?? 25;
    this.maxDelayMs = options.maxDelayMs ?? 1_000;
    this.retryable = new Set(
      options.retryableCodes ?? [Code.Unavailable, Code.DeadlineExceeded, Code.Aborted],
    );
    this.explicit = new Set((options.idempotentMethods ?? []).map((m) => m.replace("/", ".")));
    this.budget = new RetryBudget(options.budget);
  }

  /** Full-jitter exponential backoff before attempt `attempt` (1 = the first retry). */
  backoffMs(attempt: number): number {
    const cap = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (attempt - 1));
    return Math.random() * cap;
  }

  isRetryableCode(code: Code): boolean {
    return this.retryable.has(code);
  }

  /**
   * True for methods that may run twice without harm: those marked
   * `option idempotency_level = NO_SIDE_EFFECTS` or `IDEMPOTENT` in their
   * .proto, and those listed in `idempotentMethods`.
   */
  isIdempotent(method: DescMethod): boolean {
    return (
      method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS ||
      method.idempotency === MethodOptions_IdempotencyLevel.IDEMPOTENT ||
      this.explicit.has(`${method.parent.typeName}.${method.name}`)
    );
  }
}

/** Socket errors that happen before a connection exists, so before any request byte. */
const NOT_CONNECTED = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/**
 * Marks an error raised before the call was handed to any connection (no
 * endpoint, open circuit). Such a call provably never reached a plugin.
 */
export class NotSentError extends ConnectError {
  readonly notSent = true;
}

/**
 * True only when the failed attempt provably never reached the plugin: it
 * was refused before dispatch (NotSentError), the TCP connection was never
 * established (ECONNREFUSED and friends), or the server refused the HTTP/2
 * stream (REFUSED_STREAM, which RFC 9113 §8.7 guarantees was not processed).
 * Everything else, resets and timeouts included, might have reached it.
 */
export function neverSent(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
    if (typeof e === "object") {
      // Not instanceof: ConnectError's Symbol.hasInstance accepts any ConnectError.
      if ((e as { notSent?: unknown }).notSent === true) return true;
      const code = (e as { code?: unknown }).code;
      if (typeof code === "string" && NOT_CONNECTED.has(code)) return true;
      const message = (e as { message?: unknown }).message;
      if (typeof message === "string" && /NGHTTP2_REFUSED_STREAM|code 7\b/.test(message))
        return true;
      e = (e as { cause?: unknown }).cause;
    } else break;
  }
  return false;
}
