import type { DescMethod } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { isRefusedStream } from "../transport/node-errors.js";

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
    this.explicit = new Set(options.idempotentMethods?.map((m) => m.replace("/", ".")));
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

/**
 * Socket errors that, raised by `connect()` (or the DNS lookup before it),
 * mean no connection existed, so no request byte left the host. The same
 * codes from an established socket (`read EHOSTUNREACH` after retransmits
 * give up) say nothing about what the plugin received.
 */
const NOT_CONNECTED: ReadonlyMap<unknown, ReadonlySet<unknown>> = new Map([
  ["ECONNREFUSED", new Set(["connect"])],
  ["EHOSTUNREACH", new Set(["connect"])],
  ["ENETUNREACH", new Set(["connect"])],
  ["ENOTFOUND", new Set(["getaddrinfo", "queryA", "queryAaaa"])],
  ["EAI_AGAIN", new Set(["getaddrinfo", "queryA", "queryAaaa"])],
]);

/**
 * Marks an error raised before the call was handed to any connection (no
 * endpoint, open circuit). Such a call provably never reached a plugin.
 */
export class NotSentError extends ConnectError {
  readonly notSent = true;
}

/**
 * True only when the failed attempt provably never reached the plugin, from
 * transport-level facts observed on the host: it was refused before
 * dispatch (NotSentError), `connect()` itself failed (ECONNREFUSED and
 * friends, with `syscall === "connect"`), or the host's HTTP/2 session saw
 * the server refuse the stream (REFUSED_STREAM, which RFC 9113 §8.7
 * guarantees was not processed). Message text is never matched against
 * anything a server could have written: an error that arrived with response
 * headers or trailers came from the plugin, and a plugin's message is not
 * evidence. Everything else, resets and timeouts included, might have
 * reached it.
 */
export function neverSent(error: unknown): boolean {
  const chain: object[] = [];
  for (let e: unknown = error; typeof e === "object" && e !== null && chain.length < 8;) {
    chain.push(e);
    e = (e as { cause?: unknown }).cause;
  }
  // An answer from the server (a ConnectError carrying response metadata)
  // anywhere in the chain means the request reached a plugin.
  if (chain.some(fromServer)) return false;
  for (const e of chain) {
    if (isNotSent(e)) return true;
    const { code, syscall, message } = e as {
      code?: unknown;
      syscall?: unknown;
      message?: unknown;
    };
    if (NOT_CONNECTED.get(code)?.has(syscall) === true) return true;
    // Node's own http2 stream error (a ConnectError's code is a number, so
    // this is never wire data): Node builds its message from the RST_STREAM
    // code it received.
    if (
      code === "ERR_HTTP2_STREAM_ERROR" &&
      message === "Stream closed with error code NGHTTP2_REFUSED_STREAM"
    )
      return true;
    // The HTTP/2 client's error for the session's RST_STREAM code.
    if (isRefusedStream(e)) return true;
  }
  return false;
}

// Not instanceof: ConnectError's Symbol.hasInstance accepts any ConnectError.
function isNotSent(e: object): boolean {
  return (e as { notSent?: unknown }).notSent === true;
}

function isConnectError(e: object): e is ConnectError {
  return e instanceof ConnectError;
}

function fromServer(e: object): boolean {
  if (!isConnectError(e) || isNotSent(e)) return false;
  let any = false;
  e.metadata.forEach(() => (any = true));
  return any;
}
