import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ManagementError } from "../src/manifest/errors.js";
import { setupGeneration as setup } from "./generation-helpers.js";
import { decode, isAlive, waitFor } from "./helpers.js";

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
