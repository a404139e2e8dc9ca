/**
 * `npm run bench:observability`: what tracing and metrics cost per call on
 * the default transport (framed, unix socket, AutoMTLS), with the same
 * OpenTelemetry set-up in host and plugin, as a user runs it (see
 * observability-sdk.ts for the modes): off, interceptors with no SDK,
 * unsampled tracing, metrics, unsampled tracing + metrics, sampled + metrics.
 *
 * Each mode runs in a host process of its own (observability-host.ts), so
 * that global registrations cannot leak between modes. Every round runs the
 * unary calls of all contenders in a fresh random order, then their
 * 64-caller throughput in another; the table shows the median over rounds
 * of each round's p50 and calls/s with the [min–max] spread, and each mode
 * against "off" of the same build.
 *
 * `--baseline DIR` adds every mode again from another build's dist/src
 * (e.g. main's, built into /tmp), in the same shuffled rounds, with a
 * column against that build's own "off" and one "vs baseline" per mode.
 * `--modes a,b` picks modes; `--rounds N`; `--quick` for a short run.
 * Asserts nothing.
 */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { startCollector } from "../test/otel-helpers.js";
import type { Answer, Command } from "./observability-host.js";
import { lib, MODES, type Mode } from "./observability-sdk.js";
import { median, percentile, round, shuffled } from "./stats.js";

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i < 0 ? undefined : process.argv[i + 1];
};
const quick = process.argv.includes("--quick");
const P = {
  rounds: Number(arg("--rounds") ?? (quick ? 3 : 7)),
  unary: quick ? 1_000 : 2_000,
  concurrentMs: quick ? 500 : 1_500,
};
const modes = (arg("--modes")?.split(",") ?? MODES) as Mode[];
for (const m of modes)
  if (!MODES.includes(m)) throw new Error(`unknown mode ${m}: ${MODES.join(", ")}`);
if (!modes.includes("off")) modes.unshift("off");
const baseline = arg("--baseline");
const hostMain = fileURLToPath(new URL("./observability-host.js", import.meta.url));

interface Contender {
  readonly build: string;
  readonly mode: Mode;
  readonly name: string;
  readonly p50: number[];
  readonly p99: number[];
  readonly rate: number[];
  /** CPU µs per call, host and plugin together, in the throughput runs. */
  readonly cpu: number[];
  ask(command: Command): Promise<Answer>;
}

const collector = modes.includes("sampled+metrics") ? await startCollector() : undefined;

function start(build: string, dir: string, mode: Mode): Promise<Contender> {
  const child: ChildProcess = fork(hostMain, [], {
    env: {
      ...process.env,
      BENCH_LIB: dir,
      BENCH_OBSERVE: mode,
      OTEL_EXPORTER_OTLP_ENDPOINT: collector?.endpoint ?? "",
    },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  let waiting: ((a: Answer) => void) | undefined;
  child.on("message", (a: Answer) => waiting?.(a));
  const failed = new Promise<never>((_, reject) =>
    child.on("exit", (code) => reject(new Error(`${build} ${mode}: host exited with ${code}`))),
  );
  failed.catch(() => undefined);
  const next = (): Promise<Answer> =>
    Promise.race([new Promise<Answer>((resolve) => (waiting = resolve)), failed]);
  const contender: Contender = {
    build,
    mode,
    name: baseline === undefined ? mode : `${mode} (${build})`,
    p50: [],
    p99: [],
    rate: [],
    cpu: [],
    ask(command) {
      const answer = next();
      child.send(command);
      return answer;
    },
  };
  return next().then(() => contender);
}

const builds: [string, string][] = [["this", lib]];
if (baseline !== undefined) builds.push(["baseline", baseline]);
const contenders: Contender[] = [];
// Started one by one: starts compete for the same two cores.
for (const mode of modes)
  for (const [build, dir] of builds) contenders.push(await start(build, dir, mode));

for (let r = 0; r < P.rounds; r++) {
  process.stderr.write(`round ${r + 1} of ${P.rounds}\n`);
  for (const c of shuffled(contenders)) {
    const a = await c.ask({ unary: P.unary });
    if (!("samples" in a)) throw new Error(`${c.name}: unexpected answer`);
    c.p50.push(percentile(a.samples, 50));
    c.p99.push(percentile(a.samples, 99));
  }
  for (const c of shuffled(contenders)) {
    const a = await c.ask({ concurrent: P.concurrentMs });
    if (!("rate" in a)) throw new Error(`${c.name}: unexpected answer`);
    c.rate.push(a.rate);
    c.cpu.push(a.cpu);
  }
}
for (const c of contenders) await c.ask({ close: true });
await collector?.stop();

const spread = (xs: number[]): string =>
  `${round(median(xs))} [${round(Math.min(...xs))}–${round(Math.max(...xs))}]`;
const pct = (x: number): string => `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)}%`;
const find = (build: string, mode: Mode): Contender | undefined =>
  contenders.find((c) => c.build === build && c.mode === mode);

console.log(
  `${P.rounds} rounds × (${P.unary} sequential 16-byte calls, ${P.concurrentMs} ms of 64 callers); ` +
    `load average ${(await import("node:os"))
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}`,
);
const vsBase = baseline !== undefined;
console.log(
  `| mode | build | unary p50 µs [min–max] | p99 µs | vs off | 64 callers calls/s [min–max] | vs off | CPU µs/call | vs off |` +
    (vsBase ? " p50 vs baseline | calls/s vs baseline | CPU vs baseline |" : ""),
);
console.log("|---|---|---|---|---|---|---|---|---|" + (vsBase ? "---|---|---|" : ""));
for (const mode of modes) {
  for (const [build] of builds) {
    const c = find(build, mode);
    const off = find(build, "off");
    if (c === undefined || off === undefined) continue;
    const p50 = median(c.p50);
    const rate = median(c.rate);
    let row =
      `| ${mode} | ${build} | ${spread(c.p50)} | ${round(median(c.p99))} | ` +
      `${pct(p50 / median(off.p50) - 1)} | ${spread(c.rate)} | ${pct(rate / median(off.rate) - 1)} | ` +
      `${spread(c.cpu)} | ${pct(median(c.cpu) / median(off.cpu) - 1)} |`;
    const b = vsBase ? find("baseline", mode) : undefined;
    if (vsBase)
      row +=
        b === undefined || build !== "this"
          ? " | | |"
          : ` ${pct(p50 / median(b.p50) - 1)} | ${pct(rate / median(b.rate) - 1)} | ` +
            `${pct(median(c.cpu) / median(b.cpu) - 1)} |`;
    console.log(row);
  }
}
