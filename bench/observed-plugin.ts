/**
 * The bench plugin as the observability benchmark runs it, per
 * BENCH_OBSERVE: "off" (no interceptor), "noop" (serverObservability() with
 * no OpenTelemetry SDK), "tracing" (the tracing SDK registered, parent-based
 * sampling, spans batched to OTEL_EXPORTER_OTLP_ENDPOINT), "metrics"
 * (histograms into a Prometheus reader, no tracing SDK), or "sdk" (both).
 */
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import {
  AlwaysOnSampler,
  BatchSpanProcessor,
  NodeTracerProvider,
  ParentBasedSampler,
} from "@opentelemetry/sdk-trace-node";
import { serve } from "../src/plugin.js";
import { prometheusMetrics, serverObservability } from "../src/observability.js";
import { benchPlugin } from "./service.js";

const mode = process.env.BENCH_OBSERVE ?? "off";
let interceptors: ReturnType<typeof serverObservability>[] = [];
if (mode === "noop") interceptors = [serverObservability()];
if (mode === "tracing" || mode === "sdk") {
  const endpoint = process.env.OTEL_EXPORTER_OTLP_ENDPOINT ?? "";
  new NodeTracerProvider({
    sampler: new ParentBasedSampler({ root: new AlwaysOnSampler() }),
    spanProcessors: [
      new BatchSpanProcessor(new OTLPTraceExporter({ url: `${endpoint}/v1/traces` })),
    ],
  }).register();
}
if (mode === "tracing") interceptors = [serverObservability()];
if (mode === "metrics" || mode === "sdk") {
  const metrics = await prometheusMetrics();
  interceptors = [serverObservability({ meterProvider: metrics.meterProvider })];
}
await serve(benchPlugin(), { interceptors });
