import { createNoopMeter, type Histogram, type Meter } from "@opentelemetry/api";
import type { Attributes, Outcome, SemconvStability } from "./semconv.js";

/**
 * Bucket boundaries for call durations, in seconds: plugin calls range from
 * tens of microseconds (framed, in process) to seconds (remote), so the
 * buckets start far below OpenTelemetry's default of 5 ms.
 */
const DURATION_BUCKETS_S = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
  5, 10,
];

/**
 * The per-call duration histogram(s) of one side, as the chosen conventions
 * name them: `rpc.{client,server}.duration` in milliseconds (older set),
 * `rpc.{client,server}.call.duration` in seconds (stable set), or both. A
 * histogram's count is the number of calls by service, method and code.
 */
export class CallDurations {
  private readonly old: Histogram | undefined;
  private readonly stable: Histogram | undefined;
  /**
   * False when the meter is OpenTelemetry's no-op (no MeterProvider was
   * registered when the interceptor was made: the API hands out no-op
   * meters for good then), so that calls can skip the bookkeeping.
   */
  readonly enabled: boolean;

  constructor(meter: Meter, side: "client" | "server", stability: SemconvStability) {
    const what = side === "client" ? "outgoing" : "incoming";
    if (stability !== "stable") {
      this.old = meter.createHistogram(`rpc.${side}.duration`, {
        unit: "ms",
        description: `Duration of ${what} plugin calls (older RPC conventions).`,
        advice: { explicitBucketBoundaries: DURATION_BUCKETS_S.map((s) => s * 1e3) },
      });
    }
    if (stability !== "old") {
      this.stable = meter.createHistogram(`rpc.${side}.call.duration`, {
        unit: "s",
        description: `Duration of ${what} plugin calls.`,
        advice: { explicitBucketBoundaries: DURATION_BUCKETS_S },
      });
    }

    const h = this.old ?? this.stable;
    this.enabled = h !== undefined && !(h instanceof NOOP_HISTOGRAM);
  }

  record(ms: number, outcome: Outcome): void {
    this.old?.record(ms, outcome.old);
    this.stable?.record(ms / 1e3, outcome.stable);
  }
}

/** The class of OpenTelemetry's no-op histogram, to recognise one. */
const NOOP_HISTOGRAM = createNoopMeter().createHistogram("noop").constructor as new () => Histogram;

export type { Attributes };
