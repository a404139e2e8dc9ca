/**
 * The attribute sets of the observability interceptors are built once per
 * (method, RPC system) and per error code, then reused by every call: a new
 * method or code gets a set of its own, and however many calls go through,
 * the number of sets (and so of metric series) stays bounded by methods ×
 * systems × codes.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { SpanKind } from "@opentelemetry/api";
import { CallObserver } from "../../../src/observability/call-observer.js";
import { MethodAttributes, type RpcSystem } from "../../../src/observability/semconv.js";
import { prometheusMetrics } from "../../../src/observability.js";
import { Bench } from "../../../bench/service.js";

const codes = Object.values(Code).filter((c): c is Code => typeof c === "number");
const systems: RpcSystem[] = ["connect_rpc", "grpc", "grpc_web"];

describe("observability attribute cache", () => {
  test("one set per method and system, reused by every call", async () => {
    const metrics = await prometheusMetrics();
    try {
      const observer = new CallObserver("server", { meterProvider: metrics.meterProvider });
      const echo = observer.attributes(Bench.method.echo, "connect_rpc");
      assert.equal(observer.attributes(Bench.method.echo, "connect_rpc"), echo);
      assert.deepEqual(echo.span, {
        "rpc.system": "connect_rpc",
        "rpc.service": "bench.v1.BenchService",
        "rpc.method": "Echo",
      });
      assert.deepEqual(echo.start, { kind: SpanKind.SERVER, attributes: echo.span });

      const stream = observer.attributes(Bench.method.stream, "connect_rpc");
      assert.notEqual(stream, echo);
      assert.equal(stream.span["rpc.method"], "Stream");
      const grpc = observer.attributes(Bench.method.echo, "grpc");
      assert.notEqual(grpc, echo);
      assert.equal(grpc.span["rpc.system"], "grpc");

      const seen = new Set<MethodAttributes>();
      for (let i = 0; i < 1_000; i++) {
        for (const method of [Bench.method.echo, Bench.method.stream]) {
          for (const system of systems) seen.add(observer.attributes(method, system));
        }
      }
      assert.equal(seen.size, 2 * systems.length);
    } finally {
      await metrics.shutdown();
    }
  });

  test("a client's spans start as CLIENT spans", () => {
    const observer = new CallObserver("client", {});
    assert.equal(observer.attributes(Bench.method.echo, "grpc").start.kind, SpanKind.CLIENT);
  });

  test("one outcome per error code, with that code; success has none", () => {
    const attrs = new MethodAttributes("dup", "connect_rpc", "s.v1.S", "M", SpanKind.CLIENT);
    assert.deepEqual(attrs.ok.old, {
      "rpc.system": "connect_rpc",
      "rpc.service": "s.v1.S",
      "rpc.method": "M",
    });
    const notFound = attrs.error(Code.NotFound);
    assert.equal(attrs.error(Code.NotFound), notFound);
    assert.equal(notFound.old["rpc.connect_rpc.error_code"], "not_found");
    assert.equal(notFound.stable["rpc.response.status_code"], "not_found");
    assert.equal(notFound.stable["error.type"], "not_found");
    const unavailable = attrs.error(Code.Unavailable);
    assert.notEqual(unavailable, notFound);
    assert.equal(unavailable.old["rpc.connect_rpc.error_code"], "unavailable");

    const outcomes = new Set(
      Array.from({ length: 100 }, () => codes.map((c) => attrs.error(c))).flat(),
    );
    assert.equal(outcomes.size, codes.length);
    assert.ok(!outcomes.has(attrs.ok));
  });

  test("gRPC calls carry the numeric status, 0 on success", () => {
    const attrs = new MethodAttributes("old", "grpc", "s.v1.S", "M", SpanKind.SERVER);
    assert.equal(attrs.ok.old["rpc.grpc.status_code"], 0);
    assert.equal(attrs.error(Code.Internal).old["rpc.grpc.status_code"], Code.Internal);
  });
});
