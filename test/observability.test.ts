/**
 * Observability end to end with real back ends: spans exported over OTLP to
 * an OpenTelemetry Collector built from the Go module proxy and read back
 * from its file exporter, across every transport and into Go plugins
 * instrumented with otelgrpc and otelconnect; metrics scraped by Debian's
 * Prometheus and read back through its query API.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { context, trace } from "@opentelemetry/api";
import type { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import {
  GoPluginClient,
  PluginClient,
  cluster,
  inProcess,
  staticEndpoints,
  remote,
  subprocess,
  type PluginSource,
} from "../src/index.js";
import { implement } from "../src/plugin.js";
import { Supervisor } from "../src/management.js";
import {
  LifecycleMetrics,
  clientObservability,
  prometheusMetrics,
  semconvStability,
} from "../src/observability.js";
import { KV, handshake } from "../examples/kv/shared.js";
import { KV as GoKV, handshake as goHandshake } from "../examples/goplugin/shared.js";
import { MemoryKV } from "../examples/kv/memory-kv.js";
import { GetRequestSchema, type GetRequest } from "../examples/kv/gen/example/kv/v1/kv_pb.js";
import { create, toBinary } from "@bufbuild/protobuf";
import { goBinaries, removeGoBinaries } from "./go-build.js";
import { MemoryLogger, decode, encode, waitFor } from "./helpers.js";
import { freePort } from "./oci-helpers.js";
import {
  registerTracing,
  startCollector,
  startPrometheus,
  type CollectedSpan,
  type Collector,
} from "./otel-helpers.js";

const tracedPlugin = fileURLToPath(new URL("./fixtures/traced-plugin.js", import.meta.url));
const tracedCounter = fileURLToPath(
  new URL("./fixtures/traced-counter-plugin.js", import.meta.url),
);
const OURS = "github.com/connect-plugin/connect-plugin/go/cmd";
const SERVER = 2;
const CLIENT = 3;

let collector: Collector;
let provider: NodeTracerProvider;
let bin: { otelgrpc: string; connectGo: string; counterHost: string };

before(
  async () => {
    [collector, bin] = await Promise.all([
      startCollector(),
      goBinaries({
        otelgrpc: `${OURS}/kv-plugin-otelgrpc`,
        connectGo: `${OURS}/kv-plugin-connect`,
        counterHost: `${OURS}/counter-host-otel`,
      }),
    ]);
    provider = registerTracing(collector.endpoint, "ts-host");
  },
  { timeout: 600_000 },
);
after(async () => {
  await provider?.shutdown();
  await collector?.stop();
  removeGoBinaries();
});

/** Runs `fn` under a fresh root span of the host; returns its trace id. */
async function inRootSpan(name: string, fn: () => Promise<void>): Promise<string> {
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

/** The spans of one trace once the host's client span and the plugin's server span for `method` are in. */
async function traceOf(
  traceId: string,
  method: string,
  pluginService: string,
): Promise<{ client: CollectedSpan; server: CollectedSpan; all: CollectedSpan[] }> {
  const all = await collector.waitForSpans(`the ${method} spans of trace ${traceId}`, (spans) => {
    const mine = spans.filter((s) => s.traceId === traceId);
    return (
      mine.some((s) => s.kind === CLIENT && s.name.endsWith(method)) &&
      mine.some((s) => s.kind === SERVER && s.service === pluginService && s.name.endsWith(method))
    );
  });
  const mine = all.filter((s) => s.traceId === traceId);
  const client = mine.find(
    (s) => s.kind === CLIENT && s.service === "ts-host" && s.name.endsWith(method),
  );
  const server = mine.find(
    (s) => s.kind === SERVER && s.service === pluginService && s.name.endsWith(method),
  );
  assert.ok(client !== undefined && server !== undefined);
  return { client, server, all: mine };
}

const otelEnv = (): Record<string, string> => ({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint });

describe("one trace from the host into a TypeScript plugin", () => {
  const launched: Array<[string, (env: Record<string, string>) => PluginSource]> = [
    [
      "framed",
      (env) => subprocess(process.execPath, [tracedPlugin], { env, transports: ["framed"] }),
    ],
    [
      "HTTP/2 Connect",
      (env) => subprocess(process.execPath, [tracedPlugin], { env, transports: ["connect"] }),
    ],
  ];
  for (const [name, source] of launched) {
    test(`a launched plugin over ${name}: parent, client and server spans share the trace; the plugin's log line carries its ids`, async () => {
      const logger = new MemoryLogger();
      const client = new PluginClient({
        handshake,
        plugins: { kv: KV },
        source: source(otelEnv()),
        logger,
        interceptors: [clientObservability()],
      });
      try {
        await client.start();
        const kv = client.dispense("kv");
        let rootSpanId = "";
        const traceId = await inRootSpan(`host request (${name})`, async () => {
          rootSpanId = trace.getSpan(context.active())?.spanContext().spanId ?? "";
          await kv.put({ key: "k", value: encode("v") });
          assert.equal(decode((await kv.get({ key: "k" })).value), "v");
        });
        const { client: c, server: s } = await traceOf(traceId, "Get", "ts-kv-plugin");
        assert.equal(c.name, "example.kv.v1.KV/Get");
        assert.equal(c.parentSpanId, rootSpanId, "the client span is a child of the host's span");
        assert.equal(
          s.parentSpanId,
          c.spanId,
          "the plugin's server span is a child of the client span",
        );
        assert.deepEqual(
          [c.attributes["rpc.system"], c.attributes["rpc.service"], c.attributes["rpc.method"]],
          ["connect_rpc", "example.kv.v1.KV", "Get"],
        );
        assert.equal(s.attributes["rpc.system"], "connect_rpc");
        const line = logger.records.find((r) => r.message === "get called");
        assert.ok(line !== undefined, "the plugin's log line reached the host");
        assert.deepEqual(
          [line.fields.trace_id, line.fields.span_id, line.fields.key],
          [traceId, s.spanId, "k"],
        );
      } finally {
        await client.close();
      }
    });
  }

  for (const protocol of ["connect", "grpc", "grpc-web"] as const) {
    test(`a network-mode plugin over ${protocol}`, async () => {
      const child = spawn(process.execPath, [tracedPlugin], {
        env: { ...process.env, ...otelEnv(), CONNECT_PLUGIN_LISTEN: "127.0.0.1:0" },
        stdio: ["ignore", "ignore", "pipe"],
      });
      try {
        const url = await pluginUrl(child);
        const client = new PluginClient({
          handshake,
          plugins: { kv: KV },
          source: remote(url, { protocol }),
          logger: new MemoryLogger(),
          interceptors: [clientObservability()],
        });
        try {
          await client.start();
          const kv = client.dispense("kv");
          const traceId = await inRootSpan(`host request (${protocol})`, async () => {
            await kv.get({ key: "k" });
          });
          const { client: c, server: s } = await traceOf(traceId, "Get", "ts-kv-plugin");
          assert.equal(s.parentSpanId, c.spanId);
          assert.equal(
            s.attributes["rpc.system"],
            protocol === "connect" ? "connect_rpc" : protocol === "grpc" ? "grpc" : "grpc_web",
            "the server tells the protocol from the content type",
          );
        } finally {
          await client.close();
        }
      } finally {
        child.kill("SIGTERM");
      }
    });
  }

  test("go-plugin protocol: GoPluginClient launches the TypeScript plugin over gRPC", async () => {
    const client = new GoPluginClient({
      handshake,
      plugins: { kv: KV },
      command: process.execPath,
      args: [tracedPlugin],
      env: otelEnv(),
      logger: new MemoryLogger(),
      interceptors: [clientObservability({ rpcSystem: "grpc" })],
    });
    try {
      await client.start();
      const kv = client.dispense("kv");
      const traceId = await inRootSpan("host request (go-plugin)", async () => {
        await kv.get({ key: "k" });
      });
      const { client: c, server: s } = await traceOf(traceId, "Get", "ts-kv-plugin");
      assert.equal(s.parentSpanId, c.spanId);
      assert.equal(c.attributes["rpc.system"], "grpc");
      assert.equal(s.attributes["rpc.system"], "grpc");
    } finally {
      await client.close();
    }
  });

  for (const mode of ["direct", "serialize"] as const) {
    test(`in process (${mode}): the handler sees the client span's traceparent`, async () => {
      const seen: string[] = [];
      class HeaderKV extends MemoryKV {
        override get(req: GetRequest, ctx?: HandlerContext) {
          seen.push(ctx?.requestHeader.get("traceparent") ?? "");
          return super.get(req);
        }
      }
      const client = new PluginClient({
        handshake,
        plugins: { kv: KV },
        source: inProcess({ handshake, plugins: { kv: implement(KV, new HeaderKV()) } }, { mode }),
        logger: new MemoryLogger(),
        interceptors: [clientObservability()],
      });
      try {
        await client.start();
        const traceId = await inRootSpan(`host request (in process, ${mode})`, async () => {
          await client.dispense("kv").get({ key: "k" });
        });
        const spans = await collector.waitForSpans("the in-process client span", (all) =>
          all.some((s) => s.traceId === traceId && s.kind === CLIENT),
        );
        const c = spans.find((s) => s.traceId === traceId && s.kind === CLIENT);
        assert.deepEqual(seen, [`00-${traceId}-${c?.spanId}-01`]);
      } finally {
        await client.close();
      }
    });
  }
});

describe("one trace from the host into Go plugins", () => {
  test("a go-plugin Go plugin instrumented with otelgrpc records its span in the host's trace", async () => {
    const client = new GoPluginClient({
      handshake: goHandshake,
      plugins: { kv: GoKV },
      command: bin.otelgrpc,
      env: otelEnv(),
      logger: new MemoryLogger(),
      interceptors: [clientObservability({ rpcSystem: "grpc" })],
    });
    try {
      await client.start();
      const kv = client.dispense("kv");
      const traceId = await inRootSpan("host request (otelgrpc)", async () => {
        await kv.put({ key: "k", value: encode("go") });
        assert.equal(decode((await kv.get({ key: "k" })).value), "go");
      });
      const { client: c, server: s } = await traceOf(traceId, "Get", "kv-plugin-otelgrpc");
      assert.equal(c.name, "proto.KV/Get");
      assert.equal(s.name, "proto.KV/Get");
      assert.equal(s.parentSpanId, c.spanId, "otelgrpc continued the host's span");
    } finally {
      await client.close();
    }
  });

  test("a connect-go plugin instrumented with otelconnect records its span in the host's trace", async () => {
    const client = new PluginClient({
      handshake,
      plugins: { kv: KV },
      source: subprocess(bin.connectGo, [], { env: otelEnv() }),
      logger: new MemoryLogger(),
      interceptors: [clientObservability()],
    });
    try {
      await client.start();
      const traceId = await inRootSpan("host request (otelconnect)", async () => {
        await client.dispense("kv").get({ key: "k" });
      });
      const { client: c, server: s } = await traceOf(traceId, "Get", "kv-plugin-connect");
      assert.equal(s.name, "example.kv.v1.KV/Get");
      assert.equal(s.parentSpanId, c.spanId, "otelconnect continued the host's span");
    } finally {
      await client.close();
    }
  });
});

describe("a Go go-plugin host with otelgrpc, a TypeScript plugin, and a broker callback", () => {
  test("host call, plugin span, call back through the GRPCBroker and the host's callback span form one trace", async () => {
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        bin.counterHost,
        ["hits", "3"],
        {
          env: {
            ...process.env,
            ...otelEnv(),
            COUNTER_PLUGIN: `"${process.execPath}" "${tracedCounter}"`,
          },
          timeout: 60_000,
        },
        (error, stdout, stderr) =>
          error ? reject(new Error(`${error.message}\n${stdout}${stderr}`)) : resolve(stdout),
      ),
    );
    const traceId = out.trim();
    assert.match(traceId, /^[0-9a-f]{32}$/);
    const spans = await collector.waitForSpans("the four spans of the Go host's trace", (all) => {
      const mine = all.filter((s) => s.traceId === traceId);
      return mine.filter((s) => s.kind === CLIENT || s.kind === SERVER).length >= 4;
    });
    const mine = spans.filter((s) => s.traceId === traceId);
    const find = (service: string, kind: number, name: string): CollectedSpan => {
      const span = mine.find((s) => s.service === service && s.kind === kind && s.name === name);
      assert.ok(
        span,
        `${service} ${kind} ${name} in ${JSON.stringify(mine.map((s) => [s.service, s.kind, s.name]))}`,
      );
      return span;
    };
    const hostPut = find("go-counter-host", CLIENT, "proto.Counter/Put");
    const pluginPut = find("ts-counter-plugin", SERVER, "proto.Counter/Put");
    const pluginSum = find("ts-counter-plugin", CLIENT, "proto.AddHelper/Sum");
    const hostSum = find("go-counter-host", SERVER, "proto.AddHelper/Sum");
    assert.equal(
      pluginPut.parentSpanId,
      hostPut.spanId,
      "the Go host's traceparent reached the plugin",
    );
    assert.equal(
      pluginSum.parentSpanId,
      pluginPut.spanId,
      "the call back runs inside the plugin's span",
    );
    assert.equal(
      hostSum.parentSpanId,
      pluginSum.spanId,
      "the broker callback carried the traceparent back",
    );
  });
});

describe("semantic conventions", () => {
  test("OTEL_SEMCONV_STABILITY_OPT_IN picks the set: unset → old, rpc → stable, rpc/dup → both", () => {
    assert.equal(semconvStability(undefined), "old");
    assert.equal(semconvStability("http"), "old");
    assert.equal(semconvStability("http,rpc"), "stable");
    assert.equal(semconvStability("rpc, rpc/dup"), "dup");
  });

  test("an error's attributes and status under each set, as exported", async () => {
    class FailingKV extends MemoryKV {
      override get(): never {
        throw new ConnectError("no such key", Code.NotFound);
      }
    }
    const failing = implement(KV, new FailingKV());
    const expected = {
      old: {
        "rpc.system": "connect_rpc",
        "rpc.service": "example.kv.v1.KV",
        "rpc.method": "Get",
        "rpc.connect_rpc.error_code": "not_found",
      },
      stable: {
        "rpc.system.name": "connectrpc",
        "rpc.method": "example.kv.v1.KV/Get",
        "rpc.response.status_code": "not_found",
        "error.type": "not_found",
      },
      dup: {
        "rpc.system": "connect_rpc",
        "rpc.service": "example.kv.v1.KV",
        "rpc.method": "example.kv.v1.KV/Get",
        "rpc.connect_rpc.error_code": "not_found",
        "rpc.system.name": "connectrpc",
        "rpc.response.status_code": "not_found",
        "error.type": "not_found",
      },
    } as const;
    for (const semconv of ["old", "stable", "dup"] as const) {
      const client = new PluginClient({
        handshake,
        plugins: { kv: KV },
        source: inProcess({ handshake, plugins: { kv: failing } }),
        logger: new MemoryLogger(),
        interceptors: [clientObservability({ semconv })],
      });
      await client.start();
      const traceId = await inRootSpan(`semconv ${semconv}`, async () => {
        await assert.rejects(client.dispense("kv").get({ key: "x" }), /no such key/);
      });
      await client.close();
      const spans = await collector.waitForSpans(`the ${semconv} error span`, (all) =>
        all.some((s) => s.traceId === traceId && s.kind === CLIENT),
      );
      const span = spans.find((s) => s.traceId === traceId && s.kind === CLIENT);
      assert.deepEqual(span?.attributes, expected[semconv], semconv);
      assert.deepEqual(span?.status, { code: 2, message: "no such key" });
    }
  });
});

describe("metrics scraped by Prometheus", () => {
  test("a host's /metrics and a network-mode plugin's /metrics, read back through Prometheus' query API", async () => {
    const metrics = await prometheusMetrics();
    const server = http.createServer((req, res) => {
      if (req.url === "/metrics") metrics.handler(req, res);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const hostTarget = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    const child = spawn(process.execPath, [tracedPlugin], {
      env: {
        ...process.env,
        CONNECT_PLUGIN_LISTEN: "127.0.0.1:0",
        TRACED_METRICS: "1",
        OTEL_SEMCONV_STABILITY_OPT_IN: "rpc",
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    const url = await pluginUrl(child);
    const prometheus = await startPrometheus([hostTarget, new URL(url).host]);
    const client = new PluginClient({
      handshake,
      plugins: { kv: KV },
      source: remote(url),
      logger: new MemoryLogger(),
      interceptors: [
        clientObservability({
          meterProvider: metrics.meterProvider,
          semconv: "stable",
          messageSizes: true,
        }),
      ],
    });
    try {
      await client.start();
      const kv = client.dispense("kv");
      for (let i = 0; i < 5; i++) await kv.get({ key: "k" });
      const hostSeries = await prometheus.waitForSeries(
        `rpc_client_call_duration_seconds_count{rpc_method="example.kv.v1.KV/Get", instance="${hostTarget}"} >= 5`,
      );
      assert.equal(hostSeries[0]?.labels.rpc_system_name, "connectrpc");
      const pluginSeries = await prometheus.waitForSeries(
        `rpc_server_call_duration_seconds_count{rpc_method="example.kv.v1.KV/Get", instance="${new URL(url).host}"} >= 5`,
      );
      assert.equal(pluginSeries[0]?.value, 5);
      const buckets = await prometheus.query(
        `rpc_client_call_duration_seconds_bucket{rpc_method="example.kv.v1.KV/Get", le="+Inf"}`,
      );
      assert.equal(buckets[0]?.value, 5, "the histogram has its +Inf bucket, in seconds");
      const requestBytes = toBinary(
        GetRequestSchema,
        create(GetRequestSchema, { key: "k" }),
      ).length;
      const sizes = await prometheus.waitForSeries(
        `rpc_client_request_size_bytes_sum{rpc_method="example.kv.v1.KV/Get"}`,
      );
      assert.equal(sizes[0]?.value, 5 * requestBytes, "five requests' encoded bytes");
      // Past the plugin's burst of 20 calls, rateLimit() refuses, and says so.
      const results = await Promise.allSettled(
        Array.from({ length: 25 }, () => kv.get({ key: "k" })),
      );
      const refused = results.filter((r) => r.status === "rejected").length;
      assert.ok(refused > 0, "some calls were refused");
      const refusals = await prometheus.waitForSeries(
        `connect_plugin_rate_limit_refusals_total >= ${refused}`,
      );
      assert.equal(refusals[0]?.value, refused);
      const exhausted = await prometheus.waitForSeries(
        `rpc_server_call_duration_seconds_count{rpc_response_status_code="resource_exhausted"} >= ${refused}`,
      );
      assert.equal(exhausted[0]?.labels.error_type, "resource_exhausted");
    } finally {
      await client.close();
      child.kill("SIGTERM");
      await prometheus.stop();
      server.close();
      await metrics.shutdown();
    }
  });
});

describe("lifecycle metrics scraped by Prometheus", () => {
  test("starts, start time, plugins up, a crash and its restart; a cluster's retries, circuit and ejection", async () => {
    const metrics = await prometheusMetrics();
    const lifecycle = new LifecycleMetrics({ meterProvider: metrics.meterProvider });
    const server = http.createServer((req, res) => metrics.handler(req, res));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const target = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    const prometheus = await startPrometheus([target]);
    const network = spawn(process.execPath, [tracedPlugin], {
      env: { ...process.env, CONNECT_PLUGIN_LISTEN: "127.0.0.1:0" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    const supervisor = new Supervisor(
      () =>
        new PluginClient({
          handshake,
          plugins: { kv: KV },
          source: subprocess(process.execPath, [tracedPlugin]),
          logger: new MemoryLogger(),
        }),
      { name: "kv", onEvent: lifecycle.supervisorListener("kv") },
    );
    const closedPort = await freePort();
    let clustered: PluginClient<{ kv: typeof KV }> | undefined;
    try {
      const first = await supervisor.get();
      await prometheus.waitForSeries(`connect_plugin_plugins_up{plugin="kv"} == 1`);
      process.kill(first.pid ?? 0, "SIGKILL");
      await waitFor(
        "the restart",
        () => supervisor.restarts === 1 && supervisor.state === "running",
        30_000,
      );
      const restarts = await prometheus.waitForSeries(
        `connect_plugin_plugin_restarts_total{plugin="kv", reason="crash"} == 1`,
      );
      assert.equal(restarts[0]?.value, 1);
      const starts = await prometheus.waitForSeries(
        `connect_plugin_plugin_starts_total{plugin="kv", outcome="ok"} == 2`,
      );
      assert.equal(starts[0]?.value, 2);
      await prometheus.waitForSeries(
        `connect_plugin_handshake_duration_seconds_count{plugin="kv"} == 2`,
      );
      await prometheus.waitForSeries(`connect_plugin_plugins_up{plugin="kv"} == 1`);

      const url = await pluginUrl(network);
      clustered = new PluginClient({
        handshake,
        plugins: { kv: KV },
        source: cluster({
          discovery: staticEndpoints([`http://127.0.0.1:${closedPort}`, url]),
          balancer: "round-robin",
          health: false,
          circuitBreaker: { failureThreshold: 2, openMs: 60_000 },
          onEvent: lifecycle.clusterListener("kv"),
        }),
        logger: new MemoryLogger(),
      });
      await clustered.start();
      for (let i = 0; i < 6; i++) await clustered.dispense("kv").get({ key: "k" });
      const retries = await prometheus.waitForSeries(
        `connect_plugin_cluster_retries_total{cluster="kv", method="example.kv.v1.KV/Get"} >= 1`,
      );
      assert.ok((retries[0]?.value ?? 0) >= 1);
      await prometheus.waitForSeries(
        `connect_plugin_circuit_state_changes_total{cluster="kv", state="open"} == 1`,
      );
      await prometheus.waitForSeries(
        `connect_plugin_cluster_ejections_total{cluster="kv", reason="circuit"} == 1`,
      );
      const byState = await prometheus.waitForSeries(
        `connect_plugin_cluster_endpoints{cluster="kv", state="circuit-open"} == 1`,
      );
      assert.equal(byState[0]?.value, 1);
      const healthy = await prometheus.query(
        `connect_plugin_cluster_endpoints{cluster="kv", state="healthy"}`,
      );
      assert.equal(healthy[0]?.value, 1);
    } finally {
      await clustered?.close();
      await supervisor.close();
      network.kill("SIGTERM");
      await prometheus.stop();
      server.close();
      await metrics.shutdown();
    }
  });
});

/** The URL a network-mode plugin logs when it serves. */
function pluginUrl(child: ReturnType<typeof spawn>): Promise<string> {
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
