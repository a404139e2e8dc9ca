import type { IncomingMessage, ServerResponse } from "node:http";
import type { MeterProvider } from "@opentelemetry/api";
import type { NodeHandler } from "../transport/http-server.js";
import type * as SdkMetricsModule from "@opentelemetry/sdk-metrics";
import type * as PrometheusExporterModule from "@opentelemetry/exporter-prometheus";

/**
 * Prometheus names of the instruments whose OpenTelemetry name carries no
 * unit: OpenTelemetry's Prometheus exporter adds `_total` to counters but no
 * unit suffix, and Prometheus wants base units in the name.
 */
export const PROMETHEUS_NAMES: Readonly<Record<string, string>> = {
  "rpc.client.duration": "rpc_client_duration_milliseconds",
  "rpc.server.duration": "rpc_server_duration_milliseconds",
  "rpc.client.call.duration": "rpc_client_call_duration_seconds",
  "rpc.server.call.duration": "rpc_server_call_duration_seconds",
  "rpc.client.request.size": "rpc_client_request_size_bytes",
  "rpc.client.response.size": "rpc_client_response_size_bytes",
  "rpc.server.request.size": "rpc_server_request_size_bytes",
  "rpc.server.response.size": "rpc_server_response_size_bytes",
  "connect_plugin.handshake.duration": "connect_plugin_handshake_duration_seconds",
};

/** Metrics in Prometheus' text format, from a meter provider of their own. */
export interface PrometheusMetrics {
  /** Pass it as `meterProvider` to the observability interceptors and lifecycle metrics. */
  readonly meterProvider: MeterProvider;
  /**
   * Answers a scrape with every metric in Prometheus' text exposition format.
   * Mount it on the host's own HTTP server (`GET /metrics`), or pass it to
   * serve()'s `metrics` option on a network-mode plugin.
   */
  readonly handler: NodeHandler;
  /** Stops collecting. */
  shutdown(): Promise<void>;
}

/**
 * Builds an OpenTelemetry MeterProvider whose one reader is OpenTelemetry's
 * Prometheus exporter, in pull mode (no server of its own: you mount the
 * handler). It needs the optional peer dependencies
 * `@opentelemetry/sdk-metrics` and `@opentelemetry/exporter-prometheus`.
 */
export async function prometheusMetrics(): Promise<PrometheusMetrics> {
  let sdk: typeof SdkMetricsModule;
  let exporterModule: typeof PrometheusExporterModule;
  try {
    [sdk, exporterModule] = await Promise.all([
      import("@opentelemetry/sdk-metrics"),
      import("@opentelemetry/exporter-prometheus"),
    ]);
  } catch (error) {
    throw new Error(
      "prometheusMetrics() needs the optional peer dependencies @opentelemetry/api, " +
        "@opentelemetry/sdk-metrics and @opentelemetry/exporter-prometheus; install them " +
        `(${(error as Error).message})`,
      { cause: error },
    );
  }
  const exporter = new exporterModule.PrometheusExporter({ preventServerStart: true });
  const meterProvider = new sdk.MeterProvider({
    readers: [exporter],
    views: Object.entries(PROMETHEUS_NAMES).map(([instrumentName, name]) => ({
      instrumentName,
      name,
    })),
  });
  return {
    meterProvider,
    // The exporter writes with the API that node:http and node:http2's
    // compatibility layer share (statusCode, setHeader, end).
    handler: (req, res) =>
      exporter.getMetricsRequestHandler(req as IncomingMessage, res as ServerResponse),
    shutdown: () => meterProvider.shutdown(),
  };
}
