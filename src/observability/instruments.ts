import { toBinary, type DescMessage, type DescMethod, type MessageShape } from "@bufbuild/protobuf";
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

/**
 * Request and response sizes of unary calls, in bytes, as protobuf encodes
 * them (`rpc.{client,server}.{request,response}.size`). Opt-in: the
 * interceptors see messages, not the bytes on the wire, so measuring means
 * encoding each message once more.
 */
export class MessageSizes {
  private readonly request: Histogram;
  private readonly response: Histogram;

  constructor(
    meter: Meter,
    side: "client" | "server",
    private readonly stability: SemconvStability,
  ) {
    const what = side === "client" ? "outgoing" : "incoming";
    const advice = { explicitBucketBoundaries: SIZE_BUCKETS_BYTES };
    this.request = meter.createHistogram(`rpc.${side}.request.size`, {
      unit: "By",
      description: `Encoded size of the request of ${what} unary plugin calls.`,
      advice,
    });
    this.response = meter.createHistogram(`rpc.${side}.response.size`, {
      unit: "By",
      description: `Encoded size of the response of ${what} unary plugin calls.`,
      advice,
    });
  }

  record(method: DescMethod, request: unknown, response: unknown, outcome: Outcome): void {
    const attrs = this.stability === "stable" ? outcome.stable : outcome.old;
    this.request.record(encodedSize(method.input, request), attrs);
    if (response !== undefined) this.response.record(encodedSize(method.output, response), attrs);
  }
}

const SIZE_BUCKETS_BYTES = [0, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304];

function encodedSize(schema: DescMessage, message: unknown): number {
  return toBinary(schema, message as MessageShape<DescMessage>).byteLength;
}
