import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import pg from "pg";
import type { PluginDefinition } from "../../src/plugin.js";
import { implement } from "../../src/plugin.js";
import {
  ApplyResponseSchema,
  ColumnSchema,
  ConnectResponseSchema,
  DescribeResponseSchema,
  PlanResponseSchema,
  TableSchema,
  type ApplyRequest,
  type Column,
  type ConnectRequest,
  type DescribeRequest,
  type PlanRequest,
  type Table,
} from "./gen/example/dbengine/v1/engine_pb.js";
import { DatabaseEngine, handshake } from "./shared.js";

const identifier = /^[a-z_][a-z0-9_]*$/;
const varchar = /^varchar\(([1-9][0-9]{0,4})\)$/;
const portable = new Set(["integer", "bigint", "text", "boolean", "timestamp", "double"]);

const invalid = (m: string) => new ConnectError(m, Code.InvalidArgument);
const precondition = (m: string) => new ConnectError(m, Code.FailedPrecondition);
const q = (name: string) => `"${name}"`;
const native = (t: string) => (t === "double" ? "double precision" : t);

/** Validates a desired table; primary key columns are never nullable. */
function checkTable(t: Table | undefined): Table {
  if (t === undefined) throw invalid("desired table is missing");
  if (!identifier.test(t.name)) {
    throw invalid(`table name ${JSON.stringify(t.name)} must match [a-z_][a-z0-9_]*`);
  }
  if (t.columns.length === 0) throw invalid(`table ${JSON.stringify(t.name)} has no columns`);
  const seen = new Set<string>();
  const columns = t.columns.map((c) => {
    if (!identifier.test(c.name)) {
      throw invalid(
        `column name ${JSON.stringify(c.name)} in table ${JSON.stringify(t.name)} must match [a-z_][a-z0-9_]*`,
      );
    }
    if (seen.has(c.name)) {
      throw invalid(
        `column ${JSON.stringify(c.name)} appears twice in table ${JSON.stringify(t.name)}`,
      );
    }
    seen.add(c.name);
    if (!portable.has(c.type) && !varchar.test(c.type)) {
      throw invalid(
        `column ${t.name}.${c.name} has type ${JSON.stringify(c.type)}; use one of integer, bigint, text, boolean, timestamp, double, varchar(N)`,
      );
    }
    return create(ColumnSchema, { ...c, nullable: c.nullable && !c.primaryKey });
  });
  return create(TableSchema, { name: t.name, columns });
}

const columnDef = (c: Column) => `${q(c.name)} ${native(c.type)}${c.nullable ? "" : " NOT NULL"}`;

/**
 * The statements that turn `current` (undefined: no such table) into
 * `desired`: the same rules, messages and SQL as the Go engines'
 * (go/dbengine/plan.go), for PostgreSQL.
 */
export function planChange(current: Table | undefined, desired: Table | undefined): string[] {
  const want = checkTable(desired);
  if (current === undefined) {
    const defs = want.columns.map(columnDef);
    const pk = want.columns.filter((c) => c.primaryKey).map((c) => q(c.name));
    if (pk.length > 0) defs.push(`PRIMARY KEY (${pk.join(", ")})`);
    return [`CREATE TABLE ${q(want.name)} (${defs.join(", ")})`];
  }
  const pkChange = (c: Column) =>
    precondition(`${want.name}.${c.name}: changing a table's primary key is not supported`);
  const have = new Map(current.columns.map((c) => [c.name, c]));
  const out: string[] = [];
  for (const c of want.columns) {
    const old = have.get(c.name);
    if (old === undefined) {
      if (c.primaryKey) throw pkChange(c);
      if (!c.nullable) {
        throw precondition(
          `${want.name}.${c.name}: a column added to an existing table must be nullable`,
        );
      }
      out.push(`ALTER TABLE ${q(want.name)} ADD COLUMN ${columnDef(c)}`);
      continue;
    }
    if (old.primaryKey !== c.primaryKey) throw pkChange(c);
    if (old.type !== c.type) {
      const t = native(c.type);
      out.push(
        `ALTER TABLE ${q(want.name)} ALTER COLUMN ${q(c.name)} TYPE ${t} USING ${q(c.name)}::${t}`,
      );
    }
    if (old.nullable !== c.nullable) {
      out.push(
        `ALTER TABLE ${q(want.name)} ALTER COLUMN ${q(c.name)} ${c.nullable ? "DROP NOT NULL" : "SET NOT NULL"}`,
      );
    }
  }
  const wanted = new Set(want.columns.map((c) => c.name));
  for (const c of current.columns) {
    if (wanted.has(c.name)) continue;
    if (c.primaryKey) throw pkChange(c);
    out.push(`ALTER TABLE ${q(want.name)} DROP COLUMN ${q(c.name)}`);
  }
  return out;
}

const describeSql = `
  SELECT c.table_name, c.column_name, c.data_type, c.character_maximum_length, c.is_nullable = 'YES' AS nullable,
         EXISTS (SELECT 1 FROM information_schema.table_constraints tc
                 JOIN information_schema.key_column_usage k
                   ON k.constraint_name = tc.constraint_name AND k.table_schema = tc.table_schema AND k.table_name = tc.table_name
                 WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = c.table_schema
                   AND tc.table_name = c.table_name AND k.column_name = c.column_name) AS pk
  FROM information_schema.columns c
  WHERE c.table_schema = current_schema() AND (cardinality($1::text[]) = 0 OR c.table_name = ANY($1::text[]))
  ORDER BY c.table_name, c.ordinal_position`;

function portableType(dataType: string, length: number | null): string {
  if (dataType === "timestamp without time zone") return "timestamp";
  if (dataType === "double precision") return "double";
  if (dataType === "character varying") return length === null ? "text" : `varchar(${length})`;
  return dataType;
}

/**
 * The in-tree engine: DatabaseEngine for PostgreSQL in TypeScript (node-postgres),
 * run in the host's process. It serves when no plugin is installed, when the
 * plugin fails verification, and when its restart budget is spent.
 */
export class BuiltinPostgresEngine implements ServiceImpl<typeof DatabaseEngine> {
  private readonly pools = new Map<string, pg.Pool>();

  private pool(uri: string): pg.Pool {
    if (!uri.startsWith("postgres://") && !uri.startsWith("postgresql://")) {
      throw invalid(
        `this engine serves postgres:// URIs; got ${JSON.stringify(uri.replace(/\/\/[^@/]*@/, "//…@"))}`,
      );
    }
    let pool = this.pools.get(uri);
    if (pool === undefined) {
      pool = new pg.Pool({ connectionString: uri, max: 4 });
      pool.on("error", () => undefined); // an idle client's error; the next query reports it
      this.pools.set(uri, pool);
    }
    return pool;
  }

  private async tables(uri: string, names: readonly string[]): Promise<Table[]> {
    const { rows } = await this.pool(uri).query<{
      table_name: string;
      column_name: string;
      data_type: string;
      character_maximum_length: number | null;
      nullable: boolean;
      pk: boolean;
    }>(describeSql, [names]);
    const out: Table[] = [];
    for (const r of rows) {
      let t = out.at(-1);
      if (t?.name !== r.table_name) {
        t = create(TableSchema, { name: r.table_name });
        out.push(t);
      }
      t.columns.push(
        create(ColumnSchema, {
          name: r.column_name,
          type: portableType(r.data_type, r.character_maximum_length),
          nullable: r.nullable,
          primaryKey: r.pk,
        }),
      );
    }
    return out;
  }

  async connect(req: ConnectRequest) {
    const pool = this.pool(req.uri);
    try {
      const { rows } = await pool.query<{ server_version: string }>("SHOW server_version");
      return create(ConnectResponseSchema, {
        engine: "postgresql",
        serverVersion: rows[0]?.server_version ?? "",
        implementation: "builtin",
      });
    } catch (e) {
      throw new ConnectError(
        `cannot reach the postgresql database: ${String(e)}`,
        Code.Unavailable,
      );
    }
  }

  async plan(req: PlanRequest) {
    const desired = checkTable(req.desired);
    const [current] = await this.tables(req.uri, [desired.name]);
    return create(PlanResponseSchema, { statements: planChange(current, req.desired) });
  }

  async apply(req: ApplyRequest) {
    const client = await this.pool(req.uri).connect();
    try {
      await client.query("BEGIN");
      for (const [i, stmt] of req.statements.entries()) {
        try {
          await client.query(stmt);
        } catch (e) {
          throw precondition(
            `statement ${i + 1} of ${req.statements.length} failed, nothing was applied: ${stmt}: ${String(e)}`,
          );
        }
      }
      await client.query("COMMIT");
      return create(ApplyResponseSchema, { applied: req.statements.length });
    } finally {
      await client.query("ROLLBACK").catch(() => undefined);
      client.release();
    }
  }

  async describe(req: DescribeRequest) {
    const tables = await this.tables(req.uri, req.tables);
    tables.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return create(DescribeResponseSchema, { tables });
  }

  /** Closes every pool. */
  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.end()));
    this.pools.clear();
  }
}

/** The built-in engine as a plugin definition, for `inProcess()` or `registerBuiltin()`. */
export function builtinEngine(engine = new BuiltinPostgresEngine()): PluginDefinition {
  return {
    handshake,
    plugins: {
      engine: implement(DatabaseEngine, engine, { version: "1.0.0", capabilities: ["postgresql"] }),
    },
  };
}
