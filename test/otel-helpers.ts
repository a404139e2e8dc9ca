/**
 * Real observability back ends for the tests: the OpenTelemetry Collector
 * that scripts/setup-test-deps.sh builds (go/otelcol-test: OTLP receiver,
 * file exporter) and Debian's Prometheus server, each on free loopback
 * ports with its data in a temporary folder; and the OpenTelemetry SDK set
 * up to export to the collector.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before } from "node:test";
import { trace } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  NodeTracerProvider,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-node";
import { freePort } from "./oci-helpers.js";
import { tempDir, waitFor } from "./helpers.js";

export const collectorBinary = fileURLToPath(new URL("../../.cache/otelcol-test", import.meta.url));

/** One span as the collector's file exporter writes it (OTLP JSON). */
export interface CollectedSpan {
  readonly service: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  /** 1 internal, 2 server, 3 client. */
  readonly kind: number;
  readonly attributes: Record<string, string | number | boolean>;
  readonly status: { code?: number; message?: string };
}

export interface Collector {
  /** The OTLP/HTTP base URL: `http://127.0.0.1:PORT`. */
  readonly endpoint: string;
  /** Every span received so far. */
  spans(): CollectedSpan[];
  /** Waits until `check` holds for the spans received, and returns them. */
  waitForSpans(what: string, check: (spans: CollectedSpan[]) => boolean): Promise<CollectedSpan[]>;
  stop(): Promise<void>;
}

export async function startCollector(): Promise<Collector> {
  if (!existsSync(collectorBinary)) {
    throw new Error(`${collectorBinary} is missing: run scripts/setup-test-deps.sh`);
  }
  const dir = tempDir("cp-otelcol-");
  const port = await freePort();
  const out = join(dir, "traces.jsonl");
  const config = join(dir, "config.yaml");
  writeFileSync(
    config,
    [
      "receivers:",
      "  otlp:",
      "    protocols:",
      "      http:",
      `        endpoint: 127.0.0.1:${port}`,
      "exporters:",
      "  file:",
      `    path: ${out}`,
      "    flush_interval: 100ms",
      "service:",
      "  telemetry:",
      "    metrics:",
      "      level: none",
      "  pipelines:",
      "    traces:",
      "      receivers: [otlp]",
      "      exporters: [file]",
      "",
    ].join("\n"),
  );
  const child = spawn(collectorBinary, ["--config", `file:${config}`], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8_000)));
  const endpoint = `http://127.0.0.1:${port}`;
  await waitFor(
    "the OpenTelemetry Collector to listen",
    async () => {
      if (child.exitCode !== null) throw new Error(`the collector exited: ${stderr}`);
      return fetch(`${endpoint}/v1/traces`, { method: "POST" }).then(
        () => true,
        () => false,
      );
    },
    60_000,
  );
  const spans = (): CollectedSpan[] =>
    existsSync(out) ? parseSpans(readFileSync(out, "utf8")) : [];
  return {
    endpoint,
    spans,
    waitForSpans: async (what, check) => {
      let found: CollectedSpan[] = [];
      await waitFor(what, () => check((found = spans())), 20_000);
      return found;
    },
    stop: () => stopChild(child),
  };
}

type AnyValue = {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  doubleValue?: number;
};

function value(v: AnyValue): string | number | boolean {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.boolValue !== undefined) return v.boolValue;
  return v.doubleValue ?? "";
}

function parseSpans(text: string): CollectedSpan[] {
  const out: CollectedSpan[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    let data: {
      resourceSpans?: Array<{
        resource?: { attributes?: Array<{ key: string; value: AnyValue }> };
        scopeSpans?: Array<{
          spans?: Array<{
            traceId: string;
            spanId: string;
            parentSpanId?: string;
            name: string;
            kind?: number;
            attributes?: Array<{ key: string; value: AnyValue }>;
            status?: { code?: number; message?: string };
          }>;
        }>;
      }>;
    };
    try {
      data = JSON.parse(line) as typeof data;
    } catch {
      continue; // a line the exporter is still writing
    }
    for (const rs of data.resourceSpans ?? []) {
      const service = rs.resource?.attributes?.find((a) => a.key === "service.name");
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          out.push({
            service: service === undefined ? "" : String(value(service.value)),
            traceId: s.traceId,
            spanId: s.spanId,
            parentSpanId: s.parentSpanId ?? "",
            name: s.name,
            kind: s.kind ?? 0,
            attributes: Object.fromEntries(
              (s.attributes ?? []).map((a) => [a.key, value(a.value)]),
            ),
            status: s.status ?? {},
          });
        }
      }
    }
  }
  return out;
}

/**
 * Registers the OpenTelemetry SDK in this process (global tracer provider,
 * AsyncLocalStorage context, W3C propagator), exporting each span to the
 * collector as it ends. `sampled: false` samples nothing (spans still
 * propagate, flagged unsampled).
 */
export function registerTracing(
  endpoint: string,
  service: string,
  sampled = true,
): NodeTracerProvider {
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ "service.name": service }),
    sampler: sampled ? new AlwaysOnSampler() : new AlwaysOffSampler(),
    spanProcessors: [
      new SimpleSpanProcessor(new OTLPTraceExporter({ url: `${endpoint}/v1/traces` })),
    ],
  });
  provider.register();
  return provider;
}

export interface PrometheusServer {
  readonly url: string;
  /** Runs an instant query and returns its vector: labels and value per series. */
  query(promql: string): Promise<Array<{ labels: Record<string, string>; value: number }>>;
  /** Waits until `promql` returns at least one series, and returns them. */
  waitForSeries(promql: string): Promise<Array<{ labels: Record<string, string>; value: number }>>;
  stop(): Promise<void>;
}

/**
 * Starts Debian's Prometheus scraping `targets` (host:port, path /metrics)
 * every 500 ms, with its storage in a temporary folder.
 */
export async function startPrometheus(targets: readonly string[]): Promise<PrometheusServer> {
  const dir = tempDir("cp-prometheus-");
  const port = await freePort();
  const config = join(dir, "prometheus.yml");
  writeFileSync(
    config,
    [
      "global:",
      "  scrape_interval: 500ms",
      "  evaluation_interval: 500ms",
      "scrape_configs:",
      "  - job_name: connect-plugin",
      "    static_configs:",
      `      - targets: [${targets.map((t) => JSON.stringify(t)).join(", ")}]`,
      "",
    ].join("\n"),
  );
  const child = spawn(
    "prometheus",
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8_000)));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    "Prometheus to be ready",
    async () => {
      if (child.exitCode !== null) throw new Error(`prometheus exited: ${stderr}`);
      return fetch(`${url}/-/ready`).then(
        (r) => r.ok,
        () => false,
      );
    },
    60_000,
  );
  const query = async (
    promql: string,
  ): Promise<Array<{ labels: Record<string, string>; value: number }>> => {
    const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await res.json()) as {
      status: string;
      error?: string;
      data?: { result: Array<{ metric: Record<string, string>; value: [number, string] }> };
    };
    if (body.status !== "success") throw new Error(`query ${promql} failed: ${body.error}`);
    return (body.data?.result ?? []).map((r) => ({ labels: r.metric, value: Number(r.value[1]) }));
  };
  return {
    url,
    query,
    waitForSeries: async (promql) => {
      let result: Array<{ labels: Record<string, string>; value: number }> = [];
      await waitFor(
        `Prometheus series for ${promql}`,
        async () => (result = await query(promql)).length > 0,
        30_000,
      );
      return result;
    },
    stop: () => stopChild(child),
  };
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}

/** Span kinds in OTLP JSON. */
export const SERVER = 2;
export const CLIENT = 3;

/** The traced KV plugin fixture and the traced go-plugin Counter fixture. */
export const tracedPlugin = fileURLToPath(new URL("./fixtures/traced-plugin.js", import.meta.url));
export const tracedCounter = fileURLToPath(
  new URL("./fixtures/traced-counter-plugin.js", import.meta.url),
);

/**
 * A collector for the test file, and the SDK registered in this process as
 * service "ts-host" (before/after hooks). `otelEnv()` points a plugin at it.
 */
export function useCollector(): {
  readonly collector: Collector;
  otelEnv(): Record<string, string>;
} {
  let collector: Collector | undefined;
  let provider: NodeTracerProvider | undefined;
  before(
    async () => {
      collector = await startCollector();
      provider = registerTracing(collector.endpoint, "ts-host");
    },
    { timeout: 120_000 },
  );
  after(async () => {
    await provider?.shutdown();
    await collector?.stop();
  });
  const get = (): Collector => {
    if (collector === undefined) throw new Error("the collector is not started");
    return collector;
  };
  return {
    get collector() {
      return get();
    },
    otelEnv: () => ({ OTEL_EXPORTER_OTLP_ENDPOINT: get().endpoint }),
  };
}

/** Runs `fn` under a fresh root span of the host; returns its trace id. */
export async function inRootSpan(name: string, fn: () => Promise<void>): Promise<string> {
  const tracer = trace.getTracer("test");
  return tracer.startActiveSpan(name, async (span) => {
    try {
      await fn();
    } finally {
      span.end();
    }
    return span.spanContext().traceId;
  });
}

/** The host's client span and the plugin's server span for `method` in one trace, once both are in. */
export async function traceOf(
  collector: Collector,
  traceId: string,
  method: string,
  pluginService: string,
): Promise<{ client: CollectedSpan; server: CollectedSpan }> {
  const isClient = (s: CollectedSpan): boolean =>
    s.traceId === traceId &&
    s.kind === CLIENT &&
    s.service === "ts-host" &&
    s.name.endsWith(method);
  const isServer = (s: CollectedSpan): boolean =>
    s.traceId === traceId &&
    s.kind === SERVER &&
    s.service === pluginService &&
    s.name.endsWith(method);
  const all = await collector.waitForSpans(
    `the ${method} spans of trace ${traceId}`,
    (spans) => spans.some(isClient) && spans.some(isServer),
  );
  const client = all.find(isClient);
  const server = all.find(isServer);
  assert.ok(client !== undefined && server !== undefined);
  return { client, server };
}

/** The URL a network-mode plugin logs when it serves. */
export function pluginUrl(child: ChildProcess): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let buffered = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      const match = /"url":"([^"]+)"/.exec(buffered);
      if (match?.[1] !== undefined) resolve(match[1]);
    });
    child.once("exit", (code) => reject(new Error(`plugin exited with ${code}: ${buffered}`)));
  });
}
