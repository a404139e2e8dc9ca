import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The page's TypeScript source and HTML (not compiled by tsc; esbuild bundles them). */
const webDir = fileURLToPath(new URL("../../../examples/browser/web/", import.meta.url));

/**
 * Bundles the example page with esbuild (a dev dependency) into `outDir`:
 * page.js, with @connectrpc/connect-web and the KV service's generated code
 * inlined, and index.html beside it.
 */
export async function bundlePage(outDir: string): Promise<void> {
  const esbuild = await import("esbuild");
  await esbuild.build({
    entryPoints: [join(webDir, "page.ts")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    outfile: join(outDir, "page.js"),
    logLevel: "warning",
  });
  await esbuild.build({
    entryPoints: [join(webDir, "index.html")],
    loader: { ".html": "copy" },
    outdir: outDir,
    logLevel: "warning",
  });
}
