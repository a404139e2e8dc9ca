/**
 * Metrics end to end: Debian's Prometheus scrapes a host's /metrics and a
 * network-mode plugin's /metrics, and the test reads the series back
 * through Prometheus' HTTP query API: call durations, message sizes,
 * rate-limit refusals and the plugin lifecycle.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { describe, test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { PluginClient, cluster, remote, staticEndpoints, subprocess } from "../src/index.js";
import { Supervisor } from "../src/management.js";
import { LifecycleMetrics, clientObservability, prometheusMetrics } from "../src/observability.js";
import { KV, handshake } from "../examples/kv/shared.js";
import { GetRequestSchema } from "../examples/kv/gen/example/kv/v1/kv_pb.js";
import { MemoryLogger, waitFor } from "./helpers.js";
import { freePort } from "./oci-helpers.js";
import { pluginUrl, startPrometheus, tracedPlugin } from "./otel-helpers.js";

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
          // Per-instance negotiation would hold the dead instance out before
          // any call; without it calls reach it, and retry, trip and eject.
          negotiation: false,
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
