import {
  Code,
  ConnectError,
  type Interceptor,
  type UnaryRequest,
  type StreamRequest,
} from "@connectrpc/connect";
import { clientAddress } from "../transport/client-address.js";
import { verifiedPrincipal } from "./auth.js";
import { signalBlind } from "../transport/signal-view.js";

export interface RateLimitOptions {
  /** Sustained calls per second allowed per client. */
  readonly perSecond: number;
  /** Calls a client may make at once after being idle. Default: perSecond. */
  readonly burst?: number;
  /**
   * Who "a client" is. Default: the identity `requireBearer`/`requireApiKey`
   * verified, when one of them runs *before* `rateLimit` in the interceptor
   * list, else the client's network address. Raw headers are never used:
   * a client could rotate junk credentials to get a fresh bucket per call.
   */
  readonly clientKey?: (req: UnaryRequest | StreamRequest) => string;
  /** Told about every refused call (LifecycleMetrics' rateLimitListener counts them). */
  readonly onRefused?: () => void;
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
      req.contextValues.get(verifiedPrincipal) ?? `addr:${req.contextValues.get(clientAddress)}`);
  return signalBlind((next) => (req) => {
    if (req.service.typeName === "grpc.health.v1.Health") return next(req);
    const key = keyOf(req);
    const now = performance.now();
    const bucket = buckets.get(key) ?? { tokens: burst, at: now };
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * options.perSecond);
    bucket.at = now;
    buckets.delete(key); // re-insert: the map's order is least recently used first
    buckets.set(key, bucket);
    if (buckets.size > MAX_BUCKETS) evictFull(buckets, burst, options.perSecond, now);
    if (bucket.tokens < 1) {
      const waitMs = Math.ceil(((1 - bucket.tokens) / options.perSecond) * 1000);
      options.onRefused?.();
      throw new ConnectError(
        `rate limit exceeded: this client may make ${options.perSecond} ` +
          `call${options.perSecond === 1 ? "" : "s"} per second ` +
          `(burst ${burst}); retry in ${waitMs} ms`,
        Code.ResourceExhausted,
      );
    }
    bucket.tokens -= 1;
    return next(req);
  });
}

const MAX_BUCKETS = 10_000;

/**
 * Forgets clients whose bucket has refilled by now (counting the refill
 * since their last call): they are indistinguishable from new ones. If that
 * frees too little, the least recently used buckets go too (Map order is
 * insertion order, and a used bucket is re-inserted), so the map stays
 * bounded and the scan runs rarely.
 */
function evictFull(
  buckets: Map<string, { tokens: number; at: number }>,
  burst: number,
  perSecond: number,
  now: number,
): void {
  for (const [key, bucket] of buckets) {
    if (bucket.tokens + ((now - bucket.at) / 1000) * perSecond >= burst) buckets.delete(key);
  }
  for (const key of buckets.keys()) {
    if (buckets.size <= MAX_BUCKETS / 2) break;
    buckets.delete(key);
  }
}
