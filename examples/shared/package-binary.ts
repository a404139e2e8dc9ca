/**
 * Packages a compiled plugin program (a Go binary, say) as an installable
 * plugin directory: the binary and a plugin.json that pins it by sha256.
 * Sign it with `connect-plugin sign DIR --key KEY`, then push or install it.
 */
import { copyFileSync, chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import {
  computeFiles,
  hostPlatform,
  type PluginManifest,
  type ProvidedPlugin,
} from "../../src/management.js";

export interface BinaryPlugin {
  readonly name: string;
  readonly version: string;
  readonly description: string;
  /** The compiled program, built for this machine's platform. */
  readonly binary: string;
  readonly plugins: readonly ProvidedPlugin[];
  readonly configSchema?: Readonly<Record<string, unknown>>;
}

export async function packageBinaryPlugin(
  outDir: string,
  p: BinaryPlugin,
): Promise<PluginManifest> {
  mkdirSync(outDir, { recursive: true });
  const file = basename(p.binary);
  copyFileSync(p.binary, join(outDir, file));
  chmodSync(join(outDir, file), 0o755);
  const manifest: PluginManifest = {
    schemaVersion: 1,
    name: p.name,
    version: p.version,
    description: p.description,
    license: "Apache-2.0",
    // A Go binary runs on the platform it was built for only.
    entrypoints: { [hostPlatform()]: { file } },
    protocolVersions: [1],
    plugins: p.plugins,
    ...(p.configSchema !== undefined && { configSchema: p.configSchema }),
    hostVersions: ">=0.1.0 <1.0.0",
    files: await computeFiles(outDir),
  };
  writeFileSync(join(outDir, "plugin.json"), JSON.stringify(manifest, null, 2) + "\n");
  return manifest;
}
