import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { PluginController } from "../gen/connectplugin/v1/controller_pb.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { signalBlind } from "../transport/signal-view.js";

/** One method's recent numbers, as the status page shows them. */
export interface MethodStats {
  /** "package.Service/Method". */
  readonly method: string;
  /** Calls finished since the stats began. */
  readonly calls: number;
  /** Of those, how many failed (calls the caller cancelled, such as a watch it stopped, do not count). */
  readonly errors: number;
  /** Calls finished per second over the last `rateWindowS` seconds. */
  readonly callsPerSecond: number;
  /**
   * Median and 99th percentile call duration over the last `windowS` seconds
   * (undefined when none finished), from a log-bucket histogram: within 10%.
   * A streaming call's duration runs until the stream ends.
   */
  readonly p50Ms: number | undefined;
  readonly p99Ms: number | undefined;
}

export interface CallStatsOptions {
  /** Seconds of history for the percentiles. Default 60. */
  readonly windowS?: number;
  /** Seconds over which calls per second are averaged. Default 10. */
  readonly rateWindowS?: number;
  /** Distinct methods tracked; calls to further ones count under "(other)". Default 200. */
  readonly maxMethods?: number;
}

// Log buckets: 8 per doubling (about 9% wide) from 1 µs up; the last one is open.
const BUCKETS_PER_DOUBLING = 8;
const FIRST_BUCKET_MS = 0.001;
const BUCKETS = 8 * 28; // up to 2^28 µs, about 4.5 minutes
const bucketOf = (ms: number): number =>
  ms <= FIRST_BUCKET_MS
    ? 0
    : Math.min(BUCKETS - 1, Math.ceil(Math.log2(ms / FIRST_BUCKET_MS) * BUCKETS_PER_DOUBLING));
const bucketUpperMs = (b: number): number => FIRST_BUCKET_MS * 2 ** (b / BUCKETS_PER_DOUBLING);

/** One second of one method: counts and a sparse histogram. */
interface Slot {
  second: number;
  calls: number;
  buckets: Map<number, number>;
}

class MethodSeries {
  calls = 0;
  errors = 0;
  private readonly slots: Slot[];
  constructor(size: number) {
    this.slots = Array.from({ length: size }, () => ({ second: -1, calls: 0, buckets: new Map() }));
  }

  record(second: number, ms: number, ok: boolean): void {
    this.calls++;
    if (!ok) this.errors++;
    const slot = this.slots[second % this.slots.length] as Slot;
    if (slot.second !== second) {
      slot.second = second;
      slot.calls = 0;
      slot.buckets.clear();
    }
    slot.calls++;
    const b = bucketOf(ms);
    slot.buckets.set(b, (slot.buckets.get(b) ?? 0) + 1);
  }

  /** Slots within the last `seconds` seconds up to `now`. */
  private recent(now: number, seconds: number): Slot[] {
    return this.slots.filter((s) => s.second > now - seconds && s.second <= now);
  }

  rate(now: number, seconds: number): number {
    // The current second is partial: average over the full seconds before it.
    const calls = this.recent(now - 1, seconds).reduce((n, s) => n + s.calls, 0);
    return calls / seconds;
  }

  percentiles(now: number, seconds: number, qs: readonly number[]): Array<number | undefined> {
    const merged = new Map<number, number>();
    let total = 0;
    for (const slot of this.recent(now, seconds)) {
      for (const [b, n] of slot.buckets) merged.set(b, (merged.get(b) ?? 0) + n);
      total += slot.calls;
    }
    if (total === 0) return qs.map(() => undefined);
    const ordered = [...merged.entries()].sort((a, b) => a[0] - b[0]);
    return qs.map((q) => {
      const rank = Math.max(1, Math.ceil(q * total));
      let seen = 0;
      for (const [b, n] of ordered) {
        seen += n;
        // The bucket's geometric middle: within half a bucket (about 4.5%) of the true value.
        if (seen >= rank)
          return b === 0 ? FIRST_BUCKET_MS : Math.sqrt(bucketUpperMs(b - 1) * bucketUpperMs(b));
      }
      return undefined;
    });
  }
}

/**
 * Handshakes and health checks (the host's, the cluster's, the status
 * page's own) are the library's traffic, not the plugin's: not counted.
 */
const CONTROL_SERVICES = new Set([PluginController.typeName, Health.typeName]);

/**
 * Per-method call counts, rates and latency percentiles, collected on the
 * host side by an interceptor, in bounded memory (a ring of one-second
 * slots per method, each a sparse log-bucket histogram). The status page
 * reads it; PluginManager keeps one per managed plugin.
 *
 * ```ts
 * const stats = new CallStats();
 * const client = new PluginClient({ ..., interceptors: [stats.interceptor] });
 * ```
 */
export class CallStats {
  private readonly methods = new Map<string, MethodSeries>();
  private readonly windowS: number;
  private readonly rateWindowS: number;
  private readonly maxMethods: number;

  constructor(
    options: CallStatsOptions = {},
    private readonly clock: () => number = () => performance.timeOrigin + performance.now(),
  ) {
    this.windowS = options.windowS ?? 60;
    this.rateWindowS = options.rateWindowS ?? 10;
    this.maxMethods = options.maxMethods ?? 200;
  }

  /** Records one finished call. */
  record(method: string, ms: number, ok: boolean): void {
    let series = this.methods.get(method);
    if (series === undefined) {
      const key = this.methods.size < this.maxMethods ? method : "(other)";
      series =
        this.methods.get(key) ?? new MethodSeries(Math.max(this.windowS, this.rateWindowS) + 1);
      this.methods.set(key, series);
    }
    series.record(Math.floor(this.clock() / 1000), ms, ok);
  }

  /** The numbers now, one entry per method, sorted by name. */
  snapshot(): MethodStats[] {
    const now = Math.floor(this.clock() / 1000);
    return [...this.methods.entries()]
      .sort((a, b) => a[0].localeCompare(b[0]))
      .map(([method, s]) => {
        const [p50Ms, p99Ms] = s.percentiles(now, this.windowS, [0.5, 0.99]);
        return {
          method,
          calls: s.calls,
          errors: s.errors,
          callsPerSecond: s.rate(now, this.rateWindowS),
          p50Ms,
          p99Ms,
        };
      });
  }

  /**
   * Times every call: unary ones until the answer, streaming ones until the
   * response stream ends or fails. Put it first in a client's interceptors
   * to time what the caller waits for, retries included.
   */
  readonly interceptor: Interceptor = signalBlind((next) => async (req) => {
    if (CONTROL_SERVICES.has(req.service.typeName)) return next(req);
    const method = `${req.service.typeName}/${req.method.name}`;
    const start = performance.now();
    const done = (ok: boolean): void => this.record(method, performance.now() - start, ok);
    let res;
    try {
      res = await next(req);
    } catch (error) {
      done(cancelled(error));
      throw error;
    }
    if (!res.stream) {
      done(true);
      return res;
    }
    const messages = res.message;
    return {
      ...res,
      message: (async function* () {
        let failed = false;
        try {
          yield* messages;
        } catch (error) {
          failed = !cancelled(error);
          throw error;
        } finally {
          done(!failed);
        }
      })(),
    };
  });
}

/** A call the caller cancelled (an aborted signal) did not fail. */
function cancelled(error: unknown): boolean {
  return ConnectError.from(error).code === Code.Canceled;
}
