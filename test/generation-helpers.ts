import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { computeFiles } from "../src/manifest/files.js";
import type { PluginManifest } from "../src/manifest/types.js";
import { tempDir } from "./helpers.js";

const pluginMain = fileURLToPath(new URL("./fixtures/generation-plugin.js", import.meta.url));

/**
 * An unsigned plugin directory "gen" at `version`: its entry file sets
 * FIXTURE_VERSION and runs the compiled generation fixture (so each
 * version's files, and digests, differ). `entry` replaces the entry's
 * code, for versions that fail to start.
 */
export async function generationPluginDir(version: string, entry?: string): Promise<string> {
  const dir = join(tempDir("cp-gen-"), "gen");
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, "plugin.mjs"),
    entry ??
      `process.env.FIXTURE_VERSION = ${JSON.stringify(version)};\n` +
        `await import(${JSON.stringify(new URL(`file://${pluginMain}`).href)});\n`,
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
  };
  writeFileSync(join(dir, "plugin.json"), JSON.stringify(manifest, null, 2) + "\n");
  return dir;
}
