import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { KV, handshake } from "../examples/kv/shared.js";
import { ManagementError } from "../src/manifest/errors.js";
import { Installer } from "../src/manager/installer.js";
import { PluginManager, type ManagedEvent } from "../src/manager/manager.js";
import { generationPluginDir } from "./generation-helpers.js";
import { cluster, remote } from "../src/host/sources.js";
import { decode, encode, isAlive, startNetworkPlugin, tempDir, waitFor } from "./helpers.js";

/** A manager over a fresh plugins directory holding version 1 of "gen", and its ledger. */
async function setup(options: Partial<ConstructorParameters<typeof PluginManager>[0]> = {}) {
  const root = tempDir("cp-upg-");
  const plugins = join(root, "plugins");
  const installer = new Installer(plugins, { trustedKeys: [], allowUnsigned: true });
  await installer.fromDirectory(await generationPluginDir("1.0.0"));
  const events: ManagedEvent[] = [];
  const manager = new PluginManager({
    directories: [plugins],
    allowUnsigned: true,
    runDir: join(root, "run"),
    onEvent: (_name, e) => events.push(e),
    ...options,
  });
  await manager.scan();
  const ledgerFile = join(root, "ledger");
  writeFileSync(ledgerFile, "");
  const handle = manager.open("gen", {
    handshake,
    plugins: { kv: KV },
    config: { ledger: ledgerFile },
  });
  const ledger = () =>
    readFileSync(ledgerFile, "utf8")
      .split("\n")
      .filter((l) => l !== "");
  return { manager, installer, handle, events, ledger, kv: handle.dispense("kv") };
}

describe("hot upgrade of a managed plugin", () => {
  test("64 concurrent callers (unary and streams) through 20 upgrades: 0 failed, 0 executed twice, 0 lost, no leftover process", async () => {
    const { manager, installer, handle, ledger, kv, events } = await setup();
    const pids = new Set<number>();
    try {
      await kv.get({ key: "warm" });
      pids.add(handle.pid as number);
      let stop = false;
      const ok: string[] = [];
      const failed: string[] = [];
      const callers = Array.from({ length: 64 }, async (_, c) => {
        for (let i = 0; !stop; i++) {
          const id = `c${c}-${i}`;
          try {
            if (c % 4 === 0) {
              // A stream of 4 events, 10 ms apart: it spans upgrades.
              let n = 0;
              for await (const e of kv.watch({ key: `4:10:${id}` })) {
                assert.match(decode(e.value), new RegExp(`:${id}:${n}$`));
                n++;
              }
              assert.equal(n, 4, `stream ${id} ended after ${n} events`);
              ok.push(`watch:4:10:${id}`);
            } else {
              const r = await kv.get({ key: id });
              assert.match(decode(r.value), new RegExp(`:${id}$`));
              ok.push(`get:${id}`);
            }
          } catch (e) {
            failed.push(`${id}: ${String(e)}`);
          }
        }
      });
      const servingAfter: number[] = [];
      for (let v = 2; v <= 21; v++) {
        const version = `${v}.0.0`;
        const dir = await generationPluginDir(version);
        const began = performance.now();
        await installer.fromDirectory(dir);
        const installMs = performance.now() - began;
        const result = await manager.upgrade("gen");
        // Install, then verify + start + handshake + health check of the new generation.
        servingAfter.push(installMs + result.servingAfterMs);
        assert.equal(result.upgraded, true);
        assert.equal(result.abandoned, 0);
        pids.add(handle.pid as number);
        // New calls go to the new version at once.
        assert.equal(decode((await kv.get({ key: `probe-${v}` })).value), `${version}:probe-${v}`);
        ok.push(`get:probe-${v}`);
      }
      stop = true;
      await Promise.all(callers);
      assert.deepEqual(failed, [], `${failed.length} calls failed`);
      assert.ok(ok.length > 64 * 20, `only ${ok.length} calls made`);
      const lines = ledger().filter((l) => l !== "get:warm");
      const counts = new Map<string, number>();
      for (const l of lines) counts.set(l, (counts.get(l) ?? 0) + 1);
      const twice = [...counts].filter(([, n]) => n > 1);
      assert.deepEqual(twice, [], "calls executed twice");
      const lost = ok.filter((id) => !counts.has(id));
      assert.deepEqual(lost, [], "successful calls missing from the ledger");
      assert.equal(lines.length, ok.length, "executions that no caller saw succeed");
      assert.equal(handle.generation, 21);
      assert.equal(handle.restarts, 0);
      assert.equal(pids.size, 21, "one process per generation");
      const upgraded = events.filter((e) => e.type === "upgraded").length;
      const retired = events.filter((e) => e.type === "retired").length;
      assert.equal(upgraded, 20);
      assert.equal(retired, 20);
      const live = [...pids].filter(isAlive);
      assert.equal(live.length, 1, "only the newest generation runs");
      servingAfter.sort((a, b) => a - b);
      console.log(
        `# 20 upgrades under 64 callers: ${ok.length} calls, 0 failed; install to new version serving ` +
          `median ${servingAfter[10]?.toFixed(0)} ms, max ${servingAfter[19]?.toFixed(0)} ms`,
      );
    } finally {
      await manager.close();
    }
    await waitFor("every generation to exit", () => [...pids].every((p) => !isAlive(p)), 10_000);
  });

  test("a version that fails to start rolls back: the old generation keeps serving, with a clear error and event", async () => {
    const { manager, installer, handle, kv, events } = await setup();
    try {
      assert.equal(decode((await kv.get({ key: "a" })).value), "1.0.0:a");
      const pid = handle.pid;
      await installer.fromDirectory(
        await generationPluginDir(
          "2.0.0",
          'process.stderr.write("fatal: cannot open the database\\n");\nprocess.exit(3);\n',
        ),
      );
      // Calls keep going through the failed upgrade.
      const during = Promise.all(Array.from({ length: 20 }, (_, i) => kv.get({ key: `d${i}` })));
      await assert.rejects(manager.upgrade("gen"), (e: unknown) => {
        assert.ok(e instanceof ManagementError);
        assert.equal(e.kind, "upgrade-failed");
        assert.match(e.message, /upgrading plugin "gen" failed, so generation 1 keeps serving/);
        assert.match(e.message, /cannot open the database/);
        return true;
      });
      for (const r of await during) assert.match(decode(r.value), /^1\.0\.0:d/);
      assert.equal(handle.pid, pid);
      assert.equal(handle.generation, 1);
      assert.equal(decode((await kv.get({ key: "b" })).value), "1.0.0:b");
      assert.ok(events.some((e) => e.type === "upgrade-failed"));
      // A good version after a bad one upgrades normally.
      await installer.fromDirectory(await generationPluginDir("3.0.0"));
      assert.equal((await manager.upgrade("gen")).generation, 2);
      assert.equal(decode((await kv.get({ key: "c" })).value), "3.0.0:c");
    } finally {
      await manager.close();
    }
  });

  test("a version whose files changed after install fails verification and rolls back", async () => {
    const { manager, installer, kv } = await setup();
    try {
      await kv.get({ key: "a" });
      const installed = await installer.fromDirectory(await generationPluginDir("2.0.0"));
      writeFileSync(join(installed.dir, "plugin.mjs"), "process.exit(0);\n");
      await assert.rejects(manager.upgrade("gen"), (e: unknown) => {
        assert.ok(e instanceof ManagementError && e.kind === "upgrade-failed", String(e));
        assert.match(e.message, /plugin\.mjs/);
        return true;
      });
      assert.equal(decode((await kv.get({ key: "b" })).value), "1.0.0:b");
    } finally {
      await manager.close();
    }
  });

  test("a long stream finishes on the old generation while new calls go to the new one", async () => {
    const { manager, installer, kv } = await setup();
    try {
      await kv.get({ key: "a" });
      const seen: string[] = [];
      const stream = (async () => {
        for await (const e of kv.watch({ key: "6:100:long" })) seen.push(decode(e.value));
      })();
      await waitFor("the stream to begin", () => seen.length > 0);
      await installer.fromDirectory(await generationPluginDir("2.0.0"));
      const upgrading = manager.upgrade("gen");
      await waitFor(
        "the new generation",
        async () => decode((await kv.get({ key: "x" })).value).startsWith("2.0.0"),
        10_000,
      );
      const result = await upgrading;
      await stream;
      assert.equal(result.abandoned, 0);
      assert.deepEqual(
        seen,
        [0, 1, 2, 3, 4, 5].map((i) => `1.0.0:long:${i}`),
      );
    } finally {
      await manager.close();
    }
  });

  test("the drain deadline cuts off a stream that outlasts it, and says so", async () => {
    const { manager, installer, kv, events } = await setup({ drainTimeoutMs: 200 });
    try {
      await kv.get({ key: "a" });
      let error: unknown;
      let got = 0;
      const stream = (async () => {
        try {
          for await (const _ of kv.watch({ key: "100:100:long" })) got++;
        } catch (e) {
          error = e;
        }
      })();
      await waitFor("the stream to begin", () => got > 0);
      await installer.fromDirectory(await generationPluginDir("2.0.0"));
      const result = await manager.upgrade("gen");
      await stream;
      assert.equal(result.abandoned, 1);
      assert.ok(got < 100);
      assert.match(String(error), /shutting down|closed|unavailable/i);
      assert.ok(events.some((e) => e.type === "retired" && e.abandoned === 1));
    } finally {
      await manager.close();
    }
  });
});

describe("liveness of a managed plugin", () => {
  test("a plugin whose event loop is blocked is restarted within the configured time, counted against the budget", async () => {
    const { manager, handle, kv, events } = await setup({
      liveness: { intervalMs: 200, timeoutMs: 300, failures: 2 },
      restart: { maxRestarts: 3, initialBackoffMs: 10 },
      gracePeriodMs: 300,
    });
    try {
      await kv.get({ key: "a" });
      const hung = handle.pid as number;
      const began = Date.now();
      const blocked = kv.get({ key: "block" }).then(
        () => "answered",
        (e: unknown) => String(e),
      );
      await waitFor("the restart", () => handle.state === "running" && handle.pid !== hung, 10_000);
      const tookMs = Date.now() - began;
      // 2 failed checks of at most 200 + 300 ms each, plus the restart.
      assert.ok(tookMs < 5_000, `restarted after ${tookMs} ms`);
      assert.equal(decode((await kv.get({ key: "b" })).value), "1.0.0:b");
      assert.equal(handle.restarts, 1);
      const unresponsive = events.find((e) => e.type === "unresponsive");
      assert.ok(unresponsive?.type === "unresponsive");
      assert.match(unresponsive.reason, /2 health checks in a row failed/);
      assert.match(await blocked, /Unavailable|unavailable/);
      await waitFor("the hung process to be killed", () => !isAlive(hung), 10_000);
    } finally {
      await manager.close();
    }
  });

  test("a plugin that hangs again and again spends its restart budget and fails for good", async () => {
    const { manager, handle, kv } = await setup({
      liveness: { intervalMs: 100, timeoutMs: 200, failures: 1 },
      restart: { maxRestarts: 1, initialBackoffMs: 10 },
      gracePeriodMs: 200,
    });
    try {
      void kv.get({ key: "block" }).catch(() => undefined);
      await waitFor(
        "the first restart",
        () => handle.restarts === 1 && handle.state === "running",
        10_000,
      );
      void kv.get({ key: "block" }).catch(() => undefined);
      await waitFor("the budget to run out", () => handle.state === "failed", 10_000);
      await assert.rejects(kv.get({ key: "c" }), (e: unknown) => {
        assert.ok(e instanceof ManagementError && e.kind === "restart-budget-exhausted");
        assert.match(e.message, /stopped answering/);
        return true;
      });
    } finally {
      await manager.close();
    }
  });
});

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
