/**
 * `npm run bench:cold-timeline -- [--rounds N] [--before DIR]`: where a Node
 * plugin's cold start goes (spawn to first call answered, framed + AutoMTLS),
 * step by step, for the unbundled bench plugin and its esbuild bundle. The
 * plugin runs with bench/cold-trace.ts preloaded, which records its steps;
 * the host records spawn, its own TLS handshake, start() and the first
 * answer. Every figure is ms after the host's spawn() call, the median over
 * rounds (min-max). `--before DIR`: also the plugins of another build's
 * dist/ (bundled here), interleaved with this build's in every round. The preload adds a few ms of its own (ESM loader start):
 * read the steps' differences, and the total from `npm run bench:cold`.
 */
import { readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type * as Tls from "node:tls";
import { fileURLToPath } from "node:url";
import { execFileSync } from "node:child_process";
import { median, round, shuffled } from "./stats.js";

const args = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const rounds = Number(option("--rounds") ?? 10);
const before = option("--before");
const { openPlugin } = await import("./contenders.js");
const { subprocess, PluginClient, silentLogger } = await import("../src/index.js");
const { Bench, benchHandshake } = await import("./service.js");
const { bundledBenchPlugin, bundlePlugin } = await import("./bundle.js");
const trace = fileURLToPath(new URL("./cold-trace.js", import.meta.url));
const plain = fileURLToPath(new URL("./plugin.js", import.meta.url));
const plugins = new Map<string, string>([
  ["unbundled", plain],
  ["bundled", await bundledBenchPlugin()],
]);
if (before !== undefined) {
  const old = join(resolve(before), "bench", "plugin.js");
  plugins.set("before: unbundled", old);
  plugins.set(
    "before: bundled",
    await bundlePlugin(old, join(tmpdir(), `cold-before-${process.pid}`)),
  );
}

// The host's own TLS handshake: when its socket emits "secureConnect".
const tls = createRequire(import.meta.url)("node:tls") as typeof Tls;
type Emit = (this: Tls.TLSSocket, event: unknown, ...args: unknown[]) => boolean;
let hostTls: number | undefined;
const emit = Reflect.get(tls.TLSSocket.prototype, "emit") as Emit;
Reflect.set(tls.TLSSocket.prototype, "emit", function (this: Tls.TLSSocket, event, ...rest) {
  if (event === "secureConnect") hostTls ??= performance.now();
  return emit.call(this, event, ...rest);
} satisfies Emit);

const file = join(tmpdir(), `cold-trace-${process.pid}.json`);
process.env.COLD_TRACE_FILE = file;
// A first launch, uncounted: the host's own first-time costs (its certificate, JIT).
await (await openPlugin(subprocess(process.execPath, [plain], { autoMTLS: true }))).close();

async function once(main: string): Promise<Map<string, number>> {
  hostTls = undefined;
  const t0 = performance.now();
  const client = new PluginClient({
    handshake: benchHandshake,
    plugins: { bench: Bench },
    source: subprocess(process.execPath, ["--import", trace, main], { autoMTLS: true }),
    logger: silentLogger,
  });
  await client.start();
  const started = performance.now();
  await client.dispense("bench").echo({ value: new Uint8Array(1) });
  const answered = performance.now();
  await client.close();
  const plugin = JSON.parse(readFileSync(file, "utf8")) as {
    timeOrigin: number;
    marks: Record<string, number>;
  };
  rmSync(file);
  // Plugin marks are ms since its own time origin: move them onto the host's clock.
  const shift = plugin.timeOrigin - (performance.timeOrigin + t0);
  const steps = new Map<string, number>([["plugin process starts", shift]]);
  for (const [name, at] of Object.entries(plugin.marks)) steps.set(name, at + shift);
  if (hostTls !== undefined) steps.set("host: TLS handshake done", hostTls - t0);
  steps.set("host: start() resolved", started - t0);
  steps.set("host: first call answered", answered - t0);
  return steps;
}

function bootSteps(): Map<string, number> {
  const t0 = performance.now();
  const out = execFileSync(process.execPath, [
    "-e",
    "process.stdout.write(JSON.stringify([performance.timeOrigin, performance.nodeTiming.bootstrapComplete]))",
  ]);
  const exited = performance.now();
  const [origin, boot] = JSON.parse(String(out)) as [number, number];
  const shift = origin - (performance.timeOrigin + t0);
  return new Map([
    ["process starts", shift],
    ["node bootstrap complete", boot + shift],
    ["exited", exited - t0],
  ]);
}

const results = new Map<string, Array<Map<string, number>>>([["node -e 0", []]]);
for (const name of plugins.keys()) results.set(name, []);
for (let r = 0; r < rounds; r++) {
  process.stderr.write(`round ${r + 1}/${rounds}\n`);
  results.get("node -e 0")?.push(bootSteps());
  for (const [name, main] of shuffled([...plugins])) results.get(name)?.push(await once(main));
}
const lines = [
  `Cold-start timeline, ${rounds} rounds, ms after spawn(): median (min-max); ` +
    `load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")} at the end.`,
];
for (const [name, runs] of results) {
  lines.push("", `| ${name} | ms |`, "| --- | ---: |");
  const names = [...new Set(runs.flatMap((r) => [...r.keys()]))];
  const at = (n: string): number[] => runs.flatMap((r) => r.get(n) ?? []);
  names.sort((a, b) => median(at(a)) - median(at(b)));
  for (const n of names) {
    const v = at(n);
    lines.push(
      `| ${n} | ${round(median(v))} (${round(Math.min(...v))}-${round(Math.max(...v))}) |`,
    );
  }
}
process.stdout.write(`${lines.join("\n")}\n`);
