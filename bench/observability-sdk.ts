/**
 * The OpenTelemetry set-up of one observability bench mode, as a user runs
 * it in each process (host and plugin alike): a registered Node tracer
 * provider (which also registers the AsyncLocalStorage context manager and
 * the W3C propagator), and a real MeterProvider with the Prometheus reader.
 * The connect-plugin build under test is loaded from BENCH_LIB (a dist/src
 * folder), so that one run can compare two builds.
 *
 * Modes: "off" (no interceptors), "nosdk" (interceptors, nothing
 * registered), "unsampled" (tracing SDK whose sampler drops every call:
 * ParentBased(TraceIdRatioBased(0))), "metrics" (MeterProvider + Prometheus
 * reader, no tracing SDK), "unsampled+metrics", "sampled+metrics" (every
 * call recorded and batched over OTLP to OTEL_EXPORTER_OTLP_ENDPOINT), and
 * "sdk floor" (unsampled+metrics' set-up with observability-floor.ts's
 * interceptors: only the OpenTelemetry calls).
 */
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import {
  AlwaysOnSampler,
  BatchSpanProcessor,
  NodeTracerProvider,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type Sampler,
} from "@opentelemetry/sdk-trace-node";
import type { Interceptor } from "@connectrpc/connect";
import { fileURLToPath } from "node:url";
import type * as Observability from "../src/observability.js";
import { floorInterceptor } from "./observability-floor.js";

export const MODES = [
  "off",
  "nosdk",
  "unsampled",
  "metrics",
  "unsampled+metrics",
  "sampled+metrics",
  "sdk floor",
] as const;
export type Mode = (typeof MODES)[number];

/** The dist/src folder of the build under test (this build's by default). */
export const lib = process.env.BENCH_LIB ?? fileURLToPath(new URL("../src", import.meta.url));

export interface Setup {
  readonly interceptors: (side: "client" | "server") => Interceptor[];
  shutdown(): Promise<void>;
}

export async function setUp(mode: Mode): Promise<Setup> {
  const o = (await import(`${lib}/observability.js`)) as typeof Observability;
  let tracer: NodeTracerProvider | undefined;
  const sampler = (root: Sampler): Sampler => new ParentBasedSampler({ root });
  if (mode === "unsampled" || mode === "unsampled+metrics" || mode === "sdk floor") {
    tracer = new NodeTracerProvider({ sampler: sampler(new TraceIdRatioBasedSampler(0)) });
  }
  if (mode === "sampled+metrics") {
    const endpoint = process.env.OTEL_EXPORTER_OTLP_ENDPOINT ?? "";
    tracer = new NodeTracerProvider({
      sampler: sampler(new AlwaysOnSampler()),
      spanProcessors: [
        new BatchSpanProcessor(new OTLPTraceExporter({ url: `${endpoint}/v1/traces` })),
      ],
    });
  }
  tracer?.register();
  const metrics =
    mode.endsWith("metrics") || mode === "sdk floor" ? await o.prometheusMetrics() : undefined;
  const options = metrics === undefined ? {} : { meterProvider: metrics.meterProvider };
  return {
    interceptors(side) {
      if (mode === "off") return [];
      if (mode === "sdk floor") return [floorInterceptor(side, options.meterProvider)];
      return [side === "client" ? o.clientObservability(options) : o.serverObservability(options)];
    },
    async shutdown() {
      await tracer?.shutdown();
      await metrics?.shutdown();
    },
  };
}
