/**
 * Message sizes and counts per the RPC conventions, streams included:
 * `rpc.{client,server}.{request,response}.size` gets one point per message,
 * `rpc.{client,server}.{requests,responses}_per_rpc` one per call. Read from
 * OpenTelemetry's own metrics SDK (a MeterProvider with a reader that
 * collects on demand), on both sides of an in-process plugin that runs
 * serverObservability() as serve() would. (The interceptors see the same
 * requests and responses over every transport; the sizes over a network are
 * scraped by Prometheus in observability-metrics.test.ts.)
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { MeterProvider, MetricReader, type HistogramMetricData } from "@opentelemetry/sdk-metrics";
import { PluginClient, implement, inProcess } from "../src/index.js";
import { clientObservability, serverObservability } from "../src/observability.js";
import { KV, handshake } from "../examples/kv/shared.js";
import {
  GetResponseSchema,
  PutManyResponseSchema,
  PutRequestSchema,
  WatchEventSchema,
  WatchRequestSchema,
} from "../examples/kv/gen/example/kv/v1/kv_pb.js";
import { MemoryLogger, encode } from "./helpers.js";

/** Collects when asked; nothing is exported anywhere. */
class OnDemandReader extends MetricReader {
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/** The histogram points of `name`, by `rpc.method` (stable set) and status. */
async function points(
  reader: MetricReader,
  name: string,
): Promise<Array<{ method: string; code: string; count: number; sum: number }>> {
  const { resourceMetrics } = await reader.collect();
  const out: Array<{ method: string; code: string; count: number; sum: number }> = [];
  for (const scope of resourceMetrics.scopeMetrics) {
    for (const metric of scope.metrics) {
      if (metric.descriptor.name !== name) continue;
      for (const p of (metric as HistogramMetricData).dataPoints) {
        out.push({
          method: String(p.attributes["rpc.method"]),
          code: String(p.attributes["rpc.response.status_code"] ?? "ok"),
          count: p.value.count,
          sum: p.value.sum ?? 0,
        });
      }
    }
  }
  return out;
}

function one(
  list: Array<{ method: string; code: string; count: number; sum: number }>,
  method: string,
  code = "ok",
): { count: number; sum: number } {
  const found = list.filter((p) => p.method === `example.kv.v1.KV/${method}` && p.code === code);
  assert.equal(found.length, 1, `one point for ${method} (${code}): ${JSON.stringify(list)}`);
  return { count: found[0]!.count, sum: found[0]!.sum };
}

const events = ["a", "bb", "cccc"].map((value) =>
  create(WatchEventSchema, { key: "k", value: encode(value) }),
);
const puts = ["x", "yy"].map((value) =>
  create(PutRequestSchema, { key: "p", value: encode(value) }),
);
const bytes = <T>(schema: Parameters<typeof toBinary>[0], list: readonly T[]): number =>
  list.reduce((n, m) => n + toBinary(schema, m as never).length, 0);

const streamingKV = implement(KV, {
  get: () => create(GetResponseSchema, { found: true, value: encode("v") }),
  put: () => {
    throw new ConnectError("read only", Code.FailedPrecondition);
  },
  async *watch() {
    yield* events;
  },
  async putMany(requests) {
    let count = 0;
    for await (const _ of requests) count++;
    return create(PutManyResponseSchema, { count });
  },
  async *exchange(requests) {
    for await (const r of requests) yield create(GetResponseSchema, { found: r.key === "hit" });
  },
});

describe("message sizes and counts, streams included", () => {
  for (const mode of ["direct", "serialize"] as const) {
    test(`in process (${mode}): every message measured on both sides, and the messages per call`, async () => {
      const clientReader = new OnDemandReader();
      const serverReader = new OnDemandReader();
      const options = (reader: MetricReader) => ({
        meterProvider: new MeterProvider({ readers: [reader] }),
        semconv: "stable" as const,
        messageSizes: true,
      });
      const client = new PluginClient({
        handshake,
        plugins: { kv: KV },
        source: inProcess(
          { handshake, plugins: { kv: streamingKV } },
          { mode, interceptors: [serverObservability(options(serverReader))] },
        ),
        logger: new MemoryLogger(),
        interceptors: [clientObservability(options(clientReader))],
      });
      await client.start();
      try {
        const kv = client.dispense("kv");
        const watched = [];
        for await (const e of kv.watch({ key: "k" })) watched.push(e);
        assert.equal(watched.length, 3);
        async function* send() {
          yield* puts;
        }
        assert.equal((await kv.putMany(send())).count, 2);
        async function* ask() {
          yield { key: "hit" };
          yield { key: "miss" };
          yield { key: "hit" };
          yield { key: "miss" };
        }
        let answers = 0;
        for await (const _ of kv.exchange(ask())) answers++;
        assert.equal(answers, 4);
        await assert.rejects(kv.put({ key: "p", value: encode("z") }), /read only/);

        for (const [side, reader] of [
          ["client", clientReader],
          ["server", serverReader],
        ] as const) {
          const at = `${side} (${mode})`;
          const requestSizes = await points(reader, `rpc.${side}.request.size`);
          const responseSizes = await points(reader, `rpc.${side}.response.size`);
          const requests = await points(reader, `rpc.${side}.requests_per_rpc`);
          const responses = await points(reader, `rpc.${side}.responses_per_rpc`);

          // Server streaming: one request, three measured responses.
          const watchRequest = toBinary(
            WatchRequestSchema,
            create(WatchRequestSchema, { key: "k" }),
          );
          assert.deepEqual(one(requestSizes, "Watch"), { count: 1, sum: watchRequest.length }, at);
          assert.deepEqual(
            one(responseSizes, "Watch"),
            { count: 3, sum: bytes(WatchEventSchema, events) },
            at,
          );
          assert.deepEqual(one(requests, "Watch"), { count: 1, sum: 1 }, at);
          assert.deepEqual(one(responses, "Watch"), { count: 1, sum: 3 }, at);
          // Client streaming: two measured requests, one response.
          assert.deepEqual(
            one(requestSizes, "PutMany"),
            { count: 2, sum: bytes(PutRequestSchema, puts) },
            at,
          );
          assert.equal(one(responseSizes, "PutMany").count, 1, at);
          assert.deepEqual(one(requests, "PutMany"), { count: 1, sum: 2 }, at);
          assert.deepEqual(one(responses, "PutMany"), { count: 1, sum: 1 }, at);
          // Bidi: four each way.
          assert.equal(one(requestSizes, "Exchange").count, 4, at);
          assert.equal(one(responseSizes, "Exchange").count, 4, at);
          assert.deepEqual(one(requests, "Exchange"), { count: 1, sum: 4 }, at);
          assert.deepEqual(one(responses, "Exchange"), { count: 1, sum: 4 }, at);
          // A failed unary call: its request measured under its code, no response.
          const putRequest = toBinary(
            PutRequestSchema,
            create(PutRequestSchema, { key: "p", value: encode("z") }),
          );
          assert.deepEqual(
            one(requestSizes, "Put", "failed_precondition"),
            { count: 1, sum: putRequest.length },
            at,
          );
          assert.equal(
            responseSizes.some((p) => p.method.endsWith("/Put")),
            false,
            `${at}: no response size for a failed call`,
          );
          assert.deepEqual(one(requests, "Put", "failed_precondition"), { count: 1, sum: 1 }, at);
          assert.deepEqual(one(responses, "Put", "failed_precondition"), { count: 1, sum: 0 }, at);
        }
      } finally {
        await client.close();
      }
    });
  }

  test("without messageSizes, no size or count instruments record anything", async () => {
    const reader = new OnDemandReader();
    const client = new PluginClient({
      handshake,
      plugins: { kv: KV },
      source: inProcess({ handshake, plugins: { kv: streamingKV } }),
      logger: new MemoryLogger(),
      interceptors: [
        clientObservability({
          meterProvider: new MeterProvider({ readers: [reader] }),
          semconv: "stable",
        }),
      ],
    });
    await client.start();
    try {
      for await (const _ of client.dispense("kv").watch({ key: "k" }));
      assert.equal(one(await points(reader, "rpc.client.call.duration"), "Watch").count, 1);
      assert.deepEqual(await points(reader, "rpc.client.response.size"), []);
      assert.deepEqual(await points(reader, "rpc.client.responses_per_rpc"), []);
    } finally {
      await client.close();
    }
  });
});
