/**
 * Bundles examples/kubernetes/kv-service into one ESM file (esbuild), the
 * build context of deploy/container/Containerfile:
 *
 *     node dist/examples/kubernetes/bundle.js image-context
 */
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

export async function bundleKvService(outDir: string): Promise<string> {
  mkdirSync(outDir, { recursive: true });
  const outfile = join(outDir, "kv-service.mjs");
  await build({
    entryPoints: [fileURLToPath(new URL("./kv-service.js", import.meta.url))],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outfile,
    logLevel: "silent",
    // Some dependencies are CommonJS and require() Node built-ins.
    banner: {
      js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
    },
  });
  return outfile;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = process.argv[2];
  if (out === undefined) {
    process.stderr.write("usage: node dist/examples/kubernetes/bundle.js OUT_DIR\n");
    process.exit(2);
  }
  process.stdout.write(`${await bundleKvService(resolve(out))}\n`);
}
