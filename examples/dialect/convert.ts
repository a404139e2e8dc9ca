/**
 * The dialect host: converts a MySQL schema file with whichever plugin it is
 * given, through one interface.
 *
 *     node dist/examples/dialect/convert.js postgresql examples/dialect/sample/shop.mysql.sql -- ./dialect-go
 *     node dist/examples/dialect/convert.js sqlite examples/dialect/sample/shop.mysql.sql -- .venv/bin/python examples/dialect/python/plugin.py
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { PluginClient, subprocess } from "../../src/index.js";
import { dialectPlugins, handshake } from "./shared.js";

/** Starts the plugin `command`, converts `ddl` to `target`, and stops it. */
export async function convertWith(
  command: readonly string[],
  target: string,
  ddl: string,
): Promise<{ ddl: string; warnings: string[]; plugin: string }> {
  const [cmd, ...args] = command;
  if (cmd === undefined) throw new Error("no plugin command given");
  const client = new PluginClient({
    handshake,
    plugins: dialectPlugins,
    source: subprocess(cmd, args),
  });
  await client.start();
  try {
    const res = await client
      .dispense("schema")
      .convertSchema({ sourceDialect: "mysql", targetDialect: target, ddl });
    const info = client.availablePlugins.find((p) => p.name === "schema");
    return { ddl: res.ddl, warnings: res.warnings, plugin: `${info?.name}@${info?.version}` };
  } finally {
    await client.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [target, file, sep, ...command] = process.argv.slice(2);
  if (target === undefined || file === undefined || sep !== "--" || command.length === 0) {
    console.error("usage: convert.js <postgresql|sqlite> <schema.sql> -- <plugin command...>");
    process.exit(2);
  }
  const out = await convertWith(command, target, readFileSync(file, "utf8"));
  process.stdout.write(out.ddl);
  for (const w of out.warnings) console.error(`warning (${out.plugin}): ${w}`);
}
