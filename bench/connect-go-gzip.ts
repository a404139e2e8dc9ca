/**
 * What connect-go's default compression costs a connect-plugin host:
 * `node dist/bench/connect-go-gzip.js [--rounds N]` runs scenarios 1, 3
 * and 4 of bench/run.ts (--quick sizes) against the connect-go bench plugin
 * three times: gzip from 1 KiB up (the row of run.js, connect-es' default) and
 * gzip of every response (BENCH_COMPRESS_MIN_BYTES=0, connect-go's
 * default) and none (as go-plugin's gRPC rows), with the Node plugin's
 * remote Connect row beside them (it gzips from 1 KiB up); one host
 * process each, rounds interleaved in a shuffled order. Prints the median
 * of the rounds and their min-max, and the host's CPU µs per call.
 */
import { rmSync } from "node:fs";
import { buildGoContenders } from "./go-build.js";
import { HostProcess } from "./contenders.js";
import type { NodeKind } from "./node-host.js";
import { MiB } from "./run-sizes.js";
import { median, round, shuffled } from "./stats.js";

const args = process.argv.slice(2);
const at = args.indexOf("--rounds");
const rounds = at >= 0 ? Number(args[at + 1]) : 7;
if (!Number.isInteger(rounds) || rounds < 1)
  throw new Error(`--rounds must be a whole number ≥ 1, got ${args[at + 1]}`);
const P = { unary: 500, big: 15, stream: 30_000 };

const go = await buildGoContenders();
const rows: Array<[string, NodeKind, string[]]> = [
  ["connect-go, gzip ≥ 1 KiB (the bench row)", "remote-connect-go", [go.connectGo]],
  ["connect-go, gzip every response (its default)", "remote-connect-go-gzip-all", [go.connectGo]],
  ["connect-go, no gzip", "remote-connect-go-no-gzip", [go.connectGo]],
  ["Node plugin, remote Connect (reference)", "remote-connect", []],
];
const hosts = await Promise.all(
  rows.map(([name, kind, extra]) => HostProcess.node(name, kind, extra)),
);
const cpu = async (h: HostProcess): Promise<number> =>
  (await h.ask({ op: "stats" }))["cpu_us"] as number;
const fig = new Map(
  hosts.map((h) => [
    h.name,
    { p50: [] as number[], cpu: [] as number[], big: [] as number[], stream: [] as number[] },
  ]),
);

for (const h of hosts) {
  await h.unary(500, 16);
  await h.stream(P.stream);
  await h.unary(3, MiB);
}
for (let r = 1; r <= rounds; r++) {
  process.stderr.write(`round ${r}/${rounds}\n`);
  for (const h of shuffled(hosts)) {
    const f = fig.get(h.name);
    if (f === undefined) continue;
    await h.unary(100, 16);
    const a = await cpu(h);
    f.p50.push(median(await h.unary(P.unary, 16)));
    f.cpu.push(((await cpu(h)) - a) / P.unary);
  }
  for (const h of shuffled(hosts)) fig.get(h.name)?.big.push(median(await h.unary(P.big, MiB)));
  for (const h of shuffled(hosts)) fig.get(h.name)?.stream.push(await h.stream(P.stream));
}
await Promise.all(hosts.map((h) => h.close()));
rmSync(go.dir, { recursive: true, force: true });

const s = (v: number[]): string =>
  `${round(median(v))} (${round(Math.min(...v))}-${round(Math.max(...v))})`;
console.log(`\n${rounds} rounds; median of the rounds (min-max)\n`);
console.log("| row | 16 B p50 µs | host CPU µs/call | 1 MiB p50 µs | stream msgs/s |");
console.log("|---|--:|--:|--:|--:|");
for (const [name, f] of fig)
  console.log(`| ${name} | ${s(f.p50)} | ${s(f.cpu)} | ${s(f.big)} | ${s(f.stream)} |`);
