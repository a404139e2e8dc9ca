/**
 * `npm run bench:observability`: what tracing and metrics cost per call, on
 * the default transport (framed, unix socket, AutoMTLS), in one run with the
 * modes interleaved round by round:
 *
 * - off: no observability interceptors;
 * - api, no SDK: clientObservability()/serverObservability() with no
 *   OpenTelemetry SDK registered (OpenTelemetry's no-ops);
 * - unsampled tracing only: SDK tracer that samples nothing (trace context
 *   still propagates), both sides;
 * - metrics only: call-duration histograms into a Prometheus reader;
 * - unsampled + metrics: both of those;
 * - sampled + metrics: every call recorded on both sides and exported in
 *   batches over OTLP to the test collector (go/otelcol-test).
 *
 * Prints the unary p50 and the 64-caller throughput (medians over rounds),
 * and each mode's ratio to "off". Asserts nothing.
 */
import { propagation } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  NodeTracerProvider,
} from "@opentelemetry/sdk-trace-node";
import type { Interceptor } from "@connectrpc/connect";
import { PluginClient, silentLogger, subprocess } from "../src/index.js";
import { clientObservability, prometheusMetrics } from "../src/observability.js";
import { connectOps, fromOps, type Contender } from "./contenders.js";
import { Bench, benchHandshake } from "./service.js";
import { median, percentile, round } from "./stats.js";
import { startCollector } from "../test/otel-helpers.js";
import { fileURLToPath } from "node:url";

const quick = process.argv.includes("--quick");
const P = quick
  ? { rounds: 3, unary: 1_000, concurrentMs: 500 }
  : { rounds: 9, unary: 3_000, concurrentMs: 1_500 };
const CALLERS = 64;
const pluginMain = fileURLToPath(new URL("./observed-plugin.js", import.meta.url));

const collector = await startCollector();
propagation.setGlobalPropagator(new W3CTraceContextPropagator());
const metrics = await prometheusMetrics();
const unsampled = new NodeTracerProvider({ sampler: new AlwaysOffSampler() });
const sampled = new NodeTracerProvider({
  sampler: new AlwaysOnSampler(),
  spanProcessors: [
    new BatchSpanProcessor(new OTLPTraceExporter({ url: `${collector.endpoint}/v1/traces` })),
  ],
});

async function contender(
  name: string,
  pluginMode: string,
  interceptors: Interceptor[],
): Promise<Contender> {
  const client = new PluginClient({
    handshake: benchHandshake,
    plugins: { bench: Bench },
    source: subprocess(process.execPath, [pluginMain], {
      env: { BENCH_OBSERVE: pluginMode, OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint },
    }),
    logger: silentLogger,
    interceptors,
  });
  await client.start();
  await client.dispense("bench").echo({ value: new Uint8Array(1) });
  return fromOps(name, connectOps(client.dispense("bench")), () => client.close());
}

const contenders = [
  await contender("off", "off", []),
  await contender("api, no SDK", "noop", [clientObservability()]),
  await contender("unsampled tracing only", "tracing", [
    clientObservability({ tracerProvider: unsampled }),
  ]),
  await contender("metrics only", "metrics", [
    clientObservability({ meterProvider: metrics.meterProvider }),
  ]),
  await contender("unsampled + metrics", "sdk", [
    clientObservability({ tracerProvider: unsampled, meterProvider: metrics.meterProvider }),
  ]),
  await contender("sampled + metrics", "sdk", [
    clientObservability({ tracerProvider: sampled, meterProvider: metrics.meterProvider }),
  ]),
];

const latency = new Map<string, number[]>();
const rate = new Map<string, number[]>();
for (const c of contenders) {
  await c.unary(300, 16); // warm-up
  await c.concurrent(200, CALLERS);
}
for (let round = 0; round < P.rounds; round++) {
  process.stderr.write(`round ${round + 1} of ${P.rounds}\n`);
  // Rotate the order, so that no mode always runs first or last.
  const order = contenders.map((_, i) => contenders[(i + round) % contenders.length] as Contender);
  for (const c of order) {
    latency.set(c.name, [...(latency.get(c.name) ?? []), ...(await c.unary(P.unary, 16))]);
    rate.set(c.name, [...(rate.get(c.name) ?? []), await c.concurrent(P.concurrentMs, CALLERS)]);
  }
}
for (const c of contenders) await c.close();
await sampled.shutdown();
await metrics.shutdown();
await collector.stop();

const base = contenders[0] as Contender;
const p50Off = percentile(latency.get(base.name) ?? [], 50);
const rateOff = median(rate.get(base.name) ?? []);
console.log(
  `| mode (framed, unix socket, AutoMTLS) | unary p50 µs | p99 µs | vs off | ${CALLERS} callers calls/s | vs off |`,
);
console.log("|---|---|---|---|---|---|");
for (const c of contenders) {
  const samples = latency.get(c.name) ?? [];
  const p50 = percentile(samples, 50);
  const r = median(rate.get(c.name) ?? []);
  console.log(
    `| ${c.name} | ${round(p50)} | ${round(percentile(samples, 99))} | ` +
      `${pct(p50 / p50Off - 1)} | ${round(r)} | ${pct(r / rateOff - 1)} |`,
  );
}

function pct(x: number): string {
  return `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)}%`;
}
