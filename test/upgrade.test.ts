import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { generationPluginDir, setupGeneration as setup } from "./generation-helpers.js";
import { decode, isAlive, waitFor } from "./helpers.js";

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
          // Paced, so that 64 callers stay concurrent without starving the
          // machine (and the upgrades) of CPU.
          await new Promise((r) => setTimeout(r, 5));
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
      assert.ok(
        ok.some((id) => id.startsWith("watch:")),
        "no stream completed",
      );
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
});
