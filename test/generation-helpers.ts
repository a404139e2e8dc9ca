import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { computeFiles } from "../src/manifest/files.js";
import type { PluginManifest } from "../src/manifest/types.js";
import { KV, handshake } from "../examples/kv/shared.js";
import { Installer } from "../src/manager/installer.js";
import { PluginManager, type ManagedEvent } from "../src/manager/manager.js";
import { tempDir } from "./helpers.js";

const pluginMain = fileURLToPath(new URL("./fixtures/generation-plugin.js", import.meta.url));
let bundle: Promise<string> | undefined;

/**
 * The generation fixture as one esbuild bundle, made once per test process:
 * a plugin that loads one file starts much faster than one that resolves
 * the whole compiled tree, which matters when a test starts 21 of them.
 */
function bundled(): Promise<string> {
  bundle ??= (async () => {
    const out = join(tempDir("cp-genbundle-"), "generation-plugin.mjs");
    await build({
      entryPoints: [pluginMain],
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      outfile: out,
      logLevel: "silent",
      banner: {
        js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
      },
    });
    return readFileSync(out, "utf8");
  })();
  return bundle;
}

/**
 * An unsigned plugin directory "gen" at `version`: its entry file sets
 * FIXTURE_VERSION and runs the bundled generation fixture (so each
 * version's files, and digests, differ). `entry` replaces the entry's
 * code, for versions that fail to start; `more` adds manifest fields.
 */
export async function generationPluginDir(
  version: string,
  entry?: string,
  more: Partial<PluginManifest> = {},
): Promise<string> {
  const dir = join(tempDir("cp-gen-"), "gen");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "generation-plugin.mjs"), await bundled());
  writeFileSync(
    join(dir, "plugin.mjs"),
    entry ??
      `process.env.FIXTURE_VERSION = ${JSON.stringify(version)};\n` +
        `await import("./generation-plugin.mjs");\n`,
  );
  const file = { file: "plugin.mjs", runtime: "node" as const };
  const manifest: PluginManifest = {
    schemaVersion: 1,
    name: "gen",
    version,
    description: "the generation fixture",
    license: "Apache-2.0",
    entrypoints: { "linux/amd64": file, "linux/arm64": file },
    protocolVersions: [1],
    plugins: [{ name: "kv", service: "example.kv.v1.KV", version, capabilities: [] }],
    hostVersions: ">=0.1.0 <1.0.0",
    files: await computeFiles(dir),
    ...more,
  };
  writeFileSync(join(dir, "plugin.json"), JSON.stringify(manifest, null, 2) + "\n");
  return dir;
}

/**
 * A manager over a fresh plugins directory holding version 1 of "gen" (or
 * the plugin directory given), and its ledger.
 */
export async function setupGeneration(
  options: Partial<ConstructorParameters<typeof PluginManager>[0]> = {},
  firstVersionDir?: string,
) {
  const root = tempDir("cp-upg-");
  const plugins = join(root, "plugins");
  const installer = new Installer(plugins, { trustedKeys: [], allowUnsigned: true });
  await installer.fromDirectory(firstVersionDir ?? (await generationPluginDir("1.0.0")));
  const events: ManagedEvent[] = [];
  const manager = new PluginManager({
    directories: [plugins],
    allowUnsigned: true,
    runDir: join(root, "run"),
    onEvent: (_name, e) => events.push(e),
    ...options,
  });
  await manager.scan();
  const ledgerFile = join(root, "ledger");
  writeFileSync(ledgerFile, "");
  const handle = manager.open("gen", {
    handshake,
    plugins: { kv: KV },
    config: { ledger: ledgerFile },
  });
  const ledger = () =>
    readFileSync(ledgerFile, "utf8")
      .split("\n")
      .filter((l) => l !== "");
  return { manager, installer, handle, events, ledger, kv: handle.dispense("kv") };
}
