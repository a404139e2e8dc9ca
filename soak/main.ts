/**
 * `npm run soak [-- --calls N] [--callers N] [--cycles N] [--node-cycles N]
 * [--only LIST] [--json FILE] [--no-memory-target]`: a long run that looks
 * for what leaks.
 *
 * Each transport (in-process, framed, HTTP/2, go-plugin) carries `--calls`
 * echo calls (default 1,000,000) from `--callers` concurrent callers
 * (default 16), every reply checked against its request; then plugins are
 * started, called and stopped `--cycles` times (default 10,000, the Go
 * plugin on connect-plugin's protocol) and `--node-cycles` times (default
 * 1,000, the Node bench plugin: each start costs a Node boot, about 0.25 s of
 * CPU here, so 10,000 would take most of an hour).
 *
 * Targets, per phase: no failed call and no wrong reply; after a warm-up (the
 * first 20%: V8 grows its young generation and Node its buffer pools under a
 * steady load, which is sizing, not leaking), host RSS and V8 heap (after a
 * full GC) grow by less than 5% to the end; and once the phase has closed
 * its plugins, open file descriptors,
 * child processes and temporary entries (socket directories, AutoMTLS files)
 * are back to what they were before it. The run uses a TMPDIR of its own so
 * that other programs' files are not counted.
 *
 * Exit codes: 0 every target met; 1 a target missed; 2 the harness failed.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { goBuild } from "../bench/go-build.js";
import { handles, leaksAgainst, memory, type Memory } from "./resources.js";
import {
  CYCLE_KINDS,
  TRANSPORTS,
  cycle,
  openTarget,
  type CycleKind,
  type TransportName,
} from "./targets.js";

const { values } = parseArgs({
  options: {
    calls: { type: "string" },
    callers: { type: "string" },
    cycles: { type: "string" },
    "node-cycles": { type: "string" },
    only: { type: "string" },
    json: { type: "string" },
    // Short runs (the CI pass) cannot tell warm-up from growth: they judge
    // failed calls and handles only, and print memory as found.
    "no-memory-target": { type: "boolean" },
  },
});

function count(option: string | undefined, fallback: number, what: string): number {
  if (option === undefined) return fallback;
  const n = Number(option);
  if (!Number.isInteger(n) || n < 0)
    throw new Error(`--${what} must be a whole number, got "${option}"`);
  return n;
}

const calls = count(values.calls, 1_000_000, "calls");
const callers = Math.max(1, count(values.callers, 16, "callers"));
const cycles = count(values.cycles, 10_000, "cycles");
const nodeCycles = count(values["node-cycles"], 1_000, "node-cycles");
const only = values.only?.split(",").map((s) => s.trim());
const known: readonly string[] = [...TRANSPORTS, ...CYCLE_KINDS.map((k) => `cycles:${k}`)];
for (const name of only ?? []) {
  if (!known.includes(name))
    throw new Error(`--only: unknown phase "${name}" (known: ${known.join(", ")})`);
}
const wanted = (name: string) => only === undefined || only.includes(name);

/** Below this growth from warm-up to the end, memory is taken as flat. */
const GROWTH_LIMIT = 0.05;

interface Phase {
  readonly name: string;
  readonly operations: number;
  readonly seconds: number;
  readonly perSecond: number;
  readonly failed: number;
  readonly firstErrors: string[];
  readonly warm: Memory;
  readonly end: Memory;
  /** Memory after each tenth of the measured part, for the trend. */
  readonly trend: Memory[];
  readonly rssGrowth: number;
  readonly heapGrowth: number;
  readonly leaks: string[];
  readonly pass: boolean;
}

const log = (line: string) => process.stderr.write(`[soak] ${line}\n`);
const tempRoot = mkdtempSync(join(tmpdir(), "cp-soak-"));
// Every private socket directory and AutoMTLS file the run makes lands here.
process.env.TMPDIR = tempRoot;

/**
 * Runs `total` operations, `parallel` at a time, sampling memory after the
 * warm-up and after each tenth of the rest. `op(i)` throws on a wrong result.
 */
async function measure(
  name: string,
  total: number,
  parallel: number,
  op: (i: number) => Promise<void>,
): Promise<Omit<Phase, "leaks" | "pass">> {
  const firstErrors: string[] = [];
  let failed = 0;
  let next = 0;
  async function runUntil(end: number) {
    await Promise.all(
      Array.from({ length: parallel }, async () => {
        while (next < end) {
          const i = next++;
          try {
            await op(i);
          } catch (error) {
            failed++;
            if (firstErrors.length < 5) firstErrors.push(String(error));
          }
        }
      }),
    );
  }
  const warmUp = Math.max(1, Math.floor(total * 0.2));
  await runUntil(warmUp);
  const warm = memory();
  log(
    `${name}: warmed up after ${warmUp.toLocaleString("en")}, RSS ${warm.rssMb.toFixed(1)} MB, heap ${warm.heapUsedMb.toFixed(1)} MB`,
  );
  const trend: Memory[] = [];
  const started = performance.now();
  for (let tenth = 1; tenth <= 10; tenth++) {
    await runUntil(warmUp + Math.floor(((total - warmUp) * tenth) / 10));
    trend.push(memory());
    log(
      `${name}: ${next.toLocaleString("en")} of ${total.toLocaleString("en")}, RSS ${trend.at(-1)!.rssMb.toFixed(1)} MB, heap ${trend.at(-1)!.heapUsedMb.toFixed(1)} MB, failed ${failed}`,
    );
  }
  const seconds = (performance.now() - started) / 1_000;
  const end = trend.at(-1)!;
  return {
    name,
    operations: total,
    seconds,
    perSecond: (total - warmUp) / seconds,
    failed,
    firstErrors,
    warm,
    end,
    trend,
    rssGrowth: (end.rssMb - warm.rssMb) / warm.rssMb,
    heapGrowth: (end.heapUsedMb - warm.heapUsedMb) / warm.heapUsedMb,
  };
}

function verdict(phase: Omit<Phase, "leaks" | "pass">, leaks: string[]): Phase {
  const memoryOk =
    values["no-memory-target"] === true ||
    (phase.rssGrowth < GROWTH_LIMIT && phase.heapGrowth < GROWTH_LIMIT);
  const pass = phase.failed === 0 && memoryOk && leaks.length === 0;
  return { ...phase, leaks, pass };
}

async function soakTransport(name: TransportName, goBenchPlugin: string): Promise<Phase> {
  const before = handles(tempRoot);
  const target = await openTarget(name, goBenchPlugin);
  let phase;
  try {
    phase = await measure(name, calls, callers, async (i) => {
      // Each request carries its own index, so a reply meant for another
      // call (or a stale one) is caught, not just a missing one.
      const payload = new Uint8Array(16);
      new DataView(payload.buffer).setFloat64(0, i);
      const reply = await target.echo(payload);
      if (Buffer.compare(reply, payload) !== 0)
        throw new Error(`call ${i}: the reply is not its request`);
    });
  } finally {
    await target.close();
  }
  return verdict(phase, await leaksAgainst(before, tempRoot));
}

async function soakCycles(kind: CycleKind, n: number, goKvPlugin: string): Promise<Phase> {
  const before = handles(tempRoot);
  const phase = await measure(`cycles:${kind}`, n, 1, (i) => cycle(kind, goKvPlugin, i));
  return verdict(phase, await leaksAgainst(before, tempRoot));
}

async function buildGo(out: string): Promise<{ bench: string; kv: string }> {
  return {
    bench: await goBuild(out, "./bench/goplugin/plugin", "bench-plugin"),
    kv: await goBuild(out, "./cmd/kv-plugin-connect", "kv-plugin-connect"),
  };
}

function formatTable(phases: readonly Phase[]): string {
  const pct = (x: number) => `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)}%`;
  const lines = [
    "| phase | operations | ops/s | failed | RSS warm → end MB | heap warm → end MB | handles after | result |",
    "|---|---:|---:|---:|---:|---:|---|---|",
  ];
  for (const p of phases) {
    lines.push(
      `| ${p.name} | ${p.operations.toLocaleString("en")} | ${Math.round(p.perSecond).toLocaleString("en")} | ${p.failed} | ${p.warm.rssMb.toFixed(1)} → ${p.end.rssMb.toFixed(1)} (${pct(p.rssGrowth)}) | ${p.warm.heapUsedMb.toFixed(1)} → ${p.end.heapUsedMb.toFixed(1)} (${pct(p.heapGrowth)}) | ${p.leaks.length === 0 ? "baseline" : p.leaks.join("; ")} | ${p.pass ? "pass" : "FAIL"} |`,
    );
  }
  return lines.join("\n");
}

async function main(): Promise<number> {
  const goDir = join(tempRoot, "go-bin");
  log(`building the Go plugins (go build, module cache)`);
  const go = await buildGo(goDir);
  const phases: Phase[] = [];
  for (const name of TRANSPORTS) {
    if (!wanted(name) || calls === 0) continue;
    log(`${name}: ${calls.toLocaleString("en")} calls, ${callers} callers`);
    phases.push(await soakTransport(name, go.bench));
  }
  for (const [kind, n] of [
    ["go", cycles],
    ["node", nodeCycles],
  ] as const) {
    if (!wanted(`cycles:${kind}`) || n === 0) continue;
    log(`cycles:${kind}: ${n.toLocaleString("en")} start / call / stop cycles`);
    phases.push(await soakCycles(kind, n, go.kv));
  }
  const table = formatTable(phases);
  console.log(table);
  for (const p of phases.filter((p) => p.firstErrors.length > 0)) {
    console.log(`${p.name}: first errors:\n  ${p.firstErrors.join("\n  ")}`);
  }
  const pass = phases.every((p) => p.pass);
  console.log(
    `RESULT: ${pass ? "PASS" : "FAIL"} (node ${process.version}, ${callers} callers, load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")})`,
  );
  if (values.json !== undefined) {
    writeFileSync(
      values.json,
      JSON.stringify(
        {
          date: new Date().toISOString(),
          callers,
          memoryTarget: values["no-memory-target"] !== true,
          phases,
        },
        null,
        2,
      ) + "\n",
    );
  }
  return pass ? 0 : 1;
}

let code: number;
try {
  code = await main();
} catch (error) {
  console.log(
    `RESULT: HARNESS ERROR\n${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
  );
  code = 2;
} finally {
  rmSync(tempRoot, { recursive: true, force: true });
}
process.exit(code);
