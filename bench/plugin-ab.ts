/**
 * Two builds of the bench plugin, served remotely (TCP, cleartext) and
 * called by one host, this process, in alternating blocks: `node
 * dist/bench/plugin-ab.js A_PLUGIN_JS B_PLUGIN_JS [--protocol connect|grpc]
 * [--blocks 30] [--n 200] [--ms 300]`. A plugin-side change is then
 * measured with the host, the machine's load and its drift shared by both:
 * each block makes N sequential 16-byte echo calls to A, then to B (then B
 * first, in turn), and a 64-caller run of MS ms each. Prints, per build,
 * the median of the blocks' p50 and calls/s (min-max), the median of the
 * per-block ratios B/A, and CPU µs per sequential call summed over all
 * blocks: the host's (process.cpuUsage, this process) and the plugin's
 * (utime + stime of all its threads from /proc/PID/stat, 10 ms ticks).
 */
import { spawn } from "node:child_process";
import { remote } from "../src/index.js";
import { connectOps, fromOps, openPlugin, type Contender } from "./contenders.js";
import { firstMatch } from "./child-output.js";
import { processCpuUs } from "./proc-cpu.js";
import { median, round } from "./stats.js";

const args = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? args[at + 1] : undefined;
};
const [mainA = "", mainB = ""] = args.filter(
  (a, i) => !a.startsWith("--") && !args[i - 1]?.startsWith("--"),
);
const protocol = (option("protocol") ?? "connect") as "connect" | "grpc";
const blocks = Number(option("blocks") ?? 30);
const n = Number(option("n") ?? 200);
const ms = Number(option("ms") ?? 300);

const hostCpu = (): number => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

async function start(main: string, name: string): Promise<Contender & { pid: number }> {
  const child = spawn(process.execPath, [main], {
    env: { ...process.env, CONNECT_PLUGIN_LISTEN: "127.0.0.1:0" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const url = await firstMatch(child, "stderr", /"url":"([^"]+)"/, name);
  const client = await openPlugin(remote(url, { protocol }));
  const contender = fromOps(name, connectOps(client.dispense("bench")), async () => {
    await client.close();
    child.kill("SIGTERM");
  });
  return { ...contender, pid: child.pid ?? 0 };
}

const a = await start(mainA, "A");
const b = await start(mainB, "B");
await a.unary(2_000, 16);
await b.unary(2_000, 16);
const p50 = { A: [] as number[], B: [] as number[] };
const rate = { A: [] as number[], B: [] as number[] };
const cpu = { A: { host: 0, plugin: 0 }, B: { host: 0, plugin: 0 } };
for (let i = 0; i < blocks; i++) {
  const order =
    i % 2 === 0
      ? ([
          ["A", a],
          ["B", b],
        ] as const)
      : ([
          ["B", b],
          ["A", a],
        ] as const);
  for (const [label, c] of order) {
    const h = hostCpu();
    const p = processCpuUs(c.pid);
    p50[label].push(median(await c.unary(n, 16)));
    cpu[label].host += hostCpu() - h;
    cpu[label].plugin += processCpuUs(c.pid) - p;
  }
  for (const [label, c] of order) rate[label].push(await c.concurrent(ms, 64));
}
await a.close();
await b.close();

const spread = (xs: number[]): string =>
  `${round(median(xs))} (${round(Math.min(...xs))}-${round(Math.max(...xs))})`;
const ratios = (x: number[], y: number[]): number[] => x.map((v, i) => (y[i] ?? NaN) / v);
console.log(`${protocol}, ${blocks} blocks of ${n} sequential calls and ${ms} ms with 64 callers`);
console.log(`A = ${mainA}\nB = ${mainB}`);
console.log("| build | sequential p50 µs | 64 callers/s |\n|---|--:|--:|");
console.log(`| A | ${spread(p50.A)} | ${spread(rate.A)} |`);
console.log(`| B | ${spread(p50.B)} | ${spread(rate.B)} |`);
const perCall = (label: "A" | "B"): string =>
  `host ${round(cpu[label].host / (blocks * n))}, plugin ${round(cpu[label].plugin / (blocks * n))}`;
console.log(
  `| B/A per block | ${spread(ratios(p50.A, p50.B))} | ${spread(ratios(rate.A, rate.B))} |`,
);
console.log(`CPU µs per sequential call: A ${perCall("A")}; B ${perCall("B")}`);
