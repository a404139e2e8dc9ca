/**
 * Where a sequential HTTP/2 call's time goes besides CPU: per call, each
 * side's syscalls, TCP segments, context switches and CPU, for the HTTP/2
 * floor and the rows of bench/h2-rows.ts. `node dist/bench/wakeups.js
 * [--n 2000] [--only a,b] [--no-strace]` (Linux; strace for the syscall
 * counts, as root or with ptrace allowed).
 *
 * Per row, after a warm-up of 1,000 calls: one batch of N calls untraced
 * (voluntary/involuntary context switches of every thread from
 * /proc/PID/task/{@literal *}/status, CPU from /proc/PID/stat, TCP
 * segments from `ss -tinp`), then one batch with `strace -f -c` attached
 * to both processes (counts only: strace slows every syscall, so its run's
 * latency means nothing). Every figure is divided by N.
 */
import { execFileSync, spawn } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildGoContenders } from "./go-build.js";
import { HostProcess } from "./contenders.js";
import type { NodeKind } from "./node-host.js";
import { segments, switches } from "./proc-counters.js";
import { median, round } from "./stats.js";

const args = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? args[at + 1] : undefined;
};
const N = Number(option("n") ?? 2_000);
const only = option("only")?.split(",");
const traced = !args.includes("--no-strace");
/** `--frames K`: also log K calls' reads and writes on each side, as HTTP/2 frames. */
const frameCalls = Number(option("frames") ?? 0);
const TICK_US = 1e6 / Number(execFileSync("getconf", ["CLK_TCK"]).toString());

/** utime + stime of the whole process, µs. */
function cpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * TICK_US;
}

interface Snapshot {
  sw: ReturnType<typeof switches>;
  cpu: number;
  seg: ReturnType<typeof segments>;
}
const snap = (pid: number): Snapshot => ({
  sw: switches(pid),
  cpu: cpuUs(pid),
  seg: segments(pid),
});

/** Calls of each syscall while `run` runs, from `strace -f -c -p PID`. */
async function straced(pid: number, run: () => Promise<void>): Promise<Map<string, number>> {
  const out = join(tmpdir(), `wakeups-${pid}-${Date.now()}.txt`);
  const child = spawn("strace", ["-f", "-c", "-o", out, "-p", String(pid)], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let err = "";
  child.stderr.on("data", (c: Buffer) => (err += c.toString()));
  // strace says "Process N attached" once per thread it has attached.
  await new Promise((r) => setTimeout(r, 500));
  await run();
  const done = new Promise((r) => child.once("exit", r));
  child.kill("SIGINT");
  await done;
  const counts = new Map<string, number>();
  let text = "";
  try {
    text = readFileSync(out, "utf8");
  } catch {
    throw new Error(`strace wrote nothing: ${err}`);
  }
  rmSync(out, { force: true });
  for (const line of text.split("\n")) {
    // % time, seconds, usecs/call, calls, [errors], syscall
    const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$/.exec(line);
    if (m !== null && m[2] !== "total") counts.set(m[2] ?? "", Number(m[1]));
  }
  return counts;
}

const TYPES = [
  "DATA",
  "HEADERS",
  "PRIORITY",
  "RST",
  "SETTINGS",
  "PUSH",
  "PING",
  "GOAWAY",
  "WINDOW_UPDATE",
  "CONT",
];

/** One strace line's buffers (strace -xx) as HTTP/2 frames: "HEADERS(4)+DATA(1)". */
function frames(line: string): string {
  const bytes = Buffer.from(
    [...line.matchAll(/"((?:\\x[0-9a-f]{2})*)"/g)]
      .map((m) => (m[1] ?? "").replaceAll("\\x", ""))
      .join(""),
    "hex",
  );
  const out: string[] = [];
  let at = 0;
  // The client's connection preface and bodies that are not frames are left as byte counts.
  while (at + 9 <= bytes.length) {
    const len = bytes.readUIntBE(at, 3);
    const type = TYPES[bytes[at + 3] ?? 0] ?? `type${bytes[at + 3]}`;
    out.push(`${type}(flags ${bytes[at + 4]}, ${len} B)`);
    at += 9 + len;
  }
  if (at !== bytes.length) out.push(`${bytes.length - at} B unparsed`);
  return out.join(" + ");
}

/** Every read, write and epoll wait of PID's threads while `run` runs, one per line. */
async function logged(pid: number, run: () => Promise<void>): Promise<string[]> {
  const out = join(tmpdir(), `wakeups-log-${pid}-${Date.now()}.txt`);
  const child = spawn(
    "strace",
    [
      "-f",
      "-tt",
      "-xx",
      "-s",
      "4096",
      "-e",
      "trace=read,write,writev,epoll_pwait,epoll_wait,futex",
      "-o",
      out,
      "-p",
      String(pid),
    ],
    { stdio: ["ignore", "ignore", "ignore"] },
  );
  await new Promise((r) => setTimeout(r, 500));
  await run();
  const done = new Promise((r) => child.once("exit", r));
  child.kill("SIGINT");
  await done;
  const text = readFileSync(out, "utf8");
  rmSync(out, { force: true });
  return text
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => {
      const call = /^(\d+)\s+([\d:.]+)\s+(\w+)\((\d+)?/.exec(l);
      if (call === null) return l.slice(0, 100);
      const result = / = (-?\d+|\?)( [A-Z].*)?$/.exec(l)?.[0] ?? "";
      const io = ["read", "write", "writev"].includes(call[3] ?? "") ? ` ${frames(l)}` : "";
      return `${call[1]} ${call[2]} ${call[3]}(${call[4] ?? ""})${result}${io}`;
    });
}

const SHOWN = [
  "writev",
  "write",
  "sendmsg",
  "read",
  "recvmsg",
  "epoll_wait",
  "epoll_pwait",
  "epoll_ctl",
  "futex",
  "nanosleep",
  "getpid",
];

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

console.log(
  `load average ${readFileSync("/proc/loadavg", "utf8").trim()}; N=${N} sequential 16 B calls`,
);
for (const [name, kind, extra] of rows) {
  if (only !== undefined && !only.includes(name)) continue;
  const host = await HostProcess.node(name, kind, extra);
  try {
    const hostPid = host.hostPid();
    const pluginPid = host.serverPid();
    if (hostPid === undefined || pluginPid === undefined) throw new Error(`${name}: no pids`);
    await host.unary(1_000, 16);
    const h0 = snap(hostPid);
    const p0 = snap(pluginPid);
    const samples = await host.unary(N, 16);
    const h1 = snap(hostPid);
    const p1 = snap(pluginPid);
    const per = (a: number, b: number): number => round((b - a) / N);
    const side = (s0: Snapshot, s1: Snapshot): Record<string, number> => ({
      cpu_us: per(s0.cpu, s1.cpu),
      vol_cs: per(s0.sw.vol, s1.sw.vol),
      main_vol_cs: per(s0.sw.mainVol, s1.sw.mainVol),
      invol_cs: per(s0.sw.invol, s1.sw.invol),
      segs_out: per(s0.seg.out, s1.seg.out),
      segs_in: per(s0.seg.in, s1.seg.in),
    });
    console.log(`\n== ${name}: p50 ${round(median(samples))} µs (untraced batch)`);
    console.log(`  host   ${JSON.stringify(side(h0, h1))}`);
    console.log(`  plugin ${JSON.stringify(side(p0, p1))}`);
    if (traced) {
      let hostCounts = new Map<string, number>();
      const pluginCounts = await straced(pluginPid, async () => {
        hostCounts = await straced(hostPid, async () => {
          await host.unary(N, 16);
        });
      });
      for (const [label, counts] of [
        ["host", hostCounts],
        ["plugin", pluginCounts],
      ] as const) {
        const shown = SHOWN.filter((s) => counts.has(s))
          .map((s) => `${s} ${round((counts.get(s) ?? 0) / N)}`)
          .join(", ");
        const total = [...counts.values()].reduce((a, b) => a + b, 0);
        console.log(`  ${label.padEnd(6)} syscalls/call ${round(total / N)}: ${shown}`);
      }
    }
    if (frameCalls > 0) {
      let hostLog: string[] = [];
      const pluginLog = await logged(pluginPid, async () => {
        hostLog = await logged(hostPid, async () => {
          await host.unary(frameCalls, 16);
        });
      });
      console.log(`  host log:\n    ${hostLog.join("\n    ")}`);
      console.log(`  plugin log:\n    ${pluginLog.join("\n    ")}`);
    }
  } finally {
    await host.close();
  }
}
