/**
 * Which process limits 64 concurrent HTTP/2 callers, and how the two
 * exchange the calls: `node dist/bench/h2-split.js [--rounds 5] [--ms 1500]
 * [--callers 64]`.
 *
 * For the HTTP/2 floor (raw node:http2 client and server over loopback
 * TCP, gRPC framing) and this build's remote Connect and gRPC rows (the
 * bench plugin in network mode), rounds interleaved in a shuffled order:
 * calls/s with `callers` callers for `ms`, and per call on each side
 * (host = this process, server = the floor server or the plugin): CPU
 * (every thread's /proc schedstat), also as a share of one core; event
 * loop iterations (libuv's counters; the server's through
 * bench/loop-preload.js, which this bench puts in its children's
 * NODE_OPTIONS); read and write syscalls and the bytes per write
 * (/proc/PID/io: no tracer, which would change how calls batch); TCP
 * segments sent (`ss`); and voluntary context switches (the times the process slept waiting). The
 * counts do not depend on the machine's speed or load as much as the
 * times do. `--build LABEL=DIR` adds remote Connect and gRPC rows with
 * the bench plugin of the build in DIR (DIR/dist/bench/plugin.js), called
 * by this build's host, in the same rounds. The side near 100% of a core is the bottleneck; on a shared
 * 2-core machine both may be below it (then the load decides).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { connectPluginRemote, rawHttp2, type Contender } from "./contenders.js";
import { threadsCpuNs } from "./proc-cpu.js";
import { ioCounts, loopCounters, segments, switches } from "./proc-counters.js";
import { median, round, shuffled } from "./stats.js";

const args = process.argv.slice(2);
const option = (name: string, fallback: string): number => {
  const at = args.indexOf(`--${name}`);
  return Number(at >= 0 ? (args[at + 1] ?? fallback) : fallback);
};
const rounds = option("rounds", "5");
const ms = option("ms", "1500");
const callers = option("callers", "64");
const builds = args
  .flatMap((a, i) => (a === "--build" ? [args[i + 1] ?? ""] : []))
  .map((b) => {
    const at = b.indexOf("=");
    if (at < 1) throw new Error(`--build wants LABEL=DIR, got ${JSON.stringify(b)}`);
    return { label: b.slice(0, at), main: join(resolve(b.slice(at + 1)), "dist/bench/plugin.js") };
  });

const statsDir = mkdtempSync(join(tmpdir(), "h2-split-"));
process.env.LOOP_STATS_DIR = statsDir;
process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ""} --import ${new URL("./loop-preload.js", import.meta.url).href}`;

/** What one side did over one run. */
interface Counts {
  cpuNs: number;
  loops: number;
  reads: number;
  writes: number;
  writeBytes: number;
  vol: number;
  segsOut: number;
}
async function counts(pid: number): Promise<Counts> {
  const io = ioCounts(pid);
  return {
    cpuNs: threadsCpuNs(pid),
    loops: (await loopCounters(pid, statsDir)).loopCount,
    reads: io.reads,
    writes: io.writes,
    writeBytes: io.writeBytes,
    vol: switches(pid).vol,
    segsOut: segments(pid).out,
  };
}
const FIGURES = [
  "us",
  "share",
  "loops",
  "reads",
  "writes",
  "bytesPerWrite",
  "segsOut",
  "vol",
] as const;
type Figure = (typeof FIGURES)[number];
type Side = Record<Figure, number[]>;
const side = (): Side =>
  Object.fromEntries(FIGURES.map((f) => [f, [] as number[]])) as unknown as Side;
/** Per call (CPU µs, share of a core in %, bytes per write per write). */
function record(into: Side, a: Counts, b: Counts, calls: number, wallNs: number): void {
  const cpu = b.cpuNs - a.cpuNs;
  const writes = b.writes - a.writes;
  into.us.push(cpu / 1e3 / calls);
  into.share.push((100 * cpu) / wallNs);
  into.loops.push((b.loops - a.loops) / calls);
  into.reads.push((b.reads - a.reads) / calls);
  into.writes.push(writes / calls);
  into.bytesPerWrite.push(writes === 0 ? 0 : (b.writeBytes - a.writeBytes) / writes);
  into.segsOut.push((b.segsOut - a.segsOut) / calls);
  into.vol.push((b.vol - a.vol) / calls);
}

interface Row {
  readonly contender: Contender;
  readonly perSecond: number[];
  readonly host: Side;
  readonly server: Side;
}

const contenders = [
  await rawHttp2("floor (TCP)", true),
  await connectPluginRemote("remote Connect", "connect"),
  await connectPluginRemote("remote gRPC", "grpc"),
];
for (const { label, main } of builds) {
  contenders.push(await connectPluginRemote(`remote Connect, ${label}'s plugin`, "connect", main));
  contenders.push(await connectPluginRemote(`remote gRPC, ${label}'s plugin`, "grpc", main));
}
const rows: Row[] = contenders.map((contender) => ({
  contender,
  perSecond: [],
  host: side(),
  server: side(),
}));
const loadBefore = loadavg()[0] ?? 0;
try {
  for (const row of rows) await row.contender.concurrent(300, callers);
  for (let r = 0; r < rounds; r++) {
    for (const row of shuffled(rows)) {
      const pid = row.contender.serverPid?.() ?? 0;
      const s0 = await counts(pid);
      const h0 = await counts(process.pid);
      const t0 = process.hrtime.bigint();
      const perSecond = await row.contender.concurrent(ms, callers);
      const wallNs = Number(process.hrtime.bigint() - t0);
      const h1 = await counts(process.pid);
      const s1 = await counts(pid);
      const calls = (perSecond * wallNs) / 1e9;
      row.perSecond.push(perSecond);
      record(row.host, h0, h1, calls, wallNs);
      record(row.server, s0, s1, calls, wallNs);
    }
  }
} finally {
  for (const row of rows) await row.contender.close();
  rmSync(statsDir, { recursive: true, force: true });
}
const fmt = (xs: number[]): string =>
  `${round(median(xs))} (${round(Math.min(...xs))}-${round(Math.max(...xs))})`;
console.log(
  `${rounds} rounds of ${ms} ms, ${callers} callers; load average ${loadBefore.toFixed(2)} -> ${(loadavg()[0] ?? 0).toFixed(2)}\n`,
);
console.log(
  "| row | calls/s | host CPU µs/call | server CPU µs/call | host % of a core | server % of a core |",
);
console.log("|---|--:|--:|--:|--:|--:|");
for (const row of rows) {
  console.log(
    `| ${row.contender.name} | ${fmt(row.perSecond)} | ${fmt(row.host.us)} | ${fmt(row.server.us)} | ${fmt(row.host.share)} | ${fmt(row.server.share)} |`,
  );
}
console.log(
  "\nPer call, host / server: loop iterations, read and write syscalls, bytes per write, TCP segments sent, voluntary switches\n",
);
console.log("| row | loops | reads | writes | B/write | TCP segments out | vol. switches |");
console.log("|---|--:|--:|--:|--:|--:|--:|");
for (const row of rows) {
  const both = (f: Figure): string => `${fmt(row.host[f])} / ${fmt(row.server[f])}`;
  console.log(
    `| ${row.contender.name} | ${both("loops")} | ${both("reads")} | ${both("writes")} | ${both("bytesPerWrite")} | ${both("segsOut")} | ${both("vol")} |`,
  );
}
