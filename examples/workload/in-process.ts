import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import pg from "pg";
import { implement, type PluginDefinition } from "../../src/plugin.js";
import {
  CleanupResponseSchema,
  ExecuteBatchResponseSchema,
  ExecuteResponseSchema,
  HealthResponseSchema,
  MetricsSnapshotSchema,
  OperationResultSchema,
  type CleanupRequest,
  type ExecuteBatchRequest,
  type ExecuteRequest,
  type MetricsRequest,
  type MetricsSnapshot,
  type Operation,
} from "./gen/example/workload/v1/workload_pb.js";
import { Workload, handshake, type WorkloadConfig } from "./shared.js";

/**
 * The same workload in TypeScript (node-postgres), for running in the host's
 * process with `inProcess()`: the baseline the benchmark compares the Go
 * plugin against. Same SQL, same idempotency rule.
 */
export class InProcessWorkload implements ServiceImpl<typeof Workload> {
  private readonly pool: pg.Pool;
  private readonly table: string;
  private ready = false;
  private operations = 0n;
  private duplicates = 0n;
  private errors = 0n;

  constructor(config: WorkloadConfig) {
    this.table = config.table ?? "workload_ops";
    this.pool = new pg.Pool({ connectionString: config.dsn, max: config.maxConns ?? 8 });
    this.pool.on("error", () => undefined);
  }

  private async ensureTable(): Promise<void> {
    if (this.ready) return;
    await this.pool.query(
      `CREATE TABLE IF NOT EXISTS "${this.table}" (idempotency_key text PRIMARY KEY, worker integer NOT NULL, ` +
        `seq bigint NOT NULL, payload text NOT NULL, written_at timestamptz NOT NULL DEFAULT now())`,
    );
    this.ready = true;
  }

  private insert(client: pg.Pool | pg.PoolClient, op: Operation) {
    return client.query(
      `INSERT INTO "${this.table}" (idempotency_key, worker, seq, payload) VALUES ($1, $2, $3, $4) ON CONFLICT (idempotency_key) DO NOTHING`,
      [op.idempotencyKey, op.worker, op.seq.toString(), op.payload],
    );
  }

  private result(key: string, applied: boolean, micros: number) {
    this.operations++;
    if (!applied) this.duplicates++;
    return create(OperationResultSchema, {
      idempotencyKey: key,
      applied,
      duplicate: !applied,
      dbMicros: BigInt(micros),
    });
  }

  async execute(req: ExecuteRequest) {
    const op = req.op;
    if (op === undefined || op.idempotencyKey === "") {
      throw new ConnectError("an operation needs an idempotency_key", Code.InvalidArgument);
    }
    await this.ensureTable();
    const start = performance.now();
    try {
      const res = await this.insert(this.pool, op);
      const micros = Math.round((performance.now() - start) * 1000);
      return create(ExecuteResponseSchema, {
        result: this.result(op.idempotencyKey, res.rowCount === 1, micros),
      });
    } catch (e) {
      this.errors++;
      throw new ConnectError(`operation ${op.idempotencyKey}: ${String(e)}`, Code.Unavailable);
    }
  }

  async executeBatch(req: ExecuteBatchRequest) {
    await this.ensureTable();
    const start = performance.now();
    const client = await this.pool.connect();
    try {
      await client.query("BEGIN");
      const applied: boolean[] = [];
      for (const [i, op] of req.ops.entries()) {
        if (op.idempotencyKey === "") {
          throw new ConnectError(
            `operation ${i + 1} of the batch has no idempotency_key; nothing was applied`,
            Code.InvalidArgument,
          );
        }
        applied.push((await this.insert(client, op)).rowCount === 1);
      }
      await client.query("COMMIT");
      const micros = Math.round((performance.now() - start) * 1000);
      return create(ExecuteBatchResponseSchema, {
        results: req.ops.map((op, i) =>
          this.result(op.idempotencyKey, applied[i] === true, micros),
        ),
      });
    } catch (e) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw e;
    } finally {
      client.release();
    }
  }

  async *metrics(req: MetricsRequest, ctx: HandlerContext): AsyncIterable<MetricsSnapshot> {
    const interval = req.intervalMs > 0 ? req.intervalMs : 1000;
    while (!ctx.signal.aborted) {
      yield create(MetricsSnapshotSchema, {
        operations: this.operations,
        duplicates: this.duplicates,
        errors: this.errors,
        poolTotal: this.pool.totalCount,
        poolIdle: this.pool.idleCount,
      });
      await new Promise((r) => setTimeout(r, interval));
    }
  }

  async health() {
    try {
      await this.pool.query("SELECT 1");
      return create(HealthResponseSchema, {
        ok: true,
        detail: `pool: ${this.pool.totalCount} connections`,
      });
    } catch (e) {
      return create(HealthResponseSchema, { ok: false, detail: String(e) });
    }
  }

  async cleanup(req: CleanupRequest) {
    if (req.dropTable) {
      await this.pool.query(`DROP TABLE IF EXISTS "${this.table}"`);
      this.ready = false;
    }
    return create(CleanupResponseSchema, {});
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}

export function inProcessWorkload(impl: InProcessWorkload): PluginDefinition {
  return { handshake, plugins: { workload: implement(Workload, impl, { version: "1.0.0" }) } };
}
