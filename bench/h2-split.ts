/**
 * Which process limits 64 concurrent HTTP/2 callers: the host or the
 * server? `node dist/bench/h2-split.js [--rounds 5] [--ms 1500]`.
 *
 * For the HTTP/2 floor (raw node:http2 client and server over loopback
 * TCP, gRPC framing) and this build's remote Connect and gRPC rows (the
 * bench plugin in network mode), rounds interleaved in a shuffled order:
 * calls/s with 64 callers for `ms`, and each side's CPU over that run
 * (every thread's /proc schedstat) as µs per call and as a share of one
 * core. The side near 100% of a core is the bottleneck; on a shared
 * 2-core machine both may be below it (then the load decides).
 */
import { loadavg } from "node:os";
import { connectPluginRemote, rawHttp2, type Contender } from "./contenders.js";
import { threadsCpuNs } from "./proc-cpu.js";
import { median, round, shuffled } from "./stats.js";

const args = process.argv.slice(2);
const option = (name: string, fallback: string): number => {
  const at = args.indexOf(`--${name}`);
  return Number(at >= 0 ? (args[at + 1] ?? fallback) : fallback);
};
const rounds = option("rounds", "5");
const ms = option("ms", "1500");

interface Row {
  readonly contender: Contender;
  readonly perSecond: number[];
  readonly hostUs: number[];
  readonly serverUs: number[];
  readonly hostShare: number[];
  readonly serverShare: number[];
}

const rows: Row[] = [];
for (const contender of [
  await rawHttp2("floor (TCP)", true),
  await connectPluginRemote("remote Connect", "connect"),
  await connectPluginRemote("remote gRPC", "grpc"),
]) {
  rows.push({ contender, perSecond: [], hostUs: [], serverUs: [], hostShare: [], serverShare: [] });
}
const loadBefore = loadavg()[0] ?? 0;
try {
  for (const row of rows) await row.contender.concurrent(300, 64);
  for (let r = 0; r < rounds; r++) {
    for (const row of shuffled(rows)) {
      const pid = row.contender.serverPid?.() ?? 0;
      const h0 = threadsCpuNs(process.pid);
      const s0 = threadsCpuNs(pid);
      const t0 = process.hrtime.bigint();
      const perSecond = await row.contender.concurrent(ms, 64);
      const wallNs = Number(process.hrtime.bigint() - t0);
      const host = threadsCpuNs(process.pid) - h0;
      const server = threadsCpuNs(pid) - s0;
      const calls = (perSecond * wallNs) / 1e9;
      row.perSecond.push(perSecond);
      row.hostUs.push(host / 1e3 / calls);
      row.serverUs.push(server / 1e3 / calls);
      row.hostShare.push((100 * host) / wallNs);
      row.serverShare.push((100 * server) / wallNs);
    }
  }
} finally {
  for (const row of rows) await row.contender.close();
}
const fmt = (xs: number[]): string =>
  `${round(median(xs))} (${round(Math.min(...xs))}-${round(Math.max(...xs))})`;
console.log(
  `${rounds} rounds of ${ms} ms, 64 callers; load average ${loadBefore.toFixed(2)} -> ${(loadavg()[0] ?? 0).toFixed(2)}\n`,
);
console.log(
  "| row | calls/s | host CPU µs/call | server CPU µs/call | host % of a core | server % of a core |",
);
console.log("|---|--:|--:|--:|--:|--:|");
for (const row of rows) {
  console.log(
    `| ${row.contender.name} | ${fmt(row.perSecond)} | ${fmt(row.hostUs)} | ${fmt(row.serverUs)} | ${fmt(row.hostShare)} | ${fmt(row.serverShare)} |`,
  );
}
