/**
 * Seed 001 (SchemaHero): DatabaseEngine plugins written in Go with
 * connect-go, against Debian's PostgreSQL started here and SQLite files.
 * The PostgreSQL plugin goes the whole way (go build, sign, push to
 * docker-registry, install, verify, run through PluginManager), and the
 * in-tree TypeScript engine serves, with the same results, when the plugin
 * is not installed (dbengine-fallback.test.ts: when it fails verification
 * or has spent its restart budget).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Via } from "../examples/dbengine/engines.js";
import { migrate, usersV1, usersV2 } from "../examples/dbengine/scenario.js";
import { useDbEngineFixture } from "./dbengine-helpers.js";
import { tempDir } from "./helpers.js";
import { cli } from "./oci-helpers.js";

describe("database-engine plugins (seed 001) on real databases", () => {
  const fx = useDbEngineFixture();
  const { freshDb, signedPlugin, hostDirs, resolver } = fx;

  let pluginResult: Awaited<ReturnType<typeof migrate>> | undefined;

  test("the Go PostgreSQL engine: build, sign, push, install, verify, then PluginManager runs it", async () => {
    const source = await signedPlugin(
      "dbengine-postgres",
      fx.bin["dbengine-postgres"],
      "postgresql",
    );
    const { pluginsDir, flags } = hostDirs();
    const ref = `${fx.registry.host}/plugins/dbengine-postgres:1.0.0`;
    const pushed = await cli([...flags, "push", source, ref, "--json"]);
    assert.equal(pushed.code, 0, pushed.stderr);
    const installed = await cli([...flags, "install", ref, "--json"]);
    assert.equal(installed.code, 0, installed.stderr);
    const verified = await cli([...flags, "verify", "dbengine-postgres", "--json"]);
    assert.equal(verified.code, 0, verified.stderr);

    const { manager, resolver: r, fallbacks } = resolver(pluginsDir);
    await manager.scan();
    const engine = await r.engine("dbengine-postgres");
    const uri = await freshDb();
    const hello = await engine.connect({ uri });
    assert.equal(hello.implementation, "dbengine-postgres 1.0.0 (Go)");
    assert.match(hello.serverVersion, /^\d+\.\d+/);
    pluginResult = await migrate(engine, uri);
    assert.deepEqual(r.lastVia, { kind: "plugin", name: "dbengine-postgres" } satisfies Via);
    assert.deepEqual(fallbacks, []);
    assert.deepEqual(pluginResult.createPlan, [
      'CREATE TABLE "users" ("id" bigint NOT NULL, "email" varchar(255) NOT NULL, "created_at" timestamp, PRIMARY KEY ("id"))',
    ]);
    assert.deepEqual(pluginResult.changePlan, [
      'ALTER TABLE "users" ALTER COLUMN "email" DROP NOT NULL',
      'ALTER TABLE "users" ADD COLUMN "display_name" text',
      'ALTER TABLE "users" DROP COLUMN "created_at"',
    ]);
    assert.deepEqual(pluginResult.replan, []);
    // The database itself agrees (psql, not the plugin).
    const psql = execFileSync(
      "psql",
      [
        uri,
        "-Atc",
        "SELECT column_name || ':' || data_type FROM information_schema.columns WHERE table_name='users' ORDER BY ordinal_position",
      ],
      {
        encoding: "utf8",
        env: { ...process.env, PATH: `${process.env.PATH}:/usr/lib/postgresql/15/bin` },
      },
    );
    assert.equal(psql.trim(), "id:bigint\nemail:character varying\ndisplay_name:text");
    // Bad input: a clear error, nothing applied.
    await assert.rejects(
      engine.plan({ uri, desired: { ...usersV1, name: "Users; DROP" } }),
      (e: unknown) => {
        assert.ok(e instanceof ConnectError);
        assert.equal(e.code, Code.InvalidArgument);
        assert.match(e.rawMessage, /table name "Users; DROP" must match/);
        return true;
      },
    );
    await assert.rejects(
      engine.apply({
        uri,
        statements: ['ALTER TABLE "users" ADD COLUMN "x" text', "SELECT nonsense("],
      }),
      /statement 2 of 2 failed, nothing was applied/,
    );
    assert.deepEqual(
      (await engine.describe({ uri, tables: ["users"] })).tables[0]?.columns.length,
      3,
    );
  });

  test("the built-in engine gives the same results when no plugin is installed", async () => {
    const { manager, resolver: r, fallbacks } = resolver(tempDir("cp-dbe-empty-"));
    await manager.scan();
    const engine = await r.engine("dbengine-postgres");
    const result = await migrate(engine, await freshDb());
    assert.equal(r.lastVia?.kind, "builtin");
    assert.deepEqual(fallbacks, ['plugin "dbengine-postgres" is not installed']);
    assert.ok(pluginResult !== undefined, "the plugin test ran first");
    assert.deepEqual(result, pluginResult);
    await assert.rejects(
      engine.plan({ uri: fx.pg.uri, desired: { ...usersV1, name: "Users; DROP" } }),
      /table name "Users; DROP" must match/,
    );
  });

  test("the Go SQLite engine (pure Go, no cgo) plans and applies on a SQLite file; sqlite3 reads it", async () => {
    const source = await signedPlugin("dbengine-sqlite", fx.bin["dbengine-sqlite"], "sqlite");
    const { pluginsDir, flags } = hostDirs();
    assert.equal((await cli([...flags, "install", source])).code, 0);
    const { manager, resolver: r } = resolver(pluginsDir);
    await manager.scan();
    assert.deepEqual(manager.describe("dbengine-sqlite").provides[0]?.capabilities, ["sqlite"]);
    const engine = await r.engine("dbengine-sqlite");
    const dir = tempDir("cp-sqlite-");
    mkdirSync(dir, { recursive: true });
    const file = join(dir, "app.db");
    const uri = `sqlite:${file}`;
    // SQLite cannot relax NOT NULL in place: the plan says so, naming the column.
    await migrate(engine, uri).then(
      () => assert.fail("expected the change plan to be refused"),
      (e: unknown) => {
        assert.ok(e instanceof ConnectError);
        assert.equal(e.code, Code.FailedPrecondition);
        assert.match(
          e.rawMessage,
          /users\.email: sqlite cannot change a column's nullability in place/,
        );
      },
    );
    const sqliteV2 = {
      ...usersV2,
      columns: usersV2.columns.map((c) => (c.name === "email" ? { ...c, nullable: false } : c)),
    };
    const plan = await engine.plan({ uri, desired: sqliteV2 });
    assert.deepEqual(plan.statements, [
      'ALTER TABLE "users" ADD COLUMN "display_name" TEXT',
      'ALTER TABLE "users" DROP COLUMN "created_at"',
    ]);
    await engine.apply({ uri, statements: plan.statements });
    assert.deepEqual((await engine.plan({ uri, desired: sqliteV2 })).statements, []);
    assert.equal(r.lastVia?.kind, "plugin");
    const schema = execFileSync("sqlite3", [file, ".schema users"], { encoding: "utf8" });
    assert.match(
      schema,
      /CREATE TABLE (IF NOT EXISTS )?"users" \("id" BIGINT NOT NULL, "email" VARCHAR\(255\) NOT NULL, "display_name" TEXT, PRIMARY KEY \("id"\)\)/,
    );
    assert.ok(readFileSync(file).length > 0);
    // A URI for the wrong engine is refused with the reason.
    await assert.rejects(
      engine.connect({ uri: fx.pg.uri }),
      /this engine serves sqlite:\/path\/to\/file\.db URIs; got "postgres:\/\/…@127\.0\.0\.1/,
    );
  });
});
