/**
 * `npm run bench:cold-bundles -- [--rounds N]`: the bench plugin's cold start
 * (framed + AutoMTLS, spawn to first call answered, as `npm run bench:cold`)
 * bundled by esbuild in other layouts than the scaffold's, to see what the
 * layout costs. Contenders, each bundled from dist/bench/plugin.js:
 *
 * - `scaffold`: ESM with splitting, as `npm create connect-plugin` builds it;
 * - `scaffold, minified`: the same with `--minify-whitespace --minify-syntax`;
 * - `ESM, one file`: no splitting (the lazily loaded modules inlined, and
 *   their built-in modules, node:http2 and node:http, imported at the top);
 * - `CommonJS, one file`: no splitting, where esbuild requires a lazily
 *   loaded module's built-ins when it is first used (no top-level await);
 * - `reference: lazy modules left out`: no splitting, every dynamic import of
 *   connect-plugin's own modules left to dist/ (not a working layout: those
 *   would load a second copy of connect-es; it shows what the framed path
 *   alone costs).
 *
 * Every round runs each once and `node -e 0`, in a shuffled order; figures
 * are medians (min-max) of wall time and of the plugin's CPU time up to its
 * first answer (/proc/PID/schedstat), and their ratios to `node -e 0`'s.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { build, type BuildOptions } from "esbuild";
import { bundlePlugin } from "./bundle.js";
import { openPlugin } from "./contenders.js";
import { median, round, shuffled } from "./stats.js";
import { subprocess } from "../src/index.js";

const at = process.argv.indexOf("--rounds");
const rounds = at >= 0 ? Number(process.argv[at + 1]) : 15;
const entry = fileURLToPath(new URL("./plugin.js", import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), "cold-bundles-"));

/** Bundles the bench plugin with `options` on top of the scaffold's; returns the main file. */
async function variant(dir: string, options: BuildOptions): Promise<string> {
  const outdir = join(tmp, dir);
  const ext = options.format === "cjs" ? ".cjs" : ".mjs";
  await build({
    entryPoints: [entry],
    outdir,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outExtension: { ".js": ext },
    logLevel: "error",
    ...options,
  });
  return join(outdir, basename(entry).replace(/\.js$/, ext));
}

const contenders = new Map<string, string>([
  ["scaffold", await bundlePlugin(entry, join(tmp, "scaffold"))],
  [
    "scaffold, minified",
    await variant("minified", { splitting: true, minifyWhitespace: true, minifySyntax: true }),
  ],
  ["ESM, one file", await variant("esm-one", { splitting: false })],
  ["CommonJS, one file", await variant("cjs-one", { format: "cjs" })],
  [
    "reference: lazy modules left out",
    await variant("lazy-out", {
      splitting: false,
      plugins: [
        {
          name: "leave-lazy-modules-out",
          setup(b) {
            b.onResolve({ filter: /^\./ }, (a) =>
              a.kind === "dynamic-import"
                ? { path: resolve(a.resolveDir, a.path), external: true }
                : undefined,
            );
          },
        },
      ],
    }),
  ],
]);

const cpuMs = (pid: string | undefined): number =>
  pid === undefined
    ? NaN
    : Number(readFileSync(`/proc/${pid}/schedstat`, "latin1").split(" ")[0]) / 1e6;
const NODE = "node -e 0";
const samples = new Map<string, { wall: number[]; cpu: number[] }>(
  [NODE, ...contenders.keys()].map((n) => [n, { wall: [], cpu: [] }]),
);
// One launch first: the host's own first-time costs are not the plugin's.
await (await openPlugin(subprocess(process.execPath, [contenders.get("scaffold") ?? ""]))).close();
for (let r = 1; r <= rounds; r++) {
  process.stderr.write(`round ${r}/${rounds}\n`);
  for (const name of shuffled([NODE, ...contenders.keys()])) {
    const s = samples.get(name);
    if (s === undefined) continue;
    const t = performance.now();
    if (name === NODE) {
      await promisify(execFile)(process.execPath, ["-e", "0"]);
      s.wall.push(performance.now() - t);
      const { stdout } = await promisify(execFile)(process.execPath, [
        "-e",
        'process.stdout.write(require("fs").readFileSync("/proc/self/schedstat", "latin1"))',
      ]);
      s.cpu.push(Number(stdout.split(" ")[0]) / 1e6);
      continue;
    }
    const client = await openPlugin(subprocess(process.execPath, [contenders.get(name) ?? ""]));
    s.wall.push(performance.now() - t);
    s.cpu.push(cpuMs(/^pid (\d+):/.exec(client.status().where)?.[1]));
    await client.close();
  }
}
rmSync(tmp, { recursive: true, force: true });

const base = samples.get(NODE) ?? { wall: [], cpu: [] };
const cell = (xs: number[]): string =>
  `${round(median(xs))} (${round(Math.min(...xs))}-${round(Math.max(...xs))})`;
console.log(
  `Bundle layouts, spawn to first call answered (framed + AutoMTLS): ${rounds} rounds, shuffled; ` +
    `load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")} at the end.\n`,
);
console.log("| contender | wall ms | / node -e 0 | CPU ms | / node -e 0 |");
console.log("| --- | ---: | ---: | ---: | ---: |");
for (const [name, s] of samples) {
  const ratio = (xs: number[], of: number[]): string => `${(median(xs) / median(of)).toFixed(2)}×`;
  console.log(
    `| ${name} | ${cell(s.wall)} | ${ratio(s.wall, base.wall)} | ${cell(s.cpu)} | ${ratio(s.cpu, base.cpu)} |`,
  );
}
