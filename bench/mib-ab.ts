/**
 * The benchmark's 1 MiB scenario alone, for builds side by side:
 * `node dist/bench/mib-ab.js [ROUNDS] [ROOT...]` (ROOT: a dist folder;
 * default this one). Each contender is a host process as `npm run bench`
 * starts it (bench/node-host.ts of ROOT, or go-plugin's Go host and Go
 * plugin), kept for the whole run: framed with AutoMTLS and without for
 * every ROOT, go-plugin with AutoMTLS and without, and the raw unix-socket
 * floor. Each round runs every contender in a shuffled order: WARM
 * unmeasured 1 MiB calls (MIB_AB_WARM, default 2, as the benchmark's
 * rewarm), then N measured ones (MIB_AB_N, default 20, as a full run's
 * batch); MIB_AB_BATCHES such batches per round (default 1; a full run
 * has 5), each over the contenders in a fresh order. Prints each
 * contender's p50 (median and min-max of the rounds' p50s), per round each
 * build's ratio to go-plugin with the same TLS, and the p50 of all its
 * calls pooled (as a full run reports it) with its ratio.
 */
import { rmSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { GoPluginHost, HostProcess } from "./contenders.js";
import { buildGoContenders } from "./go-build.js";
import { interleavedBatches } from "./batches.js";
import { MiB } from "./run-sizes.js";
import { median, shuffled } from "./stats.js";

const ownRoot = resolve(fileURLToPath(import.meta.url), "../..");
const GO = "go-plugin";
const FLOOR = "floor";

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 5);
  const roots = process.argv.length > 3 ? process.argv.slice(3).map((r) => resolve(r)) : [ownRoot];
  const warm = Number(process.env.MIB_AB_WARM ?? 2);
  const n = Number(process.env.MIB_AB_N ?? 20);
  const batches = Number(process.env.MIB_AB_BATCHES ?? 1);
  const go = await buildGoContenders();
  const hosts = new Map<string, HostProcess>();
  try {
    for (const tls of [true, false]) {
      const mode = tls ? "AutoMTLS" : "plain";
      hosts.set(`${GO} ${mode}`, await GoPluginHost.start(GO, go.host, go.plugin, tls));
      for (const root of roots) {
        const kind = tls ? "subprocess-framed" : "subprocess-framed-plain";
        const name = `${root} ${mode}`;
        const main = resolve(root, "bench/node-host.js");
        hosts.set(
          name,
          await HostProcess.spawn(name, "Node", [process.execPath, main, kind, name]),
        );
      }
    }
    hosts.set(
      FLOOR,
      await HostProcess.spawn(FLOOR, "Node", [
        process.execPath,
        resolve(ownRoot, "bench/node-host.js"),
        "raw-socket",
        FLOOR,
      ]),
    );
    for (const h of hosts.values()) await h.unary(3, MiB);
    const p50s = new Map<string, number[]>();
    /** Every measured call of each contender: the full run's p50 pools them. */
    const pooled = new Map<string, number[]>();
    for (let r = 0; r < rounds; r++) {
      const round = await interleavedBatches([...hosts], { batches, warm, n, size: MiB }, (xs) =>
        shuffled(xs),
      );
      for (const [name, values] of round) {
        const p50 = median(values);
        p50s.set(name, [...(p50s.get(name) ?? []), p50]);
        pooled.set(name, [...(pooled.get(name) ?? []), ...values]);
        console.error(`round ${r + 1} ${name}: p50 ${p50.toFixed(0)} µs`);
      }
    }
    const fmt = (xs: number[], digits = 0): string =>
      `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)})`;
    const shape = batches > 1 ? `${batches} × (${warm} + ${n})` : `${warm} + ${n}`;
    console.log(
      `| 1 MiB unary, ${rounds} rounds of ${shape} calls | p50 µs | ÷ go-plugin, per round | pooled p50 µs | pooled ÷ go-plugin |`,
    );
    console.log(`| --- | --- | --- | --- | --- |`);
    for (const [name, xs] of p50s) {
      const mode = name.endsWith("AutoMTLS") ? "AutoMTLS" : "plain";
      const goName = `${GO} ${mode}`;
      const goXs = p50s.get(goName) ?? [];
      const ratios = xs.map((x, i) => x / (goXs[i] ?? NaN));
      const all = median(pooled.get(name) ?? []);
      const ratio = all / median(pooled.get(goName) ?? []);
      console.log(
        `| ${name} | ${fmt(xs)} | ${fmt(ratios, 2)}× | ${all.toFixed(0)} | ${ratio.toFixed(2)}× |`,
      );
    }
  } finally {
    await Promise.all([...hosts.values()].map((h) => h.close()));
    rmSync(go.dir, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
