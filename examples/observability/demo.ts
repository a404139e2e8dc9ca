/**
 * `npm run demo:observability`: a host with tracing and Prometheus metrics
 * calls the KV plugin (a subprocess). The host serves /metrics on
 * 127.0.0.1:METRICS_PORT (default 9464; prometheus.yml here scrapes it),
 * makes a few calls under one root span, prints what a scrape returns, and
 * the plugin's log line with its trace and span ids. The host's spans print
 * as one line each on stderr, or all spans go over OTLP when
 * OTEL_EXPORTER_OTLP_ENDPOINT is set. With --serve it
 * keeps serving /metrics and calling once a second until Ctrl-C.
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { trace } from "@opentelemetry/api";
import { PluginClient, subprocess, type LogRecord } from "../../src/index.js";
import {
  LifecycleMetrics,
  clientObservability,
  prometheusMetrics,
} from "../../src/observability.js";
import { KV, handshake } from "../kv/shared.js";
import { startTracing } from "./telemetry.js";

const tracing = startTracing("kv-host", true);
const metrics = await prometheusMetrics();
const lifecycle = new LifecycleMetrics({ meterProvider: metrics.meterProvider });
const port = Number(process.env.METRICS_PORT ?? 9464);
const server = http.createServer((req, res) =>
  req.url === "/metrics" ? metrics.handler(req, res) : res.writeHead(404).end(),
);
await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
const metricsUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
console.log(`host metrics: ${metricsUrl}`);

const logs: LogRecord[] = [];
const client = new PluginClient({
  handshake,
  plugins: { kv: KV },
  source: subprocess(process.execPath, [fileURLToPath(new URL("./plugin.js", import.meta.url))]),
  interceptors: [clientObservability({ meterProvider: metrics.meterProvider })],
  logger: { log: (record) => logs.push(record) },
});
await lifecycle.start("kv", client);
const kv = client.dispense("kv");

async function request(): Promise<string> {
  return trace.getTracer("demo").startActiveSpan("handle request", async (span) => {
    await kv.put({ key: "greeting", value: new TextEncoder().encode("hello") });
    await kv.get({ key: "greeting" });
    span.end();
    return span.spanContext().traceId;
  });
}

const traceId = await request();
console.log(`trace ${traceId}`);
const line = logs.find((r) => r.message === "get");
console.log(
  `plugin log line "get": trace_id=${String(line?.fields.trace_id)} span_id=${String(line?.fields.span_id)}`,
);
const scrape = await (await fetch(metricsUrl)).text();
console.log(
  scrape
    .split("\n")
    .filter((l) => /^(rpc_|connect_plugin_)/.test(l))
    .join("\n"),
);

if (process.argv.includes("--serve")) {
  const timer = setInterval(() => void request(), 1_000);
  process.once("SIGINT", () => {
    clearInterval(timer);
    void shutdown();
  });
} else {
  await shutdown();
}

async function shutdown(): Promise<void> {
  await client.close();
  server.close();
  await tracing.shutdown();
  await metrics.shutdown();
}
