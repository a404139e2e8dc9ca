/**
 * Seed 000 (SQLTraceBench): SQL dialect plugins, one in Go (connect-go) and
 * one in Python (grpcio, gRPC), launched by the same TypeScript host through
 * the same interface. A real MySQL schema is converted to PostgreSQL and to
 * SQLite, loaded into Debian's PostgreSQL (started here) and into sqlite3,
 * and translated queries give the same rows on both.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { PluginClient, subprocess } from "../src/index.js";
import { convertWith } from "../examples/dialect/convert.js";
import { dialectPlugins, handshake } from "../examples/dialect/shared.js";
import { postgresBinDir, startPostgres, type PostgresServer } from "../examples/shared/postgres.js";
import { goBinaries, removeGoBinaries } from "./go-build.js";
import { tempDir } from "./helpers.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const schema = readFileSync(join(root, "examples/dialect/sample/shop.mysql.sql"), "utf8");
const python = join(root, ".venv/bin/python");
const pythonPlugin = [python, join(root, "examples/dialect/python/plugin.py")];

const seed = [
  "INSERT INTO `customers` (`email`, `active`, `balance`, `notes`) VALUES ('ada@example.com', TRUE, 10.50, NULL)",
  "INSERT INTO `customers` (`email`, `active`, `balance`, `notes`) VALUES ('bob@example.com', FALSE, 0, 'vip')",
  "INSERT INTO `customers` (`email`, `active`, `balance`, `notes`) VALUES ('cy@example.com', TRUE, 3, NULL)",
  "INSERT INTO `orders` (`customer_id`, `status`, `total`, `placed_at`) VALUES (1, 'paid', 20.5, '2026-01-02 10:00:00')",
  "INSERT INTO `orders` (`customer_id`, `total`, `placed_at`) VALUES (3, 7.25, '2026-01-03 11:00:00')",
];
const query =
  "SELECT c.`email`, IFNULL(c.`notes`, 'none') AS notes, COUNT(o.`id`) AS orders FROM `customers` c " +
  "LEFT JOIN `orders` o ON o.`customer_id` = c.`id` GROUP BY c.`id`, c.`email`, c.`notes` ORDER BY c.`id` LIMIT 1, 2";

/** Runs `use` against the dialect plugin `command`, then closes it. */
async function withDialect<T>(
  command: readonly string[],
  use: (client: PluginClient<typeof dialectPlugins>) => Promise<T>,
): Promise<T> {
  const [cmd, ...args] = command;
  const client = new PluginClient({
    handshake,
    plugins: dialectPlugins,
    source: subprocess(cmd as string, args),
  });
  await client.start();
  try {
    return await use(client);
  } finally {
    await client.close();
  }
}

describe("SQL dialect plugins (seed 000): Go and Python behind one interface", () => {
  let pg: PostgresServer;
  let goPlugin: string[];
  before(async () => {
    assert.ok(
      existsSync(python),
      "the Python venv is missing: run scripts/setup-test-deps.sh (or examples/dialect/python/generate.sh)",
    );
    const [server, bin] = await Promise.all([
      startPostgres(),
      goBinaries({ "dialect-go": "./cmd/dialect-go" }),
    ]);
    pg = server;
    goPlugin = [bin["dialect-go"]];
  });
  after(async () => {
    await pg?.stop();
    removeGoBinaries();
  });

  test("both plugins announce the same contract and refuse bad input alike", async () => {
    for (const [command, version] of [
      [goPlugin, "1.0.0-go"],
      [pythonPlugin, "1.0.0-python"],
    ] as const) {
      await withDialect(command, async (client) => {
        assert.deepEqual(
          client.availablePlugins.map((p) => [p.name, p.service, p.version, p.capabilities]),
          [
            [
              "schema",
              "example.dialect.v1.SchemaConverter",
              version,
              ["mysql->postgresql", "mysql->sqlite"],
            ],
            [
              "query",
              "example.dialect.v1.QueryTranslator",
              version,
              ["mysql->postgresql", "mysql->sqlite"],
            ],
          ],
        );
        assert.equal(await client.health(), "serving");
        // Bad input: a clear InvalidArgument from either language.
        await assert.rejects(
          client
            .dispense("schema")
            .convertSchema({ sourceDialect: "oracle", targetDialect: "sqlite", ddl: "" }),
          (e: unknown) =>
            e instanceof ConnectError &&
            e.code === Code.InvalidArgument &&
            /unsupported source dialect "oracle" \(supported: mysql\)/.test(e.rawMessage),
        );
        await assert.rejects(
          client.dispense("schema").convertSchema({
            sourceDialect: "mysql",
            targetDialect: "sqlite",
            ddl: "DROP TABLE `x`;",
          }),
          /only CREATE TABLE statements are supported; got: DROP TABLE `x`/,
        );
      });
    }
  });

  test("a MySQL schema converted by each plugin loads into PostgreSQL and SQLite; translated queries agree", async () => {
    const results: Record<string, string> = {};
    for (const target of ["postgresql", "sqlite"]) {
      const fromGo = await convertWith(goPlugin, target, schema);
      const fromPython = await convertWith(pythonPlugin, target, schema);
      assert.equal(fromPython.ddl, fromGo.ddl, `Go and Python convert to ${target} alike`);
      assert.deepEqual(fromPython.warnings, fromGo.warnings);
      assert.ok(fromGo.warnings.includes("customers.id: UNSIGNED dropped"));
      assert.ok(
        fromGo.warnings.includes("orders.status: ENUM became TEXT with a CHECK constraint"),
      );
      results[target] = fromGo.ddl;
    }
    assert.match(results.postgresql ?? "", /"id" SERIAL,/);
    assert.match(results.sqlite ?? "", /"id" INTEGER PRIMARY KEY AUTOINCREMENT/);

    // Translate the seed rows and the query with the Python plugin for one
    // target and the Go plugin for the other: same interface.
    const translateAll = (command: string[], target: string) =>
      withDialect(command, async (client) => {
        const out: string[] = [];
        for (const sql of [...seed, query]) {
          const res = await client
            .dispense("query")
            .translateQuery({ sourceDialect: "mysql", targetDialect: target, query: sql });
          out.push(res.query);
        }
        return out;
      });
    const pgSql = await translateAll(goPlugin, "postgresql");
    const liteSql = await translateAll(pythonPlugin, "sqlite");
    assert.match(pgSql.at(-1) ?? "", /COALESCE\(c\."notes", 'none'\).*LIMIT 2 OFFSET 1$/);

    const uri = await pg.createDatabase("shop");
    const psql = join(postgresBinDir(), "psql");
    const pgOut = execFileSync(
      psql,
      [
        uri,
        "-v",
        "ON_ERROR_STOP=1",
        "-qAtF",
        "|",
        "-c",
        results.postgresql ?? "",
        ...pgSql.flatMap((s) => ["-c", s]),
      ],
      {
        encoding: "utf8",
      },
    );
    const file = join(tempDir("cp-dialect-"), "shop.db");
    const liteOut = execFileSync("sqlite3", ["-bail", file], {
      input: [results.sqlite, ...liteSql.map((s) => s + ";")].join("\n") + "\n",
      encoding: "utf8",
    });
    assert.equal(liteOut.trim(), "bob@example.com|vip|0\ncy@example.com|none|1");
    assert.equal(pgOut.trim(), liteOut.trim());
    // The ENUM's CHECK holds in both databases.
    assert.throws(
      () =>
        execFileSync(
          psql,
          [
            uri,
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
            `INSERT INTO "orders" ("customer_id", "status", "total", "placed_at") VALUES (1, 'lost', 1, now())`,
          ],
          { stdio: "pipe" },
        ),
      /violates check constraint/,
    );
  });
});
