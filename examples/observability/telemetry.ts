/**
 * OpenTelemetry SDK set-up shared by the demo's host and plugin: spans over
 * OTLP http/protobuf when OTEL_EXPORTER_OTLP_ENDPOINT is set, else (host
 * only) one line per span on stderr; W3C trace context; AsyncLocalStorage
 * context (so that log lines inside a call carry its ids).
 */
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BatchSpanProcessor,
  NodeTracerProvider,
  type ReadableSpan,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace-node";

/** Prints each ended span as one line: trace id, span id, parent, name. */
const printer: SpanProcessor = {
  onStart: () => {},
  onEnd: (span: ReadableSpan) => {
    const ctx = span.spanContext();
    const parent = span.parentSpanContext?.spanId ?? "-";
    process.stderr.write(`span ${ctx.traceId} ${ctx.spanId} parent ${parent} ${span.name}\n`);
  },
  forceFlush: () => Promise.resolve(),
  shutdown: () => Promise.resolve(),
};

export function startTracing(service: string, print = false): NodeTracerProvider {
  const endpoint = process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ "service.name": service }),
    spanProcessors: endpoint
      ? [new BatchSpanProcessor(new OTLPTraceExporter({ url: `${endpoint}/v1/traces` }))]
      : print
        ? [printer]
        : [],
  });
  provider.register();
  return provider;
}
