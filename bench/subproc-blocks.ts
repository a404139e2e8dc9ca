/**
 * A subprocess's HTTP/2 call against a remote one, block by block inside one
 * host process: `node dist/bench/subproc-blocks.js [--blocks 15] [--calls 1000]
 * [--chunk 100] [--base DIR] [--only a,b]` (`--only ROW` takes the base's
 * row too, `--only base:ROW` the base's alone); pin it with `taskset -c 0` (its plugins and
 * servers inherit the affinity) for the "both on CPU 0" placement.
 *
 * One process opens every contender (bench/contenders.ts): the HTTP/2 floor
 * over a unix socket and over loopback TCP, the bench plugin as a subprocess
 * (Connect over h2 on its unix socket, AutoMTLS on and off) and in network
 * mode through remote() over TCP; with `--base DIR` (a built checkout) the
 * same three plugin rows of that build too. Each block runs `calls`
 * sequential 16 B unary calls per contender, `--chunk` (100) at a time,
 * the contenders taking turns in a shuffled order, reading
 * the host's CPU (process.cpuUsage) and the plugin's (every thread's
 * /proc/PID/task/TID/schedstat) around them. Neighbouring contenders share
 * the machine's load, which on a busy machine moves too much between
 * separate runs; figures are medians over the blocks with their min-max,
 * and each row's p50 over its floor's p50 of the same block; with --base,
 * also each row's figures over the base build's of the same block.
 *
 * `--profile DIR` (with `--only ROW`, one row) profiles the measured blocks
 * of both processes: the host with node:inspector, its plugin or server
 * through bench/profile-preload.ts (loaded into every child through
 * NODE_OPTIONS, started and stopped with SIGUSR2), sampling every 50 µs,
 * into DIR/host.cpuprofile and DIR/plugin.cpuprofile; read them with
 * `node dist/bench/cpuprofile.js --kinds --calls N FILE`.
 *
 * `--strace` counts, after the blocks, each row's system calls per call,
 * host and plugin apart (`strace -f -c -p PID` on each over one more
 * block), and prints strace's tables.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { loadavg } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as own from "./contenders.js";
import { median, round, shuffled } from "./stats.js";
import { threadsCpuNs } from "./proc-cpu.js";

const args = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? args[at + 1] : undefined;
};
const blocks = Number(option("blocks") ?? 15);
const calls = Number(option("calls") ?? 1_000);
const base = option("base");
const only = option("only")?.split(",");
/** Calls per row in a row before the next row's turn: rows alternate within a block. */
const chunk = Number(option("chunk") ?? 100);
const profileDir = option("profile");
if (profileDir !== undefined) {
  const preload = pathToFileURL(fileURLToPath(new URL("./profile-preload.js", import.meta.url)));
  process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ""} --import ${preload.href}`;
  process.env.PROFILE_OUT = join(resolve(profileDir), "plugin");
  // The CPU profile is what is read; the heap sampler (every 512 B by default) adds time.
  process.env.PROFILE_HEAP_BYTES ??= String(2 ** 30);
}

/** CPU ns of every thread of `pid` (0 without one). */
function cpuNs(pid: number | undefined): number {
  return pid === undefined ? 0 : threadsCpuNs(pid);
}

type Contenders = typeof own;
const builds: Array<[string, Contenders]> = [["", own]];
if (base !== undefined) {
  const url = pathToFileURL(join(resolve(base), "dist/bench/contenders.js")).href;
  builds.push(["base:", (await import(url)) as Contenders]);
}

interface Row {
  readonly name: string;
  readonly floor: string;
  readonly c: own.Contender;
  p50: number[];
  ratio: number[];
  host: number[];
  plugin: number[];
}
const rows: Row[] = [];
const add = async (name: string, floor: string, open: () => Promise<own.Contender>) => {
  if (only !== undefined && !only.includes(name) && !only.includes(name.replace(/^base:/, "")))
    return;
  rows.push({ name, floor, c: await open(), p50: [], ratio: [], host: [], plugin: [] });
};
await add("floor-unix", "floor-unix", () => own.rawHttp2("floor-unix"));
await add("floor-tcp", "floor-tcp", () => own.rawHttp2("floor-tcp", true));
for (const [prefix, lib] of builds) {
  await add(`${prefix}subprocess-mtls`, "floor-unix", () =>
    lib.connectPluginSubprocess("s", ["connect"]),
  );
  await add(`${prefix}subprocess-plain`, "floor-unix", () =>
    lib.connectPluginSubprocess("s", ["connect"], lib.benchPluginMain, false),
  );
  await add(`${prefix}remote-tcp`, "floor-tcp", () => lib.connectPluginRemote("r"));
}

const log = (msg: string): void => void process.stderr.write(`${msg}\n`);
const load0 = loadavg();
for (const r of rows) await r.c.unary(2_000, 16);
const stopProfiles = profileDir === undefined ? undefined : await startProfiles(rows);
for (let b = 1; b <= blocks; b++) {
  log(`block ${b}/${blocks}`);
  // Per row: samples, host µs and plugin ns over the block's chunks.
  const acc = new Map<Row, { s: number[]; host: number; plugin: number }>(
    rows.map((r) => [r, { s: [], host: 0, plugin: 0 }]),
  );
  for (let done = 0; done < calls; done += chunk) {
    const n = Math.min(chunk, calls - done);
    for (const r of shuffled(rows)) {
      const a = acc.get(r) as { s: number[]; host: number; plugin: number };
      await r.c.unary(2, 16);
      const pid = r.c.serverPid?.();
      const h0 = process.cpuUsage();
      const p0 = cpuNs(pid);
      a.s.push(...(await r.c.unary(n, 16)));
      const h = process.cpuUsage(h0);
      a.plugin += cpuNs(pid) - p0;
      a.host += h.user + h.system;
    }
  }
  const p50s = new Map(rows.map((r) => [r.name, median(acc.get(r)?.s ?? [])]));
  for (const r of rows) {
    const a = acc.get(r) as { s: number[]; host: number; plugin: number };
    r.host.push(a.host / calls);
    r.plugin.push(a.plugin / 1_000 / calls);
    r.p50.push(p50s.get(r.name) as number);
    const f = p50s.get(r.floor);
    if (f !== undefined) r.ratio.push((p50s.get(r.name) as number) / f);
  }
}
await stopProfiles?.();
const traces: string[] = [];
if (args.includes("--strace")) {
  for (const r of rows) {
    const pid = r.c.serverPid?.();
    if (pid === undefined) continue;
    // The plugin's first: the host's (-f) would follow the second strace.
    const plugin = await strace(pid);
    const host = await strace(process.pid);
    await r.c.unary(calls, 16);
    const [h, p] = [await host(), await plugin()];
    traces.push(`${r.name}, ${calls} calls: host\n${h}\n${r.name}: plugin\n${p}`);
    const total = (t: string): number => Number(/(\d+)\s+(\d+\s+)?total/.exec(t)?.[1] ?? NaN);
    log(`${r.name}: ${total(h) / calls} host, ${total(p) / calls} plugin syscalls per call`);
  }
}
await Promise.all(rows.map((r) => r.c.close()));

const spread = (v: number[]): string =>
  v.length === 0 ? "-" : `${round(median(v))} (${round(Math.min(...v))}-${round(Math.max(...v))})`;
const fmt = (l: number[]): string => l.map((x) => x.toFixed(2)).join(" ");
console.log(
  `\n${blocks} blocks of ${calls} sequential 16 B calls per row, CPUs ${readFileSync(
    "/proc/self/status",
    "utf8",
  )
    .match(/Cpus_allowed_list:\s*(\S+)/)?.[1]
    ?.trim()}; load ${fmt(load0)} at start, ${fmt(loadavg())} at end\n`,
);
console.log(
  "| row | p50 µs, median of blocks (min-max) | × its floor, same block | host CPU µs/call | plugin CPU µs/call |",
);
console.log("|---|--:|--:|--:|--:|");
for (const r of rows) {
  console.log(
    `| ${r.name} | ${spread(r.p50)} | ${spread(r.ratio)} | ${spread(r.host)} | ${spread(r.plugin)} |`,
  );
}

/** strace -f -c on `pid`; the returned function stops it and gives its table. */
async function strace(pid: number): Promise<() => Promise<string>> {
  const p = spawn("strace", ["-f", "-c", "-p", String(pid)], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let out = "";
  p.stderr.on("data", (c: Buffer) => (out += c.toString()));
  await new Promise((r) => setTimeout(r, 500));
  return () =>
    new Promise((ok) => {
      p.once("exit", () => ok(out));
      p.kill("SIGINT");
    });
}

/** Starts the host's profiler and its one plugin's (SIGUSR2); the returned function writes both. */
async function startProfiles(profiled: Row[]): Promise<() => Promise<void>> {
  const pid = profiled.length === 1 ? profiled[0]?.c.serverPid?.() : undefined;
  if (pid === undefined) throw new Error("--profile needs --only with one row that has a plugin");
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object): Promise<unknown> =>
    new Promise((ok, fail) =>
      session.post(method, params, (error, result) => (error === null ? ok(result) : fail(error))),
    );
  await post("Profiler.enable");
  await post("Profiler.setSamplingInterval", { interval: 50 });
  process.kill(pid, "SIGUSR2");
  await new Promise((r) => setTimeout(r, 200));
  await post("Profiler.start");
  return async () => {
    const { profile } = (await post("Profiler.stop")) as { profile: unknown };
    session.disconnect();
    writeFileSync(join(resolve(profileDir as string), "host.cpuprofile"), JSON.stringify(profile));
    process.kill(pid, "SIGUSR2");
    const done = `${process.env.PROFILE_OUT as string}.done`;
    for (let i = 0; i < 100 && !existsSync(done); i++) await new Promise((r) => setTimeout(r, 100));
  };
}
const paired = rows.filter((r) => rows.some((b) => b.name === `base:${r.name}`));
if (paired.length > 0) {
  console.log(
    "\nThis build over the base, per block (same block, median (min-max) of the blocks' ratios):\n",
  );
  console.log("| row | p50 | host CPU | plugin CPU |");
  console.log("|---|--:|--:|--:|");
  for (const r of paired) {
    const b = rows.find((x) => x.name === `base:${r.name}`) as Row;
    const ratio = (mine: number[], theirs: number[]): string =>
      spread(mine.map((v, i) => v / (theirs[i] as number)));
    console.log(
      `| ${r.name} | ${ratio(r.p50, b.p50)} | ${ratio(r.host, b.host)} | ${ratio(r.plugin, b.plugin)} |`,
    );
  }
}
for (const t of traces) console.log(`\n${t}`);
