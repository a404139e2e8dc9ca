/**
 * One schema migration, as SchemaHero runs it: connect, plan the desired
 * table, apply, describe; then change the table (add a column, drop one,
 * relax a NOT NULL), and plan once more, which must find nothing to do.
 * Used by the README walkthrough and the tests, against the plugin and the
 * built-in alike.
 */
import { create } from "@bufbuild/protobuf";
import { TableSchema, type Table } from "./gen/example/dbengine/v1/engine_pb.js";
import type { EngineClient } from "./engines.js";

export const usersV1: Table = create(TableSchema, {
  name: "users",
  columns: [
    { name: "id", type: "bigint", primaryKey: true },
    { name: "email", type: "varchar(255)" },
    { name: "created_at", type: "timestamp", nullable: true },
  ],
});

export const usersV2: Table = create(TableSchema, {
  name: "users",
  columns: [
    { name: "id", type: "bigint", primaryKey: true },
    { name: "email", type: "varchar(255)", nullable: true },
    { name: "display_name", type: "text", nullable: true },
  ],
});

/** What a migration produced, comparable across engines. */
export interface MigrationResult {
  readonly engine: string;
  readonly createPlan: string[];
  readonly afterCreate: unknown;
  readonly changePlan: string[];
  readonly afterChange: unknown;
  readonly replan: string[];
}

export async function migrate(
  engine: EngineClient,
  uri: string,
  v2: Table = usersV2,
): Promise<MigrationResult> {
  const { engine: kind } = await engine.connect({ uri });
  const createPlan = (await engine.plan({ uri, desired: usersV1 })).statements;
  await engine.apply({ uri, statements: createPlan });
  const afterCreate = (await engine.describe({ uri, tables: ["users"] })).tables;
  const changePlan = (await engine.plan({ uri, desired: v2 })).statements;
  await engine.apply({ uri, statements: changePlan });
  const afterChange = (await engine.describe({ uri, tables: ["users"] })).tables;
  const replan = (await engine.plan({ uri, desired: v2 })).statements;
  const plain = (tables: Table[]) =>
    tables.map((t) => ({
      name: t.name,
      columns: t.columns.map((c) => ({
        name: c.name,
        type: c.type,
        nullable: c.nullable,
        primaryKey: c.primaryKey,
      })),
    }));
  return {
    engine: kind,
    createPlan,
    afterCreate: plain(afterCreate),
    changePlan,
    afterChange: plain(afterChange),
    replan,
  };
}
