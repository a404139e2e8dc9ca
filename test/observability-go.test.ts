/**
 * Tracing across languages: Go plugins instrumented with otelgrpc
 * (go-plugin) and otelconnect (connect-go) continue the TypeScript host's
 * trace, and a Go go-plugin host traced with otelgrpc calls a TypeScript
 * plugin that calls back through the GRPCBroker, all in one trace, read
 * back from a real OpenTelemetry Collector.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { GoPluginClient, PluginClient, subprocess } from "../src/index.js";
import { clientObservability } from "../src/observability.js";
import { KV, handshake } from "../examples/kv/shared.js";
import { KV as GoKV, handshake as goHandshake } from "../examples/goplugin/shared.js";
import { goBinaries, removeGoBinaries } from "./go-build.js";
import { MemoryLogger, decode, encode } from "./helpers.js";
import {
  CLIENT,
  SERVER,
  inRootSpan,
  traceOf,
  tracedCounter,
  useCollector,
  type CollectedSpan,
} from "./otel-helpers.js";

const OURS = "github.com/connect-plugin/connect-plugin/go/cmd";
const otel = useCollector();
let bin: { otelgrpc: string; connectGo: string; counterHost: string };
before(
  async () => {
    bin = await goBinaries({
      otelgrpc: `${OURS}/kv-plugin-otelgrpc`,
      connectGo: `${OURS}/kv-plugin-connect`,
      counterHost: `${OURS}/counter-host-otel`,
    });
  },
  { timeout: 600_000 },
);
after(removeGoBinaries);

describe("one trace from the host into Go plugins", () => {
  test("a go-plugin Go plugin instrumented with otelgrpc records its span in the host's trace", async () => {
    const client = new GoPluginClient({
      handshake: goHandshake,
      plugins: { kv: GoKV },
      command: bin.otelgrpc,
      env: otel.otelEnv(),
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
      const { client: c, server: s } = await traceOf(
        otel.collector,
        traceId,
        "Get",
        "kv-plugin-otelgrpc",
      );
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
      source: subprocess(bin.connectGo, [], { env: otel.otelEnv() }),
      logger: new MemoryLogger(),
      interceptors: [clientObservability()],
    });
    try {
      await client.start();
      const traceId = await inRootSpan("host request (otelconnect)", async () => {
        await client.dispense("kv").get({ key: "k" });
      });
      const { client: c, server: s } = await traceOf(
        otel.collector,
        traceId,
        "Get",
        "kv-plugin-connect",
      );
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
            ...otel.otelEnv(),
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
    const spans = await otel.collector.waitForSpans(
      "the four spans of the Go host's trace",
      (all) => {
        const mine = all.filter((s) => s.traceId === traceId);
        return mine.filter((s) => s.kind === CLIENT || s.kind === SERVER).length >= 4;
      },
    );
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
