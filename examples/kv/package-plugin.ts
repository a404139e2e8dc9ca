/**
 * Packages the KV example as an installable plugin directory: one
 * self-contained ESM bundle (esbuild) run with the host's Node.js, and a
 * plugin.json listing it with its sha256. Sign it with
 * `connect-plugin sign DIR --key KEY`, then push or install it.
 *
 *     node dist/examples/kv/package-plugin.js out/kv
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { computeFiles } from "../../src/manifest/files.js";
import type { PluginManifest } from "../../src/manifest/types.js";

export async function packageKvPlugin(outDir: string, version = "1.0.0"): Promise<PluginManifest> {
  mkdirSync(outDir, { recursive: true });
  await build({
    entryPoints: [fileURLToPath(new URL("./plugin.js", import.meta.url))],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outfile: join(outDir, "kv-plugin.mjs"),
    logLevel: "silent",
    // Some dependencies are CommonJS and require() Node built-ins.
    banner: {
      js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
    },
  });
  const entry = { file: "kv-plugin.mjs", runtime: "node" as const };
  const manifest: PluginManifest = {
    schemaVersion: 1,
    name: "kv",
    version,
    description: "The connect-plugin KV example: a key-value store in memory.",
    license: "Apache-2.0",
    entrypoints: {
      "linux/amd64": entry,
      "linux/arm64": entry,
      "darwin/arm64": entry,
      "darwin/amd64": entry,
    },
    protocolVersions: [1],
    plugins: [
      {
        name: "kv",
        service: "example.kv.v1.KV",
        version: "1.0.0",
        capabilities: ["watch", "bidi"],
      },
    ],
    configSchema: {
      type: "object",
      properties: { namespace: { type: "string" } },
      additionalProperties: false,
    },
    hostVersions: ">=0.1.0 <1.0.0",
    files: await computeFiles(outDir),
  };
  writeFileSync(join(outDir, "plugin.json"), JSON.stringify(manifest, null, 2) + "\n");
  return manifest;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = process.argv[2] ?? "kv-plugin";
  const manifest = await packageKvPlugin(out);
  console.log(`packaged ${manifest.name} ${manifest.version} into ${out}`);
}
