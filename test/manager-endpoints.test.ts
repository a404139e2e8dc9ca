import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { KV, handshake } from "../examples/kv/shared.js";
import { cluster, remote } from "../src/host/sources.js";
import { PluginManager, type ManagedEvent } from "../src/manager/manager.js";
import { decode, encode, isAlive, startNetworkPlugin } from "./helpers.js";

describe("one manager for plugins that run elsewhere (remote endpoints, clusters)", () => {
  test("a remote endpoint and a cluster are opened, called, shown in status(), upgraded, and never stopped by the host", async () => {
    const service = await startNetworkPlugin("kv");
    const events: ManagedEvent[] = [];
    const manager = new PluginManager({
      directories: [],
      onEvent: (_n, e) => events.push(e),
      liveness: { intervalMs: 100, timeoutMs: 1_000, failures: 3 },
    });
    try {
      manager.registerEndpoint("remote-kv", { source: remote(service.url), version: "0.0.1" });
      manager.registerEndpoint("cluster-kv", { source: cluster([service.url]) });
      assert.deepEqual(
        manager.list().map((e) => `${e.name}:${e.kind}`),
        ["remote-kv:endpoint", "cluster-kv:endpoint"],
      );
      const direct = manager.open("remote-kv", { handshake, plugins: { kv: KV } });
      const pooled = manager.open("cluster-kv", { handshake, plugins: { kv: KV } });
      await direct.dispense("kv").put({ key: "k", value: encode("v") });
      assert.equal(decode((await pooled.dispense("kv").get({ key: "k" })).value), "v");
      const status = manager.status();
      assert.deepEqual(
        status.map((s) => [s.name, s.kind, s.state, s.generation, s.restarts]),
        [
          ["remote-kv", "endpoint", "running", 1, 0],
          ["cluster-kv", "endpoint", "running", 1, 0],
        ],
      );
      assert.equal(status[0]?.location, new URL(service.url).toString());
      assert.match(status[1]?.location ?? "", /^cluster of /);
      const result = await manager.upgrade("remote-kv");
      assert.equal(result.generation, 2);
      assert.equal(decode((await direct.dispense("kv").get({ key: "k" })).value), "v");
      // Liveness checks ran against the endpoint without restarting it.
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(direct.restarts, 0);
      assert.equal(events.filter((e) => e.type === "unresponsive").length, 0);
    } finally {
      await manager.close();
    }
    assert.equal(
      isAlive(service.child.pid as number),
      true,
      "the host stopped a service it did not start",
    );
    await service.stop();
  });
});
