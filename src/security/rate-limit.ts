import {
  Code,
  ConnectError,
  type Interceptor,
  type UnaryRequest,
  type StreamRequest,
} from "@connectrpc/connect";
import { clientAddress } from "../plugin/client-address.js";

export interface RateLimitOptions {
  /** Sustained calls per second allowed per client. */
  readonly perSecond: number;
  /** Calls a client may make at once after being idle. Default: perSecond. */
  readonly burst?: number;
  /**
   * Who "a client" is. Default: its credentials (authorization or x-api-key
   * header) when it sends any, else its network address: behind a proxy many
   * hosts share an address, while a credential names one caller.
   */
  readonly clientKey?: (req: UnaryRequest | StreamRequest) => string;
}

/**
 * Plugin side: a token bucket per client. A call over the limit fails at
 * once with ResourceExhausted and a message that says when to try again;
 * nothing queues, so a noisy client cannot fill the plugin's memory.
 * Health checks are not counted.
 */
export function rateLimit(options: RateLimitOptions): Interceptor {
  const burst = options.burst ?? options.perSecond;
  const buckets = new Map<string, { tokens: number; at: number }>();
  const keyOf =
    options.clientKey ??
    ((req) =>
      req.header.get("authorization") ??
      req.header.get("x-api-key") ??
      `addr:${req.contextValues.get(clientAddress)}`);
  return (next) => (req) => {
    if (req.service.typeName === "grpc.health.v1.Health") return next(req);
    const key = keyOf(req);
    const now = performance.now();
    const bucket = buckets.get(key) ?? { tokens: burst, at: now };
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * options.perSecond);
    bucket.at = now;
    buckets.set(key, bucket);
    if (buckets.size > 10_000) evictFull(buckets, burst);
    if (bucket.tokens < 1) {
      const waitMs = Math.ceil(((1 - bucket.tokens) / options.perSecond) * 1000);
      throw new ConnectError(
        `rate limit exceeded: this client may make ${options.perSecond} calls per second ` +
          `(burst ${burst}); retry in ${waitMs} ms`,
        Code.ResourceExhausted,
      );
    }
    bucket.tokens -= 1;
    return next(req);
  };
}

/** Forgets clients whose bucket has refilled: they are indistinguishable from new ones. */
function evictFull(buckets: Map<string, { tokens: number }>, burst: number): void {
  for (const [key, bucket] of buckets) if (bucket.tokens >= burst) buckets.delete(key);
}
