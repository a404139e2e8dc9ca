/**
 * What the seed 001 (SchemaHero) tests share: Debian's PostgreSQL, a
 * docker-registry and the two Go engines built once per file, and the
 * steps to sign an engine and run it through a PluginManager.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before } from "node:test";
import { PluginManager } from "../src/management.js";
import { EngineResolver } from "../examples/dbengine/engines.js";
import { packageBinaryPlugin } from "../examples/shared/package-binary.js";
import { startPostgres, type PostgresServer } from "../examples/shared/postgres.js";
import { goBinaries, removeGoBinaries } from "./go-build.js";
import { tempDir } from "./helpers.js";
import { cli, cliHost, keysOnDisk, startRegistry, type Registry } from "./oci-helpers.js";

const engineService = {
  name: "engine",
  service: "example.dbengine.v1.DatabaseEngine",
  version: "1.0.0",
};

export interface DbEngineFixture {
  /** Set once the file's `before` has run. */
  pg: PostgresServer;
  registry: Registry;
  bin: { "dbengine-postgres": string; "dbengine-sqlite": string };
  /** A new, empty database's URI. */
  freshDb: () => Promise<string>;
  /** Packages and signs a Go engine; returns the plugin directory. */
  signedPlugin: (name: string, binary: string, capability: string) => Promise<string>;
  /** A host's plugin, cache and lockfile paths, as CLI flags. */
  hostDirs: () => ReturnType<typeof cliHost>;
  /** A PluginManager over `pluginsDir` (closed after the file) and an EngineResolver that records why it fell back. */
  resolver: (
    pluginsDir: string,
    restart?: { maxRestarts: number },
  ) => { manager: PluginManager; fallbacks: string[]; resolver: EngineResolver };
}

/** Registers the file's before/after hooks (call it inside its describe) and returns the fixture. */
export function useDbEngineFixture(): DbEngineFixture {
  const keys = keysOnDisk();
  const managers: PluginManager[] = [];
  let dbCount = 0;
  const fx = {
    freshDb: () => fx.pg.createDatabase(`db${++dbCount}`),
    async signedPlugin(name: string, binary: string, capability: string): Promise<string> {
      const dir = join(tempDir("cp-dbe-src-"), name);
      await packageBinaryPlugin(dir, {
        name,
        version: "1.0.0",
        description: `DatabaseEngine for ${capability} (Go, connect-go)`,
        binary,
        plugins: [{ ...engineService, capabilities: [capability] }],
      });
      const signed = await cli(["sign", dir, "--key", keys.privateKeyFile]);
      assert.equal(signed.code, 0, signed.stderr);
      return dir;
    },
    hostDirs() {
      return cliHost(keys.trustedDir);
    },
    resolver(pluginsDir: string, restart?: { maxRestarts: number }) {
      const fallbacks: string[] = [];
      const manager = new PluginManager({
        directories: [pluginsDir],
        trustedKeysDir: keys.trustedDir,
        ...(restart !== undefined && { restart: { ...restart, initialBackoffMs: 20 } }),
      });
      managers.push(manager);
      return {
        manager,
        fallbacks,
        resolver: new EngineResolver(manager, (_p, why) => fallbacks.push(why)),
      };
    },
  } as DbEngineFixture;

  before(async () => {
    [fx.pg, fx.registry, fx.bin] = await Promise.all([
      startPostgres(),
      startRegistry("none"),
      goBinaries({
        "dbengine-postgres": "./cmd/dbengine-postgres",
        "dbengine-sqlite": "./cmd/dbengine-sqlite",
      }),
    ]);
  });
  after(async () => {
    await Promise.all(managers.map((m) => m.close()));
    await Promise.all([fx.pg?.stop(), fx.registry?.stop()]);
    removeGoBinaries();
  });
  return fx;
}
