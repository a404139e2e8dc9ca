/**
 * CPU per call or message of the framed transport, host and plugin apart:
 * `node dist/bench/framed-cpu.js [ROUNDS] [ROOT...]`.
 *
 * Each measurement runs in a child process of its own that opens a host and
 * a plugin with `openPlugin()` (bench/contenders.ts) from ROOT (a dist
 * folder: several ROOTs compare builds, e.g. main's beside this one), warms
 * up, then reads its own CPU (process.cpuUsage, user + system, GC included)
 * and the plugin's (/proc/PID/stat, 10 ms ticks) around one run of a
 * scenario: 64 concurrent callers of 16 B calls, one server stream of 16 B
 * messages, sequential 1 MiB calls; with AutoMTLS, and without
 * (`-notls`). Rounds run the roots interleaved (A B A B, in a shuffled
 * order per scenario), so that a loaded machine shifts all alike; CPU time,
 * unlike wall-clock time, hardly depends on what else the machine runs.
 * FRAMED_CPU_ONLY=conc64,stream picks scenarios.
 *
 * `unary` (and `unary-notls`): sequential 16 B calls through a host process
 * of ROOT's bench/node-host.js, as the benchmark runs them, so that two more
 * ROOTs can take part: `go-plugin` (go-plugin's Go host and Go plugin,
 * AutoMTLS on or off with the scenario's) and `floor` (the raw unix-socket
 * ping-pong). Its wall column is the p50; with both among the ROOTs, each
 * build's time over the floor ÷ go-plugin's is printed per round, the
 * benchmark's like-for-like target (≤ 0.8). FRAMED_CPU_PLACEMENT=same or
 * split pins their host and plugin as the benchmark's pinned rows do
 * (bench/placement.ts).
 */
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type * as ContendersModule from "./contenders.js";
import type * as IndexModule from "../src/index.js";
import { GoPluginHost, HostProcess } from "./contenders.js";
import { buildGoContenders } from "./go-build.js";
import { placementFromEnv } from "./placement.js";
import { processCpuUs, threadsCpuNs } from "./proc-cpu.js";
import { MiB } from "./run-sizes.js";
import { median, shuffled } from "./stats.js";

type Contenders = typeof ContendersModule;
type Index = typeof IndexModule;

const here = fileURLToPath(import.meta.url);
const ownRoot = resolve(here, "../..");

interface Scenario {
  readonly name: string;
  readonly tls: boolean;
  /** Calls or messages measured. */
  readonly count: number;
  readonly unit: string;
  /** Run through a host process (see the top): the roots `go-plugin` and `floor` run only these. */
  readonly hosted?: boolean;
}

/** Pseudo-ROOTs of the hosted scenarios: go-plugin's Go host and plugin, and the raw-socket floor. */
const GO_PLUGIN = "go-plugin";
const FLOOR = "floor";

const SCENARIOS: readonly Scenario[] = [
  { name: "unary", tls: true, count: 20_000, unit: "call", hosted: true },
  { name: "unary-notls", tls: false, count: 20_000, unit: "call", hosted: true },
  { name: "conc64", tls: true, count: 100_000, unit: "call" },
  { name: "conc64-notls", tls: false, count: 100_000, unit: "call" },
  { name: "stream", tls: true, count: 200_000, unit: "msg" },
  { name: "stream-notls", tls: false, count: 200_000, unit: "msg" },
  { name: "mib", tls: true, count: 300, unit: "call" },
  { name: "mib-notls", tls: false, count: 300, unit: "call" },
];

interface Result {
  readonly hostUs: number;
  readonly pluginUs: number;
  readonly wallUs: number;
}

async function child(root: string, name: string): Promise<void> {
  const scenario = SCENARIOS.find((s) => s.name === name);
  if (scenario === undefined) throw new Error(`unknown scenario ${name}`);
  const url = (p: string): string => pathToFileURL(resolve(root, p)).href;
  const contenders = (await import(url("bench/contenders.js"))) as Contenders;
  const index = (await import(url("src/index.js"))) as Index;
  const client = await contenders.openPlugin(
    index.subprocess(process.execPath, [resolve(root, "bench/plugin.js")], {
      transports: ["framed"],
      autoMTLS: scenario.tls,
    }),
  );
  const pid = client.pid;
  if (pid === undefined) throw new Error("no plugin pid");
  const bench = client.dispense("bench");
  const small = new Uint8Array(16).fill(7);
  const big = new Uint8Array(MiB).fill(7);
  const run = async (n: number): Promise<void> => {
    if (name.startsWith("conc64")) {
      let left = n;
      await Promise.all(
        Array.from({ length: 64 }, async () => {
          while (left-- > 0) await bench.echo({ value: small });
        }),
      );
    } else if (name.startsWith("stream")) {
      let got = 0;
      for await (const _ of bench.stream({ value: BigInt(n) })) got++;
      if (got !== n) throw new Error(`stream delivered ${got} of ${n}`);
    } else {
      for (let i = 0; i < n; i++) await bench.echo({ value: big });
    }
  };
  await run(Math.ceil(scenario.count / 5));
  const plugin0 = threadsCpuNs(pid);
  const host0 = process.cpuUsage();
  const t0 = performance.now();
  await run(scenario.count);
  const wall = performance.now() - t0;
  const host = process.cpuUsage(host0);
  const plugin = (threadsCpuNs(pid) - plugin0) / 1000;
  await client.close();
  const result: Result = {
    hostUs: (host.user + host.system) / scenario.count,
    pluginUs: plugin / scenario.count,
    wallUs: (wall * 1000) / scenario.count,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

/** A host process of `root` (a dist folder, GO_PLUGIN or FLOOR) with AutoMTLS on or off. */
function startHost(root: string, tls: boolean, go: GoBinaries | undefined): Promise<HostProcess> {
  const where = placementFromEnv("FRAMED_CPU_PLACEMENT");
  if (root === GO_PLUGIN) {
    if (go === undefined) throw new Error("the Go contenders were not built");
    return GoPluginHost.start(root, go.host, go.plugin, tls, where);
  }
  const [main, kind]: [string, string] =
    root === FLOOR
      ? [resolve(ownRoot, "bench/node-host.js"), "raw-socket"]
      : [
          resolve(root, "bench/node-host.js"),
          tls ? "subprocess-framed" : "subprocess-framed-plain",
        ];
  return HostProcess.spawn(root, "Node", [process.execPath, main, kind, root], where);
}

/**
 * A hosted scenario: sequential 16 B calls after a fifth as many to warm
 * up; CPU of the host and of its plugin (or server) around them, from
 * /proc/PID/stat (a Go process's exited threads included), the wall column
 * the p50.
 */
async function measureHosted(
  root: string,
  s: Scenario,
  go: GoBinaries | undefined,
): Promise<Result> {
  const host = await startHost(root, s.tls, go);
  try {
    const hostPid = host.hostPid();
    const pluginPid = host.serverPid();
    if (hostPid === undefined || pluginPid === undefined) throw new Error(`${root}: no pids`);
    await host.unary(s.count / 5, 16);
    const h0 = processCpuUs(hostPid);
    const p0 = processCpuUs(pluginPid);
    const samples = await host.unary(s.count, 16);
    const perCall = (us: number): number => us / s.count;
    return {
      hostUs: perCall(processCpuUs(hostPid) - h0),
      pluginUs: perCall(processCpuUs(pluginPid) - p0),
      wallUs: median(samples),
    };
  } finally {
    await host.close();
  }
}

type GoBinaries = Awaited<ReturnType<typeof buildGoContenders>>;

function measure(root: string, name: string): Promise<Result> {
  return new Promise((resolvePromise, reject) => {
    const p = spawn(process.execPath, [here, "--child", root, name], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.once("exit", (code) => {
      if (code !== 0) reject(new Error(`${name} in ${root} exited with ${code}`));
      else resolvePromise(JSON.parse(out.trim().split("\n").pop() as string) as Result);
    });
  });
}

const fmt = (xs: number[]): string => {
  const m = median(xs);
  const digits = m >= 100 ? 0 : m >= 10 ? 1 : 2;
  return `${m.toFixed(digits)} (${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)})`;
};

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 5);
  const pseudo = [GO_PLUGIN, FLOOR];
  const roots =
    process.argv.length > 3
      ? process.argv.slice(3).map((r) => (pseudo.includes(r) ? r : resolve(r)))
      : [ownRoot];
  const only = process.env.FRAMED_CPU_ONLY?.split(",");
  const scenarios = SCENARIOS.filter((s) => only === undefined || only.includes(s.name));
  const go = roots.includes(GO_PLUGIN) ? await buildGoContenders() : undefined;
  const results = new Map<string, Result[]>();
  for (let r = 0; r < rounds; r++) {
    for (const s of scenarios) {
      const runs = s.hosted === true ? roots : roots.filter((root) => !pseudo.includes(root));
      for (const root of shuffled(runs)) {
        const res =
          s.hosted === true ? await measureHosted(root, s, go) : await measure(root, s.name);
        const key = `${s.name}\t${root}`;
        results.set(key, [...(results.get(key) ?? []), res]);
        console.error(
          `round ${r + 1} ${s.name} ${root}: host ${res.hostUs.toFixed(2)} plugin ${res.pluginUs.toFixed(2)} wall ${res.wallUs.toFixed(2)} µs/${s.unit}`,
        );
      }
    }
  }
  if (go !== undefined) rmSync(go.dir, { recursive: true, force: true });
  console.log(`| scenario, µs per call or message | root | host | plugin | wall (unary: p50) |`);
  console.log(`| --- | --- | --- | --- | --- |`);
  for (const s of scenarios) {
    for (const root of roots) {
      const rs = results.get(`${s.name}\t${root}`) ?? [];
      if (rs.length === 0) continue;
      console.log(
        `| ${s.name} (per ${s.unit}) | ${root} | ${fmt(rs.map((x) => x.hostUs))} | ${fmt(rs.map((x) => x.pluginUs))} | ${fmt(rs.map((x) => x.wallUs))} |`,
      );
    }
  }
  for (const s of scenarios) {
    const p50s = (root: string): number[] =>
      (results.get(`${s.name}\t${root}`) ?? []).map((x) => x.wallUs);
    const floor = p50s(FLOOR);
    const goP50 = p50s(GO_PLUGIN);
    if (floor.length === 0 || goP50.length === 0) continue;
    for (const root of roots.filter((root) => !pseudo.includes(root))) {
      const ratios = p50s(root).map(
        (p50, i) => (p50 - (floor[i] ?? NaN)) / ((goP50[i] ?? NaN) - (floor[i] ?? NaN)),
      );
      console.log(
        `${s.name}, ${root}: p50 over the floor ÷ go-plugin's, per round: ${fmt(ratios)}`,
      );
    }
  }
}

if (process.argv[2] === "--child") {
  await child(process.argv[3] as string, process.argv[4] as string);
  process.exit(0);
} else {
  await main();
}
