/**
 * `npm run bench:workload`: what a workload plugin costs per operation next
 * to the database's own latency (seed 002). One PostgreSQL server started
 * here, one INSERT ... ON CONFLICT DO NOTHING per operation, three paths:
 *
 * - node-postgres straight from the host: the database's latency as a
 *   client in this process sees it (the floor),
 * - the TypeScript workload run in process (`inProcess()`),
 * - the Go workload plugin as a subprocess (connect-go, pgx pool), whose
 *   own measurement of its database time is reported beside it.
 *
 * Prints medians and p99 for sequential operations, and operations per
 * second with 8 concurrent workers. Only ratios within one run mean much:
 * this machine's speed moves between runs.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import pg from "pg";
import { PluginClient, inProcess, subprocess, type PluginSource } from "../src/index.js";
import { startPostgres } from "../examples/shared/postgres.js";
import { InProcessWorkload, inProcessWorkload } from "../examples/workload/in-process.js";
import { runWorkload } from "../examples/workload/runner.js";
import { Workload, handshake } from "../examples/workload/shared.js";

const SEQUENTIAL = Number(process.env.BENCH_OPS ?? 2000);
const CONCURRENT_OPS = Number(process.env.BENCH_CONCURRENT_OPS ?? 400);
const WORKERS = 8;

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};
const us = (n: number) => `${Math.round(n)} µs`;

const goModule = fileURLToPath(new URL("../../go", import.meta.url));
const binDir = mkdtempSync(join(tmpdir(), "cp-wlbench-"));
const plugin = join(binDir, "workload-postgres");
await promisify(execFile)("go", ["build", "-o", plugin, "./cmd/workload-postgres"], {
  cwd: goModule,
});

const server = await startPostgres();
try {
  const dsn = await server.createDatabase("bench");
  const config = { dsn, maxConns: WORKERS };
  const rows: string[][] = [];

  // 1. The floor: node-postgres from the host.
  {
    const pool = new pg.Pool({ connectionString: dsn, max: WORKERS });
    await pool.query(
      "CREATE TABLE direct_ops (idempotency_key text PRIMARY KEY, worker integer NOT NULL, seq bigint NOT NULL, payload text NOT NULL, written_at timestamptz NOT NULL DEFAULT now())",
    );
    const insert = (key: string, w: number, seq: number) =>
      pool.query(
        "INSERT INTO direct_ops (idempotency_key, worker, seq, payload) VALUES ($1, $2, $3, $4) ON CONFLICT (idempotency_key) DO NOTHING",
        [key, w, seq, "payload"],
      );
    for (let i = 0; i < 200; i++) await insert(`warm-${i}`, 0, i);
    const lat: number[] = [];
    for (let i = 0; i < SEQUENTIAL; i++) {
      const t = performance.now();
      await insert(`seq-${i}`, 0, i);
      lat.push((performance.now() - t) * 1000);
    }
    const t = performance.now();
    await Promise.all(
      Array.from({ length: WORKERS }, async (_, w) => {
        for (let i = 0; i < CONCURRENT_OPS; i++) await insert(`conc-${w}-${i}`, w, i);
      }),
    );
    const rate = (WORKERS * CONCURRENT_OPS) / ((performance.now() - t) / 1000);
    rows.push([
      "node-postgres direct (the database)",
      us(pct(lat, 50)),
      us(pct(lat, 99)),
      "—",
      "—",
      rate.toFixed(0),
    ]);
    await pool.end();
  }

  const measure = async (label: string, source: PluginSource, table: string) => {
    const client = new PluginClient({ handshake, plugins: { workload: Workload }, source });
    await client.start();
    const workload = client.dispense("workload");
    await runWorkload(workload, { workers: 1, opsPerWorker: 200, keyPrefix: `${table}-warm` });
    const seq = await runWorkload(workload, {
      workers: 1,
      opsPerWorker: SEQUENTIAL,
      keyPrefix: `${table}-seq`,
    });
    const t = performance.now();
    const conc = await runWorkload(workload, {
      workers: WORKERS,
      opsPerWorker: CONCURRENT_OPS,
      keyPrefix: `${table}-conc`,
    });
    const rate = conc.acked.size / ((performance.now() - t) / 1000);
    const overhead = seq.latencies.map((l, i) => l - (seq.dbLatencies[i] ?? 0));
    rows.push([
      label,
      us(pct(seq.latencies, 50)),
      us(pct(seq.latencies, 99)),
      us(pct(seq.dbLatencies, 50)),
      us(pct(overhead, 50)),
      rate.toFixed(0),
    ]);
    await client.close();
  };

  // 2. The TypeScript workload in process.
  const impl = new InProcessWorkload({ ...config, table: "inproc_ops" });
  await measure("TS workload, in process", inProcess(inProcessWorkload(impl)), "inproc");
  await impl.close();

  // 3. The Go plugin as a subprocess.
  await measure(
    "Go workload plugin, subprocess",
    subprocess(plugin, [], {
      env: { CONNECT_PLUGIN_CONFIG: JSON.stringify({ ...config, table: "plugin_ops" }) },
    }),
    "plugin",
  );

  const header = [
    "path",
    "p50 per op",
    "p99 per op",
    "db time p50 (measured inside)",
    "overhead p50 (op − db)",
    `ops/s, ${WORKERS} workers`,
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => "| " + r.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ") + " |";
  console.log(
    `\nWorkload plugin overhead: ${SEQUENTIAL} sequential INSERTs per path, then ${WORKERS}×${CONCURRENT_OPS} concurrent; PostgreSQL ${server.port} on loopback\n`,
  );
  console.log(line(header));
  console.log("|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|");
  for (const r of rows) console.log(line(r));
} finally {
  await server.stop();
  rmSync(binDir, { recursive: true, force: true });
}
