/**
 * Seed 002 (StormDB): a Go workload plugin that owns its pgx pool, against
 * Debian's PostgreSQL started here. A run of concurrent workers survives a
 * SIGKILL of the plugin: the supervisor restarts it, and every operation is
 * accounted for (acknowledged and in the table exactly once, or reported
 * failed), thanks to idempotency keys.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import pg from "pg";
import { ManagementError, PluginManager } from "../src/management.js";
import { runWorkload } from "../examples/workload/runner.js";
import { Workload, handshake, workloadConfigSchema } from "../examples/workload/shared.js";
import { packageBinaryPlugin } from "../examples/shared/package-binary.js";
import { startPostgres, type PostgresServer } from "../examples/shared/postgres.js";
import { goBinaries, removeGoBinaries } from "./go-build.js";
import { tempDir, waitFor } from "./helpers.js";
import { keysOnDisk, signAndInstall } from "./oci-helpers.js";

describe("workload plugins (seed 002) on real PostgreSQL", () => {
  let server: PostgresServer;
  let manager: PluginManager;
  let db: pg.Pool;
  let dsn: string;

  before(async () => {
    const keys = keysOnDisk();
    const [srv, bin] = await Promise.all([
      startPostgres(),
      goBinaries({ "workload-postgres": "./cmd/workload-postgres" }),
    ]);
    server = srv;
    dsn = await server.createDatabase("bench");
    db = new pg.Pool({ connectionString: dsn, max: 2 });
    db.on("error", () => undefined); // an idle client told that the server is stopping
    const dir = join(tempDir("cp-wl-"), "workload-postgres");
    await packageBinaryPlugin(dir, {
      name: "workload-postgres",
      version: "1.0.0",
      description: "StormDB-style insert workload (Go, pgx pool owned by the plugin)",
      binary: bin["workload-postgres"],
      plugins: [
        {
          name: "workload",
          service: Workload.typeName,
          version: "1.0.0",
          capabilities: ["postgresql", "idempotent-insert"],
        },
      ],
      configSchema: workloadConfigSchema,
    });
    const pluginsDir = await signAndInstall(dir, keys);
    manager = new PluginManager({
      directories: [pluginsDir],
      trustedKeysDir: keys.trustedDir,
      restart: { maxRestarts: 3, initialBackoffMs: 50 },
    });
    await manager.scan();
  });
  after(async () => {
    await manager?.close();
    await db?.end();
    await server?.stop();
    removeGoBinaries();
  });

  test("configuration is validated against the manifest's schema before the plugin starts", () => {
    for (const [config, message] of [
      [
        {},
        /configuration for plugin "workload-postgres" is invalid: \(config\): must have required property 'dsn' \(dsn\)/,
      ],
      [{ dsn: "mysql://x" }, /dsn: must match pattern "\^postgres\(ql\)\?:\/\/"/],
      [{ dsn, maxConns: 0 }, /maxConns: must be >= 1/],
      [{ dsn, pool: "*sql.DB" }, /must NOT have additional properties/],
    ] as const) {
      assert.throws(
        () =>
          manager.open("workload-postgres", { handshake, plugins: { workload: Workload }, config }),
        (e: unknown) =>
          e instanceof ManagementError && e.kind === "invalid-config" && message.test(e.message),
      );
    }
  });

  test("N workers, the plugin SIGKILLed mid-run and restarted: every operation accounted for, none lost, none doubled", async () => {
    const plugin = manager.open("workload-postgres", {
      handshake,
      plugins: { workload: Workload },
      config: { dsn, table: "ops", maxConns: 8 },
    });
    const workload = plugin.dispense("workload");
    assert.equal((await workload.health({})).ok, true);

    // Metrics stream while the run goes on (it ends when the plugin dies).
    const snapshots: bigint[] = [];
    const metrics = (async () => {
      try {
        for await (const s of workload.metrics({ intervalMs: 50 })) snapshots.push(s.operations);
      } catch (e) {
        return e;
      }
      return undefined;
    })();

    const workers = 8;
    const opsPerWorker = 60;
    let killedPid: number | undefined;
    const report = await runWorkload(workload, {
      workers,
      opsPerWorker,
      keyPrefix: "run1",
      onAck: (n) => {
        if (n === 120 && killedPid === undefined && plugin.pid !== undefined) {
          killedPid = plugin.pid;
          process.kill(killedPid, "SIGKILL");
        }
      },
    });
    assert.ok(killedPid !== undefined, "the plugin was killed during the run");
    assert.equal(plugin.restarts, 1, "the supervisor restarted it once");
    assert.notEqual(plugin.pid, killedPid);
    const streamEnd = await metrics;
    assert.ok(
      streamEnd instanceof ConnectError && streamEnd.code === Code.Unavailable,
      `metrics stream ended with ${String(streamEnd)}`,
    );
    assert.ok(
      snapshots.length > 0 && (snapshots.at(-1) ?? 0n) > 0n,
      "metrics streamed while the run went on",
    );

    const total = workers * opsPerWorker;
    assert.equal(
      report.acked.size + report.failed.size,
      total,
      "every operation is acknowledged or reported failed",
    );
    assert.deepEqual([...report.failed], [], "no operation failed after retries");
    const { rows } = await db.query<{ idempotency_key: string }>("SELECT idempotency_key FROM ops");
    const inDb = new Set(rows.map((r) => r.idempotency_key));
    assert.equal(rows.length, inDb.size, "no key twice (primary key)");
    assert.equal(inDb.size, total, "every acknowledged operation is in the table, exactly once");
    for (const key of report.acked)
      assert.ok(inDb.has(key), `${key} acknowledged but not in the table`);
    assert.ok(report.retries > 0, "some calls were cut by the kill and retried");
    console.log(
      `# ${total} ops by ${workers} workers; plugin pid ${killedPid} SIGKILLed after 120 acks; ` +
        `${report.retries} retried attempts, ${report.duplicates} acknowledged as duplicates (written before the kill), 0 lost, 0 doubled`,
    );
  });

  test("ExecuteBatch is one transaction and idempotent; Cleanup drops the table", async () => {
    const workload = manager
      .open("workload-postgres", {
        handshake,
        plugins: { workload: Workload },
        config: { dsn, table: "ops", maxConns: 8 },
      })
      .dispense("workload");
    const ops = Array.from({ length: 10 }, (_, i) => ({
      idempotencyKey: `batch-${i}`,
      worker: 99,
      seq: BigInt(i),
      payload: "b",
    }));
    const first = await workload.executeBatch({ ops });
    assert.deepEqual(
      first.results.map((r) => r.applied),
      Array(10).fill(true),
    );
    const again = await workload.executeBatch({ ops });
    assert.deepEqual(
      again.results.map((r) => r.duplicate),
      Array(10).fill(true),
    );
    await assert.rejects(
      workload.executeBatch({
        ops: [
          { idempotencyKey: "batch-new", worker: 1, seq: 1n, payload: "" },
          { idempotencyKey: "", worker: 1, seq: 2n, payload: "" },
        ],
      }),
      /operation 2 of the batch has no idempotency_key; nothing was applied/,
    );
    assert.equal(
      (await db.query("SELECT 1 FROM ops WHERE idempotency_key = 'batch-new'")).rowCount,
      0,
    );
    await workload.cleanup({ dropTable: true });
    const { rows } = await db.query<{ t: string | null }>("SELECT to_regclass('ops')::text AS t");
    assert.equal(rows[0]?.t, null);
    await waitFor("the handle to stay usable", async () => (await workload.health({})).ok);
  });
});
