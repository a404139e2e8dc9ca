/**
 * OpenTelemetry SDK set-up shared by the demo's host and plugin: spans over
 * OTLP http/protobuf when OTEL_EXPORTER_OTLP_ENDPOINT is set, else printed
 * to stderr; W3C trace context; AsyncLocalStorage context (so that log
 * lines inside a call carry its ids).
 */
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BatchSpanProcessor,
  ConsoleSpanExporter,
  NodeTracerProvider,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-node";

export function startTracing(service: string): NodeTracerProvider {
  const endpoint = process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ "service.name": service }),
    spanProcessors: [
      endpoint
        ? new BatchSpanProcessor(new OTLPTraceExporter({ url: `${endpoint}/v1/traces` }))
        : new SimpleSpanProcessor(new ConsoleSpanExporter()),
    ],
  });
  provider.register();
  return provider;
}
