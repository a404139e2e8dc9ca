import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ManagementError } from "../src/manifest/errors.js";
import { generationPluginDir, setupGeneration as setup } from "./generation-helpers.js";
import { decode, waitFor } from "./helpers.js";

describe("hot upgrade: rollback and drain", () => {
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
