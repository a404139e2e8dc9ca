/**
 * The HTTP/2 rows of `npm run bench` alone, with the host's own state
 * between scenarios: `node dist/bench/h2-rows.js [--full] [--no-stream]
 * [--rounds N] [--only a,b]`.
 *
 * Runs scenarios 1-4 of bench/run.ts (with its warm-up and its --quick or
 * full sizes; the 1 MiB calls in its interleaved batches, bench/batches.ts)
 * for the HTTP/2 floor and the Node hosts that call over HTTP/2, each in a
 * host process of its own (bench/node-host.ts), rounds interleaved in a
 * shuffled order. Besides run.ts' figures it prints, per row, the 1 MiB
 * calls' pooled p50, the host's CPU µs per call in scenarios 1 and 2 (its
 * own process.cpuUsage), its garbage collections per 1,000 sequential calls,
 * and its heap after each round: what a long-lived host gains or loses
 * over a full run that a --quick one does not show.
 *
 * `--gap MS` leaves every host idle MS ms before each scenario's sweep, as
 * a full run of run.js does (its other contenders run meanwhile);
 * `--rewarm N` makes N unmeasured calls right before each measured
 * sequential batch and 64-caller run (run.js' --rewarm).
 */
import { rmSync } from "node:fs";
import { interleavedBatches } from "./batches.js";
import { buildGoContenders } from "./go-build.js";
import { HostProcess } from "./contenders.js";
import type { NodeKind } from "./node-host.js";
import { MiB, REWARM, RUN_SIZES } from "./run-sizes.js";
import { median, percentile, round, shuffled } from "./stats.js";

const args = process.argv.slice(2);
const full = args.includes("--full");
const noStream = args.includes("--no-stream");
const option = (name: string): string | undefined => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? args[at + 1] : undefined;
};
/** run.ts' sizes; its 1 MiB calls too: `bigBatches` batches of `big`, each after REWARM.big unmeasured. */
const P = full ? RUN_SIZES.full : RUN_SIZES.quick;
const rounds = Number(option("rounds") ?? P.rounds);
const only = option("only")?.split(",");
const gapMs = Number(option("gap") ?? 0);
const rewarm = Number(option("rewarm") ?? 0);
const idle = (): Promise<void> =>
  gapMs > 0 ? new Promise((r) => setTimeout(r, gapMs)) : Promise.resolve();
const CALLERS = 64;

const go = await buildGoContenders();
const rows: Array<[string, NodeKind, string[]]> = [
  ["floor", "raw-http2", []],
  ["floor-tcp", "raw-http2-tcp", []],
  ["remote-connect", "remote-connect", []],
  ["remote-grpc", "remote-grpc", []],
  ["remote-connect-go", "remote-connect-go", [go.connectGo]],
  ["subprocess-connect-plain", "subprocess-connect-plain", []],
  ["go-plugin-client", "go-plugin-client", [go.plugin]],
];
const hosts = await Promise.all(
  rows
    .filter(([name]) => only === undefined || only.includes(name))
    .map(([name, kind, extra]) => HostProcess.node(name, kind, extra)),
);

interface Stats {
  cpu_us: number;
  heap_used: number;
  gc: { count: number; ms: number; scavenges: number; majors: number };
}
const stats = async (h: HostProcess): Promise<Stats> =>
  (await h.ask({ op: "stats" })) as unknown as Stats;

interface Figures {
  samples: number[];
  p50: number[];
  /** The 1 MiB calls' latencies, pooled over batches and rounds. */
  big: number[];
  /** p50 of the first and the last quarter of each sequential batch. */
  firstQ: number[];
  lastQ: number[];
  rate: number[];
  seqCpu: number[];
  concCpu: number[];
  gcPer1k: number[];
  gcMsPer1k: number[];
  heapMb: number[];
}
const figures = new Map<string, Figures>(
  hosts.map((h) => [
    h.name,
    {
      samples: [],
      p50: [],
      big: [],
      firstQ: [],
      lastQ: [],
      rate: [],
      seqCpu: [],
      concCpu: [],
      gcPer1k: [],
      gcMsPer1k: [],
      heapMb: [],
    },
  ]),
);
const fig = (h: HostProcess): Figures => figures.get(h.name) as Figures;

const log = (msg: string): void => void process.stderr.write(`${msg}\n`);
for (const h of hosts) {
  await h.unary(500, 16);
  await h.concurrent(200, CALLERS);
  if (!noStream) await h.stream(P.stream);
  await h.unary(3, MiB);
}
for (let r = 1; r <= rounds; r++) {
  log(`round ${r}/${rounds}`);
  await idle();
  for (const h of shuffled(hosts)) {
    if (rewarm > 0) await h.unary(rewarm, 16);
    const a = await stats(h);
    const s = await h.unary(P.unary, 16);
    const b = await stats(h);
    const f = fig(h);
    f.samples.push(...s);
    f.p50.push(median(s));
    const q = Math.floor(s.length / 4);
    f.firstQ.push(median(s.slice(0, q)));
    f.lastQ.push(median(s.slice(-q)));
    f.seqCpu.push((b.cpu_us - a.cpu_us) / P.unary);
    f.gcPer1k.push(((b.gc.count - a.gc.count) * 1000) / P.unary);
    f.gcMsPer1k.push(((b.gc.ms - a.gc.ms) * 1000) / P.unary);
  }
  await idle();
  for (const h of shuffled(hosts)) {
    if (rewarm > 0) await h.unary(rewarm, 16);
    const a = await stats(h);
    const rate = await h.concurrent(P.concurrentMs, CALLERS);
    const b = await stats(h);
    fig(h).rate.push(rate);
    fig(h).concCpu.push((b.cpu_us - a.cpu_us) / ((rate * P.concurrentMs) / 1000));
  }
  await idle();
  // As run.ts: interleaved batches (bench/batches.ts), so that each host
  // ends the scenario in the state a run.js run leaves it in.
  const big = await interleavedBatches(
    hosts.map((h) => [h, h] as const),
    { batches: P.bigBatches, warm: REWARM.big, n: P.big, size: MiB },
    shuffled,
  );
  for (const [h, values] of big) fig(h).big.push(...values);
  await idle();
  if (!noStream) for (const h of shuffled(hosts)) await h.stream(P.stream);
  for (const h of hosts) fig(h).heapMb.push((await stats(h)).heap_used / 2 ** 20);
}
await Promise.all(hosts.map((h) => h.close()));
rmSync(go.dir, { recursive: true, force: true });

const spread = (v: number[]): string =>
  `${round(median(v))} (${round(Math.min(...v))}-${round(Math.max(...v))})`;
/**
 * The floor a row is compared with: the remote rows run over loopback TCP,
 * so (as in run.js' targets) against the floor over loopback TCP when it ran.
 */
const floorOf = (row: string): Figures | undefined =>
  (row.startsWith("remote-") ? figures.get("floor-tcp") : undefined) ?? figures.get("floor");
console.log(
  `\n${full ? "full" : "quick"} sizes, ${rounds} rounds, ${P.unary} calls, ${P.concurrentMs} ms` +
    `${noStream ? ", no stream scenario" : ""}, idle ${gapMs} ms before each sweep, ` +
    `${rewarm} unmeasured calls before each measured run\n`,
);
console.log(
  "| row | p50 µs (pooled) | × floor (remote rows: TCP floor) | first ¼ p50 | last ¼ p50 | 64 callers/s | × floor | 1 MiB p50 µs (pooled) | CPU µs/call seq | CPU µs/call 64 | GCs/1k seq | GC ms/1k seq | heap MB by round |",
);
console.log("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|");
for (const [name, f] of figures) {
  const p50 = percentile(f.samples, 50);
  const rate = median(f.rate);
  const floor = floorOf(name);
  console.log(
    `| ${name} | ${round(p50)} | ${floor ? (p50 / percentile(floor.samples, 50)).toFixed(2) : "-"} | ` +
      `${spread(f.firstQ)} | ${spread(f.lastQ)} | ${spread(f.rate)} | ` +
      `${floor ? (rate / median(floor.rate)).toFixed(2) : "-"} | ${round(percentile(f.big, 50))} | ` +
      `${spread(f.seqCpu)} | ` +
      `${spread(f.concCpu)} | ${spread(f.gcPer1k)} | ${spread(f.gcMsPer1k)} | ` +
      `${f.heapMb.map((m) => m.toFixed(1)).join(" ")} |`,
  );
}
