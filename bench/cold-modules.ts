/**
 * `npm run bench:cold-modules -- [--rounds N]`: what importing each part of
 * a Node plugin costs, in processes of their own: `node -e 0`, an ES module
 * that imports nothing, Node's `Headers` (undici, which every plugin's first
 * call loads), protobuf-es' and connect-es' entry points, connect-plugin's
 * plugin entry, that entry with its own modules bundled into one file
 * (dependencies left external, as node_modules has them), and the bench
 * plugin's modules. Each process prints its own CPU time
 * (/proc/self/schedstat) when it is done; every round runs each once, in a
 * shuffled order. CPU time is the figure to read on a shared machine.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { build } from "esbuild";
import { median, round, shuffled } from "./stats.js";

const at = process.argv.indexOf("--rounds");
const rounds = at >= 0 ? Number(process.argv[at + 1]) : 15;
const root = fileURLToPath(new URL("../../", import.meta.url));
const dist = fileURLToPath(new URL("../", import.meta.url));
const pkg = (path: string): string => join(root, "node_modules", path);

// connect-plugin's plugin entry with its own modules in one file.
const tmp = mkdtempSync(join(tmpdir(), "cold-modules-"));
symlinkSync(join(root, "node_modules"), join(tmp, "node_modules"));
const ownBundle = join(tmp, "plugin.mjs");
await build({
  entryPoints: [join(dist, "src", "plugin.js")],
  outfile: ownBundle,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  external: ["@bufbuild/*", "@connectrpc/*"],
  logLevel: "warning",
});

const cpuCjs =
  'process.stdout.write(require("node:fs").readFileSync("/proc/self/schedstat", "latin1"))';
const cpuEsm =
  'process.stdout.write((await import("node:fs")).readFileSync("/proc/self/schedstat", "latin1"))';
const esm = (...files: string[]): string[] => [
  "--input-type=module",
  "-e",
  `${files.map((f) => `await import(${JSON.stringify(f)});`).join("")}${cpuEsm}`,
];
const BOOT = "node -e 0";
const cases: Record<string, string[]> = {
  [BOOT]: ["-e", cpuCjs],
  "an ES module that imports nothing": esm(),
  "globalThis.Headers (Node's undici)": ["-e", `Headers;${cpuCjs}`],
  "@bufbuild/protobuf/codegenv2 (what generated code imports)": esm(
    pkg("@bufbuild/protobuf/dist/esm/codegenv2/index.js"),
  ),
  "@bufbuild/protobuf": esm(pkg("@bufbuild/protobuf/dist/esm/index.js")),
  "@connectrpc/connect (loads @bufbuild/protobuf)": esm(
    pkg("@connectrpc/connect/dist/esm/index.js"),
  ),
  "connect-plugin/plugin": esm(join(dist, "src", "plugin.js")),
  "connect-plugin/plugin, its own modules bundled into one": esm(ownBundle),
  "the bench plugin's modules (connect-plugin/plugin + its service)": esm(
    join(dist, "src", "plugin.js"),
    join(dist, "bench", "service.js"),
  ),
};

const samples = new Map<string, { wall: number[]; cpu: number[] }>(
  Object.keys(cases).map((k) => [k, { wall: [], cpu: [] }]),
);
for (let r = 1; r <= rounds; r++) {
  process.stderr.write(`round ${r}/${rounds}\n`);
  for (const [name, args] of shuffled(Object.entries(cases))) {
    const t = performance.now();
    const { stdout } = await promisify(execFile)(process.execPath, args, { cwd: dirname(dist) });
    samples.get(name)?.wall.push(performance.now() - t);
    samples.get(name)?.cpu.push(Number(stdout.split(" ")[0]) / 1e6);
  }
}
rmSync(tmp, { recursive: true, force: true });

const span = (v: number[]): string =>
  `${round(median(v))} (${round(Math.min(...v))}-${round(Math.max(...v))})`;
const bootCpu = median(samples.get(BOOT)?.cpu ?? []);
const lines = [
  `Import costs, ${rounds} rounds, shuffled; load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(" ")} at the end.`,
  "",
  "| process | wall ms, median (min-max) | CPU ms, median (min-max) | CPU beyond node -e 0 |",
  "| --- | ---: | ---: | ---: |",
];
for (const [name, s] of samples) {
  lines.push(`| ${name} | ${span(s.wall)} | ${span(s.cpu)} | +${round(median(s.cpu) - bootCpu)} |`);
}
process.stdout.write(`${lines.join("\n")}\n`);
