/**
 * `@opentelemetry/api` is an optional peer: what an app without it sees.
 * The built package is copied into a temporary app whose node_modules holds
 * every other installed package (links to this checkout's) but no
 * `@opentelemetry/*` at all, and real Node processes import it there.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cpSync, mkdirSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { tempDir } from "./helpers.js";

const run = promisify(execFile);
const repo = fileURLToPath(new URL("../..", import.meta.url));

describe("without the optional peer @opentelemetry/api", () => {
  let app = "";
  before(() => {
    app = tempDir("cp-no-otel-");
    const modules = join(app, "node_modules");
    const pkg = join(modules, "connect-plugin");
    mkdirSync(join(pkg, "dist"), { recursive: true });
    cpSync(join(repo, "package.json"), join(pkg, "package.json"));
    cpSync(join(repo, "dist", "src"), join(pkg, "dist", "src"), { recursive: true });
    cpSync(join(repo, "dist", "examples", "kv"), join(app, "kv"), { recursive: true });
    for (const entry of readdirSync(join(repo, "node_modules"))) {
      if (entry.startsWith(".") || entry === "@opentelemetry") continue;
      if (entry.startsWith("@")) {
        mkdirSync(join(modules, entry), { recursive: true });
        for (const scoped of readdirSync(join(repo, "node_modules", entry))) {
          symlinkSync(join(repo, "node_modules", entry, scoped), join(modules, entry, scoped));
        }
      } else {
        symlinkSync(join(repo, "node_modules", entry), join(modules, entry));
      }
    }
  });
  after(() => rmSync(app, { recursive: true, force: true }));

  /** Runs an ES module in the app; resolves with its stdout, or its stderr when it fails. */
  async function inApp(code: string): Promise<{ ok: boolean; out: string }> {
    try {
      const { stdout } = await run(process.execPath, ["--input-type=module", "-e", code], {
        cwd: app,
        timeout: 60_000,
      });
      return { ok: true, out: stdout };
    } catch (error) {
      return { ok: false, out: (error as { stderr: string }).stderr };
    }
  }

  test("the app really lacks it", async () => {
    const r = await inApp(`await import("@opentelemetry/api");`);
    assert.equal(r.ok, false);
    assert.match(r.out, /Cannot find package '@opentelemetry\/api'/);
  });

  test("connect-plugin and connect-plugin/plugin load and call a plugin without it", async () => {
    const r = await inApp(`
      import { PluginClient, inProcess } from "connect-plugin";
      import { implement } from "connect-plugin/plugin";
      import { KV } from "./kv/gen/example/kv/v1/kv_pb.js";
      import { MemoryKV } from "./kv/memory-kv.js";
      const handshake = { magicCookieKey: "KV_PLUGIN", magicCookieValue: "hello", protocolVersion: 1 };
      const definition = { handshake, plugins: { kv: implement(KV, new MemoryKV()) } };
      const client = new PluginClient({ handshake, plugins: { kv: KV }, source: inProcess(definition) });
      await client.start();
      const kv = client.dispense("kv");
      await kv.put({ key: "a", value: new TextEncoder().encode("1") });
      console.log(new TextDecoder().decode((await kv.get({ key: "a" })).value));
      await client.close();
    `);
    assert.equal(r.ok, true, r.out);
    assert.equal(r.out.trim(), "1");
  });

  test("importing connect-plugin/observability fails, naming the missing package", async () => {
    const r = await inApp(`await import("connect-plugin/observability");`);
    assert.equal(r.ok, false);
    assert.match(r.out, /ERR_MODULE_NOT_FOUND/);
    assert.match(
      r.out,
      /Cannot find package '@opentelemetry\/api' imported from .*connect-plugin\/dist\/src\/observability\//,
    );
  });
});
