/**
 * The cold-start recipe for plugin authors, applied to the bench plugin: one
 * ESM file built by esbuild, so that Node reads and compiles one file
 * instead of resolving and loading a hundred modules. connect-node stays
 * outside the bundle: a plugin on the framed transport never loads it, and
 * one on the HTTP/2 fallback loads it from node_modules.
 */
import { build } from "esbuild";
import { fileURLToPath } from "node:url";

export async function bundlePlugin(entry: string, outfile: string): Promise<string> {
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    external: ["@connectrpc/connect-node"],
    logLevel: "warning",
  });
  return outfile;
}

/** dist/bench/plugin.bundle.mjs, next to the plugin it bundles. */
export const bundledBenchPlugin = (): Promise<string> =>
  bundlePlugin(
    fileURLToPath(new URL("./plugin.js", import.meta.url)),
    fileURLToPath(new URL("./plugin.bundle.mjs", import.meta.url)),
  );
