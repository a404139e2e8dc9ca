/**
 * Which process limits 64 concurrent HTTP/2 callers, and how the two
 * exchange the calls: `node dist/bench/h2-split.js [--rounds 5] [--ms 1500]
 * [--callers 64] [--build LABEL=DIR]... [--only floor,floor-tcp,...]`.
 *
 * For the HTTP/2 floors (raw node:http2 client and server, gRPC framing,
 * over a unix socket and over loopback TCP) and the Node host -> Node
 * plugin rows of issue 12's 64-caller target (remote Connect and gRPC
 * over loopback TCP, subprocess Connect over a unix socket without
 * AutoMTLS), each host in a process of its own (bench/node-host.ts, as
 * `npm run bench` runs them), rounds interleaved in a shuffled order:
 * calls/s with `callers` callers for `ms`, and per call on each side
 * (host = the host process, server = the floor server or the plugin): CPU
 * (every thread's /proc schedstat), also as a share of one core; event
 * loop iterations (libuv's counters, through bench/loop-preload.js, which
 * this bench puts in its children's NODE_OPTIONS); read and write
 * syscalls and the bytes per write (/proc/PID/io: no tracer, which would
 * change how calls batch); TCP segments sent (`ss`); and voluntary context
 * switches (the times the process slept waiting). The counts do not depend
 * on the machine's speed or load as much as the times do.
 *
 * `--build LABEL=DIR` adds our three rows once more with the host and the
 * plugin of the build in DIR (DIR/dist/bench/node-host.js, which starts
 * that build's plugin), in the same rounds: an A/B of the pair against
 * another build (main's, say). The side near 100% of a core is the
 * bottleneck; on a shared 2-core machine both may be below it (then the
 * load decides).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { HostProcess } from "./contenders.js";
import type { NodeKind } from "./node-host.js";
import { threadsCpuNs } from "./proc-cpu.js";
import { ioCounts, loopCounters, segments, switches } from "./proc-counters.js";
import { median, round, shuffled } from "./stats.js";

const args = process.argv.slice(2);
const option = (name: string, fallback: string): string => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? (args[at + 1] ?? fallback) : fallback;
};
const rounds = Number(option("rounds", "5"));
const ms = Number(option("ms", "1500"));
const callers = Number(option("callers", "64"));
const only = args.includes("--only") ? option("only", "").split(",") : undefined;
const thisHost = fileURLToPath(new URL("./node-host.js", import.meta.url));
const builds = [
  { label: "", host: thisHost },
  ...args
    .flatMap((a, i) => (a === "--build" ? [args[i + 1] ?? ""] : []))
    .map((b) => {
      const at = b.indexOf("=");
      if (at < 1) throw new Error(`--build wants LABEL=DIR, got ${JSON.stringify(b)}`);
      return {
        label: `, ${b.slice(0, at)}`,
        host: join(resolve(b.slice(at + 1)), "dist/bench/node-host.js"),
      };
    }),
];
/** Row name -> contender kind; the floors run once, ours once per build. */
const FLOORS: Array<[string, NodeKind]> = [
  ["floor", "raw-http2"],
  ["floor-tcp", "raw-http2-tcp"],
];
const OURS: Array<[string, NodeKind]> = [
  ["remote-connect", "remote-connect"],
  ["remote-grpc", "remote-grpc"],
  ["subprocess-connect-plain", "subprocess-connect-plain"],
];

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
  readonly host: HostProcess;
  readonly perSecond: number[];
  readonly client: Side;
  readonly server: Side;
}

const wanted = (name: string): boolean => only === undefined || only.includes(name);
const hosts = await Promise.all([
  ...FLOORS.filter(([name]) => wanted(name)).map(([name, kind]) =>
    HostProcess.spawn(name, "Node", [process.execPath, thisHost, kind, name]),
  ),
  ...builds.flatMap(({ label, host }) =>
    OURS.filter(([name]) => wanted(name)).map(([name, kind]) =>
      HostProcess.spawn(`${name}${label}`, "Node", [process.execPath, host, kind, name]),
    ),
  ),
]);
const rows: Row[] = hosts.map((host) => ({ host, perSecond: [], client: side(), server: side() }));
const loadBefore = loadavg()[0] ?? 0;
try {
  for (const row of rows) await row.host.concurrent(300, callers);
  for (let r = 0; r < rounds; r++) {
    for (const row of shuffled(rows)) {
      const hostPid = row.host.hostPid() ?? 0;
      const pid = row.host.serverPid() ?? 0;
      const s0 = await counts(pid);
      const h0 = await counts(hostPid);
      const t0 = process.hrtime.bigint();
      const perSecond = await row.host.concurrent(ms, callers);
      const wallNs = Number(process.hrtime.bigint() - t0);
      const h1 = await counts(hostPid);
      const s1 = await counts(pid);
      const calls = (perSecond * wallNs) / 1e9;
      row.perSecond.push(perSecond);
      record(row.client, h0, h1, calls, wallNs);
      record(row.server, s0, s1, calls, wallNs);
    }
  }
} finally {
  await Promise.all(rows.map((row) => row.host.close()));
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
    `| ${row.host.name} | ${fmt(row.perSecond)} | ${fmt(row.client.us)} | ${fmt(row.server.us)} | ${fmt(row.client.share)} | ${fmt(row.server.share)} |`,
  );
}
console.log(
  "\nPer call, host / server: loop iterations, read and write syscalls, bytes per write, TCP segments sent, voluntary switches\n",
);
console.log("| row | loops | reads | writes | B/write | TCP segments out | vol. switches |");
console.log("|---|--:|--:|--:|--:|--:|--:|");
for (const row of rows) {
  const both = (f: Figure): string => `${fmt(row.client[f])} / ${fmt(row.server[f])}`;
  console.log(
    `| ${row.host.name} | ${both("loops")} | ${both("reads")} | ${both("writes")} | ${both("bytesPerWrite")} | ${both("segsOut")} | ${both("vol")} |`,
  );
}
