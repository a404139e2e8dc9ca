/**
 * The cold-start recipe for plugin authors (docs/local-transports.md),
 * applied to the bench plugin: an ESM bundle built by esbuild, so that Node
 * reads and compiles a few files instead of resolving and loading a hundred
 * modules. Splitting keeps lazily loaded modules (the HTTP adapter, the
 * go-plugin dialer) out of the entry file.
 */
import { build } from "esbuild";
import { mkdirSync, rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildCodeCache } from "../src/cli/code-cache-build.js";
import { buildSnapshot } from "../src/cli/snapshot-build.js";
import { benchHandshake } from "./service.js";

/** Bundles `entry` into `outdir`; returns the entry file's bundle. */
export async function bundlePlugin(entry: string, outdir: string): Promise<string> {
  // Chunk names are content hashes: chunks of an earlier build would pile up.
  rmSync(outdir, { recursive: true, force: true });
  await build({
    entryPoints: [entry],
    outdir,
    bundle: true,
    splitting: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outExtension: { ".js": ".mjs" },
    logLevel: "warning",
  });
  return join(outdir, basename(entry).replace(/\.js$/, ".mjs"));
}

/** dist/bench/plugin-bundle/plugin.mjs, next to the plugin it bundles. */
export const bundledBenchPlugin = (): Promise<string> => {
  const plugin = fileURLToPath(new URL("./plugin.js", import.meta.url));
  return bundlePlugin(plugin, join(dirname(plugin), "plugin-bundle"));
};

/**
 * dist/bench/plugin-snapshot/plugin.blob: the bench plugin as a V8 startup
 * snapshot (`connect-plugin snapshot`), for this node binary only. With a
 * `launcher` (["valgrind", "--tool=none"]), a blob built under it, in
 * plugin-snapshot-valgrind/: the only kind node starts under valgrind
 * (bench/cold-instructions.ts).
 */
export async function snapshotBenchPlugin(launcher: readonly string[] = []): Promise<string> {
  const plugin = fileURLToPath(new URL("./plugin.js", import.meta.url));
  const dir = join(
    dirname(plugin),
    launcher.length === 0 ? "plugin-snapshot" : "plugin-snapshot-valgrind",
  );
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  // Under valgrind a build takes ten times as long, more on a loaded machine.
  const timeoutMs = launcher.length === 0 ? undefined : 600_000;
  return (await buildSnapshot(plugin, join(dir, "plugin.blob"), timeoutMs, launcher)).blob;
}

/**
 * dist/bench/plugin-code-cache/plugin.cjs: the bench plugin as one CommonJS
 * bundle started through the loader of `connect-plugin code-cache`, with the
 * V8 code cache that one launch of it made.
 */
export async function codeCacheBenchPlugin(): Promise<string> {
  const plugin = fileURLToPath(new URL("./plugin.js", import.meta.url));
  const dir = join(dirname(plugin), "plugin-code-cache");
  rmSync(dir, { recursive: true, force: true });
  return (await buildCodeCache(plugin, dir, benchHandshake)).files.loader;
}
