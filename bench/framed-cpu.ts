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
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type * as ContendersModule from "./contenders.js";
import type * as IndexModule from "../src/index.js";
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
}

const SCENARIOS: readonly Scenario[] = [
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

/** CPU seconds of process `pid` so far (utime + stime, in 10 ms ticks). */
function procCpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
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
  const big = new Uint8Array(1024 * 1024).fill(7);
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
  const plugin0 = procCpuUs(pid);
  const host0 = process.cpuUsage();
  const t0 = performance.now();
  await run(scenario.count);
  const wall = performance.now() - t0;
  const host = process.cpuUsage(host0);
  const plugin = procCpuUs(pid) - plugin0;
  await client.close();
  const result: Result = {
    hostUs: (host.user + host.system) / scenario.count,
    pluginUs: plugin / scenario.count,
    wallUs: (wall * 1000) / scenario.count,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

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
  const roots = process.argv.length > 3 ? process.argv.slice(3).map((r) => resolve(r)) : [ownRoot];
  const only = process.env.FRAMED_CPU_ONLY?.split(",");
  const scenarios = SCENARIOS.filter((s) => only === undefined || only.includes(s.name));
  const results = new Map<string, Result[]>();
  for (let r = 0; r < rounds; r++) {
    for (const s of scenarios) {
      for (const root of shuffled(roots)) {
        const res = await measure(root, s.name);
        const key = `${s.name}\t${root}`;
        results.set(key, [...(results.get(key) ?? []), res]);
        console.error(
          `round ${r + 1} ${s.name} ${root}: host ${res.hostUs.toFixed(2)} plugin ${res.pluginUs.toFixed(2)} wall ${res.wallUs.toFixed(2)} µs/${s.unit}`,
        );
      }
    }
  }
  console.log(`| scenario, µs per call or message | root | host | plugin | wall |`);
  console.log(`| --- | --- | --- | --- | --- |`);
  for (const s of scenarios) {
    for (const root of roots) {
      const rs = results.get(`${s.name}\t${root}`) ?? [];
      console.log(
        `| ${s.name} (per ${s.unit}) | ${root} | ${fmt(rs.map((x) => x.hostUs))} | ${fmt(rs.map((x) => x.pluginUs))} | ${fmt(rs.map((x) => x.wallUs))} |`,
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
