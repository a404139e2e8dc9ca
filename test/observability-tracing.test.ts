/**
 * Tracing end to end: a TypeScript host and TypeScript plugins over every
 * transport, with spans exported over OTLP to a real OpenTelemetry Collector
 * (go/otelcol-test, built by scripts/setup-test-deps.sh) and read back from
 * its file exporter; the semantic-convention sets as exported.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { describe, test } from "node:test";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { context, trace } from "@opentelemetry/api";
import {
  GoPluginClient,
  PluginClient,
  inProcess,
  remote,
  subprocess,
  type PluginSource,
} from "../src/index.js";
import { implement } from "../src/plugin.js";
import {
  clientObservability,
  semconvStability,
  serverObservability,
} from "../src/observability.js";
import { KV, handshake } from "../examples/kv/shared.js";
import { MemoryKV } from "../examples/kv/memory-kv.js";
import type { GetRequest } from "../examples/kv/gen/example/kv/v1/kv_pb.js";
import { MemoryLogger, decode, encode } from "./helpers.js";
import {
  CLIENT,
  inRootSpan,
  pluginUrl,
  traceOf,
  tracedPlugin,
  useCollector,
} from "./otel-helpers.js";

const otel = useCollector();

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
        source: source(otel.otelEnv()),
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
        const { client: c, server: s } = await traceOf(
          otel.collector,
          traceId,
          "Get",
          "ts-kv-plugin",
        );
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
        env: { ...process.env, ...otel.otelEnv(), CONNECT_PLUGIN_LISTEN: "127.0.0.1:0" },
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
          const { client: c, server: s } = await traceOf(
            otel.collector,
            traceId,
            "Get",
            "ts-kv-plugin",
          );
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
      env: otel.otelEnv(),
      logger: new MemoryLogger(),
      interceptors: [clientObservability({ rpcSystem: "grpc" })],
    });
    try {
      await client.start();
      const kv = client.dispense("kv");
      const traceId = await inRootSpan("host request (go-plugin)", async () => {
        await kv.get({ key: "k" });
      });
      const { client: c, server: s } = await traceOf(
        otel.collector,
        traceId,
        "Get",
        "ts-kv-plugin",
      );
      assert.equal(s.parentSpanId, c.spanId);
      assert.equal(c.attributes["rpc.system"], "grpc");
      assert.equal(s.attributes["rpc.system"], "grpc");
    } finally {
      await client.close();
    }
  });

  for (const mode of ["direct", "serialize"] as const) {
    test(`in process (${mode}): a SERVER span in the host's trace, child of the client span; the handler sees its traceparent`, async () => {
      const seen: string[] = [];
      const active: string[] = [];
      class HeaderKV extends MemoryKV {
        override get(req: GetRequest, ctx?: HandlerContext) {
          seen.push(ctx?.requestHeader.get("traceparent") ?? "");
          active.push(trace.getSpan(context.active())?.spanContext().spanId ?? "");
          return super.get(req);
        }
      }
      const client = new PluginClient({
        handshake,
        plugins: { kv: KV },
        source: inProcess(
          { handshake, plugins: { kv: implement(KV, new HeaderKV()) } },
          { mode, interceptors: [serverObservability()] },
        ),
        logger: new MemoryLogger(),
        interceptors: [clientObservability()],
      });
      try {
        await client.start();
        const traceId = await inRootSpan(`host request (in process, ${mode})`, async () => {
          await client.dispense("kv").get({ key: "k" });
        });
        // In process, the plugin's spans are the host's: same tracer provider, same service.
        const { client: c, server: s } = await traceOf(otel.collector, traceId, "Get", "ts-host");
        assert.equal(s.traceId, c.traceId);
        assert.equal(s.parentSpanId, c.spanId, "the server span is a child of the client span");
        assert.equal(s.name, "example.kv.v1.KV/Get");
        assert.equal(s.attributes["rpc.system"], "connect_rpc");
        assert.deepEqual(seen, [`00-${traceId}-${c.spanId}-01`]);
        assert.deepEqual(active, [s.spanId], "the handler runs in the server span's context");
      } finally {
        await client.close();
      }
    });
  }
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
      const spans = await otel.collector.waitForSpans(`the ${semconv} error span`, (all) =>
        all.some((s) => s.traceId === traceId && s.kind === CLIENT),
      );
      const span = spans.find((s) => s.traceId === traceId && s.kind === CLIENT);
      assert.deepEqual(span?.attributes, expected[semconv], semconv);
      assert.deepEqual(span?.status, { code: 2, message: "no such key" });
    }
  });
});
