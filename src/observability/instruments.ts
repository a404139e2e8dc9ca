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
 * Message sizes and counts, as the RPC conventions ask: the encoded size of
 * every request and response message in bytes
 * (`rpc.{client,server}.{request,response}.size`, one point per message, so
 * a stream records each of its messages), and the number of messages per
 * call (`rpc.{client,server}.{requests,responses}_per_rpc`, 1 for a unary
 * request). Opt-in: the interceptors see messages, not the bytes on the
 * wire, so measuring means encoding each message once more.
 */
export class MessageSizes {
  private readonly request: Histogram;
  private readonly response: Histogram;
  private readonly requests: Histogram;
  private readonly responses: Histogram;

  constructor(
    meter: Meter,
    side: "client" | "server",
    private readonly stability: SemconvStability,
  ) {
    const what = side === "client" ? "outgoing" : "incoming";
    const size = (kind: "request" | "response"): Histogram =>
      meter.createHistogram(`rpc.${side}.${kind}.size`, {
        unit: "By",
        description: `Encoded size of each ${kind} message of ${what} plugin calls.`,
        advice: { explicitBucketBoundaries: SIZE_BUCKETS_BYTES },
      });
    const count = (kind: "request" | "response"): Histogram =>
      meter.createHistogram(`rpc.${side}.${kind}s_per_rpc`, {
        unit: "{count}",
        description: `${kind === "request" ? "Request" : "Response"} messages per ${what} plugin call.`,
        advice: { explicitBucketBoundaries: COUNT_BUCKETS },
      });
    this.request = size("request");
    this.response = size("response");
    this.requests = count("request");
    this.responses = count("response");
  }

  /** One request (`input`) or response message of `method`, as it passes. */
  message(method: DescMethod, input: boolean, message: unknown, outcome: Outcome): void {
    const histogram = input ? this.request : this.response;
    histogram.record(
      encodedSize(input ? method.input : method.output, message),
      this.pick(outcome),
    );
  }

  /** How many messages went each way in a call, once it has ended. */
  counts(requests: number, responses: number, outcome: Outcome): void {
    const attrs = this.pick(outcome);
    this.requests.record(requests, attrs);
    this.responses.record(responses, attrs);
  }

  private pick(outcome: Outcome): Attributes {
    return this.stability === "stable" ? outcome.stable : outcome.old;
  }
}

/** Messages per call: 0 and 1 for unary calls, powers of two for streams. */
const COUNT_BUCKETS = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384];

const SIZE_BUCKETS_BYTES = [0, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304];

function encodedSize(schema: DescMessage, message: unknown): number {
  return toBinary(schema, message as MessageShape<DescMessage>).byteLength;
}
