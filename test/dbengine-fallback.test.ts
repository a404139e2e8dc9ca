/**
 * Seed 001 (SchemaHero): the in-tree TypeScript engine serves, with the
 * same results, when the installed Go plugin fails verification or has
 * spent its restart budget (dbengine.test.ts covers the plugin itself and
 * the case of no plugin installed).
 */
import assert from "node:assert/strict";
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { DatabaseEngine, handshake } from "../examples/dbengine/shared.js";
import { migrate } from "../examples/dbengine/scenario.js";
import { useDbEngineFixture } from "./dbengine-helpers.js";
import { tempDir, waitFor } from "./helpers.js";
import { cli } from "./oci-helpers.js";

describe("database-engine plugins (seed 001): the in-tree fallback", () => {
  const fx = useDbEngineFixture();
  const { freshDb, signedPlugin, hostDirs, resolver } = fx;

  let pluginResult: Awaited<ReturnType<typeof migrate>> | undefined;

  before(async () => {
    // The baseline: the built-in engine with no plugin installed
    // (dbengine.test.ts shows the plugin gives the same).
    const { manager, resolver: r } = resolver(tempDir("cp-dbe-empty-"));
    await manager.scan();
    pluginResult = await migrate(await r.engine("dbengine-postgres"), await freshDb());
  });

  test("the built-in serves when the installed plugin fails verification", async () => {
    const source = await signedPlugin(
      "dbengine-postgres",
      fx.bin["dbengine-postgres"],
      "postgresql",
    );
    const { pluginsDir, flags } = hostDirs();
    assert.equal((await cli([...flags, "install", source])).code, 0);
    appendFileSync(join(pluginsDir, "dbengine-postgres", "dbengine-postgres"), "tampered");
    const { manager, resolver: r, fallbacks } = resolver(pluginsDir);
    await manager.scan();
    const result = await migrate(await r.engine("dbengine-postgres"), await freshDb());
    assert.equal(r.lastVia?.kind, "builtin");
    assert.equal(fallbacks.length, 1);
    assert.match(
      fallbacks[0] ?? "",
      /file dbengine-postgres has digest sha256:[0-9a-f…]+, but the manifest expects sha256:/,
    );
    assert.deepEqual(result, pluginResult);
  });

  test("the built-in serves once the plugin's restart budget is spent", async () => {
    const source = await signedPlugin(
      "dbengine-postgres",
      fx.bin["dbengine-postgres"],
      "postgresql",
    );
    const { pluginsDir, flags } = hostDirs();
    assert.equal((await cli([...flags, "install", source])).code, 0);
    const { manager, resolver: r, fallbacks } = resolver(pluginsDir, { maxRestarts: 1 });
    await manager.scan();
    const engine = await r.engine("dbengine-postgres");
    const uri = await freshDb();
    await engine.connect({ uri });
    assert.deepEqual(r.lastVia, { kind: "plugin", name: "dbengine-postgres" });
    // The resolver's handle: open() returns the same one for the same options.
    const plugin = manager.open("dbengine-postgres", {
      handshake,
      plugins: { engine: DatabaseEngine },
    });
    // Two crashes: the first is restarted, the second spends the budget.
    for (let crash = 1; crash <= 2; crash++) {
      await waitFor(
        "the plugin to run",
        () => plugin.state === "running" && plugin.pid !== undefined,
      );
      process.kill(plugin.pid as number, "SIGKILL");
      await waitFor(
        crash === 1 ? "the restart" : "the budget to be spent",
        () =>
          plugin.state === (crash === 1 ? "running" : "failed") &&
          (crash === 2 || plugin.restarts === 1),
      );
      if (crash === 1) await engine.connect({ uri });
    }
    const result = await migrate(engine, uri);
    assert.equal(r.lastVia?.kind, "builtin");
    assert.match(JSON.stringify(r.lastVia), /restart budget/);
    assert.deepEqual(result, pluginResult);
    assert.ok(fallbacks.length === 0 || /restart/.test(fallbacks.join()));
  });
});
