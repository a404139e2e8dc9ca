/**
 * `npm run bench:memory`: what one plugin costs in memory, Node and Go
 * measured the same way (issue 12, item 5).
 *
 * Every trial runs in a fresh host process (this file with `--trial`), so
 * that the host's growth is its own: it launches N plugins, makes 1,000
 * unary calls to each, leaves them idle, then reads each plugin process's
 * /proc/PID/smaps_rollup (PSS, anonymous, RSS, private) at each idle mark,
 * and its own before and after (both after a full GC). Trials:
 *
 * - scaling: the Node bench plugin (framed + AutoMTLS, the default), the Go
 *   go-plugin bench plugin (GoPluginClient, AutoMTLS) and N spin plugins
 *   served by one Node process, for N = 1, 10, 50, interleaved round by
 *   round. PSS divides shared pages (Node's or Go's text) among the processes
 *   that map them, so it falls with N; anonymous memory does not.
 * - flags: one Node/V8 flag (or environment variable) at a time on the Node
 *   plugin, N = 3, with its cost: cold start (spawn to first call), unary
 *   p50 and 64-caller throughput.
 * - isolation: two plugins in one process against two processes: plugin B's
 *   latency while plugin A's handler keeps the event loop busy, and what
 *   happens to B when A crashes.
 *
 * - layers: what a Node process holds before it serves (bare Node, the
 *   fetch API's undici, protobuf-es and connect-es, connect-plugin).
 *
 * Options: --rounds N (default 3), --quick (1 round, N up to 10, fewer
 * flags), --only scaling|flags|isolation|layers, --json FILE.
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { rmSync } from "node:fs";
import { GoPluginClient, PluginClient, silentLogger, subprocess } from "../src/index.js";
import { bundledBenchPlugin } from "./bundle.js";
import { buildGoContenders } from "./go-build.js";
import { processMemory, type ProcessMemory } from "./proc-memory.js";
import { Bench, benchHandshake } from "./service.js";
import { spinHandshake, spinName, spinService } from "./spin-service.js";
import { median, percentile, round, shuffled } from "./stats.js";

const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url));
const benchPluginMain = here("./plugin.js");
const spinPluginMain = here("./spin-plugin.js");
const CALLS = 1_000;

interface Trial {
  readonly label: string;
  /** node: the bench plugin, one process each; go: go-plugin's; shared: N spin plugins in one Node process. */
  readonly kind: "node" | "go" | "shared";
  readonly n: number;
  readonly flags?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** Idle marks, ms after the last call, at which each plugin is read. */
  readonly idleMs: readonly number[];
  /** Also measure unary p50 and 64-caller throughput (after the memory reads). */
  readonly load?: boolean;
  readonly goPlugin?: string;
  /** The Node plugin's main file (default: the bench plugin; or its esbuild bundle). */
  readonly main?: string;
}

interface TrialResult {
  readonly trial: Trial;
  /** Spawn to first call, ms, per process. */
  readonly coldMs: number[];
  /** Per idle mark, each plugin process's memory. */
  readonly plugins: ProcessMemory[][];
  readonly hostBefore: ProcessMemory;
  readonly hostAfter: ProcessMemory;
  readonly unaryP50Us?: number;
  readonly callsPerS?: number;
}

type Echo = (value: Uint8Array) => Promise<unknown>;

interface Launched {
  readonly pid: number;
  readonly echoes: Echo[];
  close(): Promise<void>;
}

async function launch(t: Trial): Promise<Launched> {
  if (t.kind === "go") {
    if (t.goPlugin === undefined) throw new Error("go trial without a plugin binary");
    const client = new GoPluginClient({
      handshake: benchHandshake,
      plugins: { bench: Bench },
      command: t.goPlugin,
      autoMTLS: true,
      logger: silentLogger,
    });
    return startBench(client);
  }
  if (t.kind === "shared") {
    const plugins: Record<string, ReturnType<typeof spinService>> = {};
    for (let k = 0; k < t.n; k++) plugins[spinName(k)] = spinService(k);
    const client = new PluginClient({
      handshake: spinHandshake,
      plugins,
      source: subprocess(process.execPath, [...(t.flags ?? []), spinPluginMain, String(t.n)], {
        ...(t.env !== undefined && { env: t.env }),
      }),
      logger: silentLogger,
    });
    await client.start();
    const echoes = Object.keys(plugins).map((name): Echo => {
      const p = client.dispense(name);
      return (value) => p.echo({ value });
    });
    return { pid: pidOf(client.pid), echoes, close: () => client.close() };
  }
  const client = new PluginClient({
    handshake: benchHandshake,
    plugins: { bench: Bench },
    source: subprocess(process.execPath, [...(t.flags ?? []), t.main ?? benchPluginMain], {
      ...(t.env !== undefined && { env: t.env }),
    }),
    logger: silentLogger,
  });
  return startBench(client);
}

/** Starts a host client (PluginClient or GoPluginClient) of the bench plugin. */
async function startBench(client: {
  start(): Promise<void>;
  dispense(name: "bench"): { echo(req: { value: Uint8Array }): Promise<unknown> };
  readonly pid: number | undefined;
  close(): Promise<void>;
}): Promise<Launched> {
  await client.start();
  const bench = client.dispense("bench");
  return {
    pid: pidOf(client.pid),
    echoes: [(value) => bench.echo({ value })],
    close: () => client.close(),
  };
}

function pidOf(pid: number | undefined): number {
  if (pid === undefined) throw new Error("the plugin has no process id");
  return pid;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function hostSettled(): Promise<ProcessMemory> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error("the trial host needs --expose-gc");
  gc();
  await sleep(200);
  gc();
  return processMemory(process.pid);
}

async function runTrial(t: Trial): Promise<TrialResult> {
  const hostBefore = await hostSettled();
  const processes = t.kind === "shared" ? 1 : t.n;
  const launched: Launched[] = [];
  const coldMs: number[] = [];
  const payload = new Uint8Array(16).fill(7);
  try {
    for (let i = 0; i < processes; i++) {
      const start = performance.now();
      const l = await launch(t);
      launched.push(l); // closed in finally even if its first call fails
      await l.echoes[0]?.(payload);
      coldMs.push(performance.now() - start);
    }
    for (const l of launched) {
      for (const echo of l.echoes) for (let c = 1; c < CALLS; c++) await echo(payload);
    }
    const plugins: ProcessMemory[][] = [];
    const began = performance.now();
    for (const mark of t.idleMs) {
      await sleep(Math.max(0, mark - (performance.now() - began)));
      plugins.push(launched.map((l) => processMemory(l.pid)));
    }
    const hostAfter = await hostSettled();
    const result: TrialResult = { trial: t, coldMs, plugins, hostBefore, hostAfter };
    const first = launched[0]?.echoes[0];
    if (t.load !== true || first === undefined) return result;
    const samples: number[] = [];
    for (let i = 0; i < 2_000; i++) {
      const s = process.hrtime.bigint();
      await first(payload);
      samples.push(Number(process.hrtime.bigint() - s) / 1_000);
    }
    let done = 0;
    const end = performance.now() + 1_000;
    const from = performance.now();
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (performance.now() < end) {
          await first(payload);
          done++;
        }
      }),
    );
    return {
      ...result,
      unaryP50Us: median(samples),
      callsPerS: done / ((performance.now() - from) / 1_000),
    };
  } finally {
    await Promise.all(launched.map((l) => l.close()));
  }
}

/**
 * Runs one trial in a fresh host process (this file, --trial). A trial that
 * fails (a flag the plugin cannot start with) gives its error's first line.
 */
function trialProcess(t: Trial): Promise<TrialResult | { trial: Trial; error: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--expose-gc", here("./plugin-memory.js"), "--trial", JSON.stringify(t)],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code === 0) return resolve(JSON.parse(out) as TrialResult);
      const cause = /^(\w*Error:.*|PluginError.*)$/m.exec(err)?.[1] ?? `exit code ${code}`;
      const plugin = /^(\w*Error: .*)$/gm;
      const lines = [...err.matchAll(plugin)].map((m) => m[1]);
      resolve({
        trial: t,
        error: [cause, ...lines.filter((l) => l !== cause)].join(" / ").slice(0, 400),
      });
    });
  });
}

// ---- isolation: two plugins in one process against two processes ----

interface IsolationResult {
  readonly placement: "one process" | "two processes";
  /** Plugin B's echo latency, µs: A idle, then A's handler busy 50 ms per call. */
  readonly bIdle: { p50: number; p99: number; max: number };
  readonly bWhileABusy: { p50: number; p99: number; max: number };
  /** What B's next call gave after A crashed (Spin(-1)). */
  readonly bAfterACrash: string;
  /** Memory of the process(es) serving A and B, summed. */
  readonly memory: { pssMb: number; anonymousMb: number };
}

async function isolation(placement: IsolationResult["placement"]): Promise<IsolationResult> {
  const open = async (count: number) => {
    const plugins: Record<string, ReturnType<typeof spinService>> = {};
    for (let k = 0; k < count; k++) plugins[spinName(k)] = spinService(k);
    const client = new PluginClient({
      handshake: spinHandshake,
      plugins,
      source: subprocess(process.execPath, [spinPluginMain, String(count)]),
      logger: silentLogger,
    });
    await client.start();
    return client;
  };
  const clients = placement === "one process" ? [await open(2)] : [await open(1), await open(1)];
  const a = clients[0]!.dispense(spinName(0));
  const b =
    placement === "one process"
      ? clients[0]!.dispense(spinName(1))
      : clients[1]!.dispense(spinName(0));
  const payload = new Uint8Array(16).fill(7);
  const timeB = async (ms: number): Promise<number[]> => {
    const out: number[] = [];
    const end = performance.now() + ms;
    while (performance.now() < end) {
      const s = process.hrtime.bigint();
      await b.echo({ value: payload });
      out.push(Number(process.hrtime.bigint() - s) / 1_000);
    }
    return out;
  };
  const summary = (s: number[]) => ({
    p50: round(median(s)),
    p99: round(percentile(s, 99)),
    max: round(Math.max(...s)),
  });
  try {
    for (let i = 0; i < 500; i++) await b.echo({ value: payload });
    for (let i = 0; i < 500; i++) await a.echo({ value: payload });
    const bIdle = summary(await timeB(2_000));
    let busy = true;
    const spinner = (async () => {
      while (busy) await a.spin({ value: 50n });
    })();
    const bWhileABusy = summary(await timeB(2_000));
    busy = false;
    await spinner;
    const mem = clients.map((c) => processMemory(pidOf(c.pid)));
    const memory = {
      pssMb: round(mem.reduce((s, m) => s + m.pssMb, 0)),
      anonymousMb: round(mem.reduce((s, m) => s + m.anonymousMb, 0)),
    };
    await a.spin({ value: -1n });
    await sleep(500);
    let bAfterACrash: string;
    try {
      await b.echo({ value: payload });
      bAfterACrash = "answered";
    } catch (e) {
      bAfterACrash = `failed: ${e instanceof Error ? e.message : String(e)}`;
    }
    return { placement, bIdle, bWhileABusy, bAfterACrash, memory };
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  }
}

// ---- layers: what a plugin process holds before it serves ----

const LAYERS: ReadonlyArray<{ label: string; code: string }> = [
  { label: "node, empty module", code: "" },
  {
    label: "+ new Headers() (undici, which every Connect handler context uses)",
    code: "new Headers();",
  },
  {
    label: "+ import @bufbuild/protobuf, @connectrpc/connect",
    code: 'new Headers(); await import("@bufbuild/protobuf"); await import("@connectrpc/connect");',
  },
  {
    label: "+ import connect-plugin/plugin and the bench service (not serving)",
    code: `new Headers(); await import(${JSON.stringify(here("../src/plugin.js"))}); await import(${JSON.stringify(here("./service.js"))});`,
  },
];

/** One layer's process: its memory after a full GC and `idleMs` of idle, and V8's heap figures. */
function layerProcess(
  code: string,
  idleMs: number,
  flags: readonly string[],
): Promise<Record<string, number>> {
  const script = `${code}
const { readFileSync } = await import("node:fs");
await new Promise((r) => setTimeout(r, ${idleMs}));
globalThis.gc();
const text = readFileSync("/proc/self/smaps_rollup", "utf8");
const kb = (f) => Number(text.split(String.fromCharCode(10)).find((l) => l.startsWith(f + ":")).split(/ +/)[1]) / 1024;
const m = process.memoryUsage();
process.stdout.write(JSON.stringify({ pss: kb("Pss"), anon: kb("Anonymous"), rss: kb("Rss"), heapUsed: m.heapUsed / 2 ** 20, heapTotal: m.heapTotal / 2 ** 20, external: m.external / 2 ** 20 }));`;
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--expose-gc", ...flags, "--input-type=module", "-e", script],
      { cwd: here("../.."), stdio: ["ignore", "pipe", "inherit"] },
    );
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0
        ? resolve(JSON.parse(out) as Record<string, number>)
        : reject(new Error(`layer exited with ${code}`)),
    );
  });
}

// ---- the orchestrator ----

/** Node/V8 flags and environment variables tried one at a time on the plugin process. */
const FLAG_SETS: ReadonlyArray<{
  label: string;
  flags?: string[];
  env?: Record<string, string>;
  bundle?: boolean;
}> = [
  { label: "default" },
  { label: "--max-semi-space-size=1", flags: ["--max-semi-space-size=1"] },
  { label: "--max-old-space-size=32", flags: ["--max-old-space-size=32"] },
  { label: "--v8-pool-size=1", flags: ["--v8-pool-size=1"] },
  { label: "--single-threaded", flags: ["--single-threaded"] },
  { label: "--single-threaded-gc", flags: ["--single-threaded-gc"] },
  { label: "--optimize-for-size", flags: ["--optimize-for-size"] },
  { label: "--no-opt", flags: ["--no-opt"] },
  { label: "--stack-size=256", flags: ["--stack-size=256"] },
  { label: "--lite-mode", flags: ["--lite-mode"] },
  { label: "--jitless", flags: ["--jitless"] },
  { label: "MALLOC_ARENA_MAX=1", env: { MALLOC_ARENA_MAX: "1" } },
  { label: "UV_THREADPOOL_SIZE=1", env: { UV_THREADPOOL_SIZE: "1" } },
  { label: "bundled by esbuild (bench/bundle.ts)", bundle: true },
  {
    label: "--max-semi-space-size=1 --optimize-for-size",
    flags: ["--max-semi-space-size=1", "--optimize-for-size"],
  },
  {
    label: "bundled, --max-semi-space-size=1",
    flags: ["--max-semi-space-size=1"],
    bundle: true,
  },
];

const QUICK_FLAGS = new Set([
  "default",
  "--max-semi-space-size=1",
  "--optimize-for-size",
  "--max-semi-space-size=1 --optimize-for-size",
]);

const mb = (x: number): string => x.toFixed(1);

/** Per-plugin figures of a trial at one idle mark: medians over processes, or one process / N when shared. */
function perPlugin(r: TrialResult, mark: number) {
  const procs = r.plugins[mark] ?? [];
  const div = r.trial.kind === "shared" ? r.trial.n : 1;
  const m = (f: (p: ProcessMemory) => number) => median(procs.map(f)) / div;
  return {
    pss: m((p) => p.pssMb),
    anon: m((p) => p.anonymousMb),
    rss: m((p) => p.rssMb),
    priv: m((p) => p.privateMb),
    hostPss: (r.hostAfter.pssMb - r.hostBefore.pssMb) / r.trial.n,
    hostAnon: (r.hostAfter.anonymousMb - r.hostBefore.anonymousMb) / r.trial.n,
  };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const opt = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const quick = argv.includes("--quick");
  const rounds = Number(opt("--rounds") ?? (quick ? 1 : 3));
  const only = opt("--only");
  const idleMs = quick ? [2_000, 6_000] : [2_000, 12_000];
  const log = (s: string) => process.stderr.write(`${s}\n`);
  log(
    `node ${process.version}, ${rounds} round(s), idle marks ${idleMs.join(", ")} ms; load ${(
      await import("node:os")
    )
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(" ")}`,
  );

  const go = await buildGoContenders();
  const bundle = await bundledBenchPlugin();
  const results: TrialResult[] = [];
  const failures: Array<{ trial: Trial; error: string }> = [];
  const ns = quick ? [1, 10] : [1, 10, 50];
  const scaling: Trial[] = [];
  for (const n of ns) {
    scaling.push({ label: "Node plugin (framed + AutoMTLS)", kind: "node", n, idleMs });
    scaling.push({
      label: "Node plugin, --max-semi-space-size=1",
      kind: "node",
      n,
      idleMs,
      flags: ["--max-semi-space-size=1"],
    });
    scaling.push({
      label: "Go go-plugin plugin (gRPC + AutoMTLS)",
      kind: "go",
      n,
      idleMs,
      goPlugin: go.plugin,
    });
    scaling.push({ label: "Node, N plugins in one process", kind: "shared", n, idleMs });
  }
  const flagTrials: Trial[] = FLAG_SETS.filter((f) => !quick || QUICK_FLAGS.has(f.label)).map(
    (f) => ({
      label: f.label,
      kind: "node",
      n: 3,
      idleMs,
      load: true,
      ...(f.flags !== undefined && { flags: f.flags }),
      ...(f.env !== undefined && { env: f.env }),
      ...(f.bundle === true && { main: bundle }),
    }),
  );
  for (let round = 0; round < rounds; round++) {
    const trials = shuffled([
      ...(only === undefined || only === "scaling" ? scaling : []),
      ...(only === undefined || only === "flags" ? flagTrials : []),
    ]);
    for (const t of trials) {
      log(`round ${round + 1}/${rounds}: ${t.label}, n=${t.n}`);
      const r = await trialProcess(t);
      if ("error" in r) {
        log(`  failed: ${r.error}`);
        failures.push(r);
      } else results.push(r);
    }
  }
  rmSync(go.dir, { recursive: true, force: true });

  const last = idleMs.length - 1;
  const groups = new Map<string, TrialResult[]>();
  for (const r of results) {
    const key = `${r.trial.label}\u0000${r.trial.n}\u0000${r.trial.load === true}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const table: string[] = [];
  const rows: Record<string, unknown>[] = [];
  table.push(
    `| trial | N | PSS MB (idle ${idleMs[0]! / 1000} s → ${idleMs[last]! / 1000} s) | anonymous MB | RSS MB | private MB | host PSS / anon growth per plugin MB | cold start ms | unary p50 µs | 64 callers/s |`,
    "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
  );
  for (const rs of groups.values()) {
    const t = rs[0]!.trial;
    const at = (mark: number) => rs.map((r) => perPlugin(r, mark));
    const med = (xs: number[]) => median(xs);
    const first = at(0);
    const end = at(last);
    const row = {
      trial: t.label,
      kind: t.kind,
      n: t.n,
      rounds: rs.length,
      pss_first_mb: med(first.map((x) => x.pss)),
      pss_mb: med(end.map((x) => x.pss)),
      pss_min_mb: Math.min(...end.map((x) => x.pss)),
      pss_max_mb: Math.max(...end.map((x) => x.pss)),
      anon_first_mb: med(first.map((x) => x.anon)),
      anon_mb: med(end.map((x) => x.anon)),
      rss_mb: med(end.map((x) => x.rss)),
      private_mb: med(end.map((x) => x.priv)),
      host_pss_growth_mb: med(end.map((x) => x.hostPss)),
      host_anon_growth_mb: med(end.map((x) => x.hostAnon)),
      cold_ms: med(rs.flatMap((r) => r.coldMs)),
      ...(t.load === true && {
        unary_p50_us: med(rs.map((r) => r.unaryP50Us ?? NaN)),
        calls_per_s: med(rs.map((r) => r.callsPerS ?? NaN)),
      }),
    };
    rows.push(row);
    table.push(
      `| ${t.label} | ${t.n} | ${mb(row.pss_first_mb)} → ${mb(row.pss_mb)} (${mb(row.pss_min_mb)}–${mb(row.pss_max_mb)}) | ${mb(row.anon_first_mb)} → ${mb(row.anon_mb)} | ${mb(row.rss_mb)} | ${mb(row.private_mb)} | ${row.host_pss_growth_mb.toFixed(2)} / ${row.host_anon_growth_mb.toFixed(2)} | ${row.cold_ms.toFixed(0)} | ${row.unary_p50_us === undefined ? "" : row.unary_p50_us.toFixed(0)} | ${row.calls_per_s === undefined ? "" : row.calls_per_s.toFixed(0)} |`,
    );
  }
  if (results.length > 0) process.stdout.write(`\n${table.join("\n")}\n`);
  const failed = new Map(failures.map((f) => [f.trial.label, f.error]));
  for (const [label, error] of failed)
    process.stdout.write(`\n${label}: the plugin failed: ${error}\n`);

  const iso: IsolationResult[] = [];
  if (only === undefined || only === "isolation") {
    for (let round = 0; round < Math.max(1, rounds - 1); round++) {
      for (const placement of shuffled(["one process", "two processes"] as const)) {
        log(`isolation ${round + 1}: ${placement}`);
        iso.push(await isolation(placement));
      }
    }
    process.stdout.write(
      `\n| plugins A and B in | B p50/p99/max µs, A idle | B p50/p99/max µs, A busy 50 ms per call | B after A crashed | PSS / anonymous MB, both |\n|---|--:|--:|---|--:|\n`,
    );
    for (const r of iso) {
      const f = (s: { p50: number; p99: number; max: number }) => `${s.p50} / ${s.p99} / ${s.max}`;
      process.stdout.write(
        `| ${r.placement} | ${f(r.bIdle)} | ${f(r.bWhileABusy)} | ${r.bAfterACrash} | ${mb(r.memory.pssMb)} / ${mb(r.memory.anonymousMb)} |\n`,
      );
    }
  }
  const layers: Array<{
    label: string;
    figures: Array<Record<string, number>>;
    small: Array<Record<string, number>>;
  }> = [];
  if (only === undefined || only === "layers") {
    for (const l of LAYERS) layers.push({ label: l.label, figures: [], small: [] });
    for (let round = 0; round < rounds; round++) {
      for (const i of shuffled(LAYERS.map((_, i) => i))) {
        layers[i]!.figures.push(await layerProcess(LAYERS[i]!.code, 2_000, []));
        layers[i]!.small.push(
          await layerProcess(LAYERS[i]!.code, 2_000, ["--max-semi-space-size=1"]),
        );
      }
    }
    process.stdout.write(
      `\n| plugin process, after a full GC | anonymous MB | PSS MB | V8 heap used / total MB | external MB | anonymous MB, --max-semi-space-size=1 | heap total MB, same |\n|---|--:|--:|--:|--:|--:|--:|\n`,
    );
    for (const l of layers) {
      const m = (k: string, fs = l.figures) => mb(median(fs.map((f) => f[k] ?? NaN)));
      process.stdout.write(
        `| ${l.label} | ${m("anon")} | ${m("pss")} | ${m("heapUsed")} / ${m("heapTotal")} | ${m("external")} | ${m("anon", l.small)} | ${m("heapTotal", l.small)} |\n`,
      );
    }
  }
  const json = opt("--json");
  if (json !== undefined)
    writeFileSync(
      json,
      `${JSON.stringify({ rows, layers, isolation: iso, failures, results }, null, 2)}\n`,
    );
}

if (process.argv[2] === "--trial") {
  const result = await runTrial(JSON.parse(process.argv[3] ?? "{}") as Trial);
  process.stdout.write(JSON.stringify(result));
  process.exit(0);
} else {
  await main();
}
