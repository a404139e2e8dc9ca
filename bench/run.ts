/**
 * `npm run bench`: every scenario against every contender on this machine,
 * in one run. Rounds interleave the contenders (scenario by scenario, in an
 * order shuffled afresh each round from `--seed`, printed), so that drift on
 * a shared machine hits them all alike; each figure is the median over
 * rounds (latency percentiles pool every sample), and the spread is the
 * lowest and highest round. Prints Markdown; `--json FILE` writes the rows;
 * `--quick` runs fewer rounds (under 4 minutes). Every host, Node or Go,
 * runs in a process of its own (HostProcess). `--placement same|split|all|none`
 * adds scenario 1 with host and plugin pinned (`taskset`) to one CPU
 * (`same`), to two (`split`), or both (`all`, the default of a full run;
 * `none` is `--quick`'s), each placement with its own floor.
 */
import { execFile, execFileSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { GoPluginHost, HostProcess, benchPluginMain, openPlugin } from "./contenders.js";
import type { NodeKind } from "./node-host.js";
import { pinnedPlacements, type Placement } from "./placement.js";
import { bundledBenchPlugin, codeCacheBenchPlugin, snapshotBenchPlugin } from "./bundle.js";
import { goHostConnectPlugin } from "./interop.js";
import { buildGoContenders, goVersion } from "./go-build.js";
import { interleavedBatches } from "./batches.js";
import { markdownTable, markdownTargets, type Row } from "./report.js";
import { targets } from "./targets.js";
import {
  CALLERS,
  CG_REMOTE,
  COLD_BUNDLED,
  COLD_CODE_CACHE,
  COLD_PLAIN,
  COLD_SNAPSHOT,
  CP_DIRECT,
  CP_FRAMED,
  CP_FRAMED_PLAIN,
  CP_H2,
  CP_H2_PLAIN,
  CP_HOST_GO_PLUGIN,
  CP_REMOTE,
  CP_REMOTE_FRAMED,
  CP_REMOTE_FRAMED_TLS,
  CP_REMOTE_GRPC,
  CP_SERIALIZE,
  FLOOR,
  GO_HOST_CP_PLUGIN,
  GO_PLUGIN,
  GO_PLUGIN_MTLS,
  H2_FLOOR,
  H2_FLOOR_TCP,
  HOST_RSS_FRAMED,
  NODE_BOOT,
  PINNED_PREFIX,
  PLAIN_CALL,
  PLUGINS,
  S,
} from "./names.js";
import { median, percentile, round, shuffled as shuffleWith } from "./stats.js";
import { processMemory, type ProcessMemory } from "./proc-memory.js";
import { MiB, REWARM, RUN_SIZES } from "./run-sizes.js";
import { subprocess } from "../src/index.js";
import { seededRandom } from "../chaos/seeded-random.js";

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const jsonIndex = args.indexOf("--json");
const jsonFile = jsonIndex >= 0 ? args[jsonIndex + 1] : undefined;
const seedIndex = args.indexOf("--seed");
const seed = seedIndex >= 0 ? Number(args[seedIndex + 1]) : Math.floor(Math.random() * 2 ** 31);
if (!Number.isInteger(seed))
  throw new Error(`--seed must be a whole number, got ${args[seedIndex + 1]}`);
const placementIndex = args.indexOf("--placement");
const placementArg = placementIndex >= 0 ? args[placementIndex + 1] : quick ? "none" : "all";
if (!["same", "split", "all", "none"].includes(placementArg ?? ""))
  throw new Error(`--placement must be same, split, all or none, got ${placementArg}`);

const P = quick ? RUN_SIZES.quick : RUN_SIZES.full;

const log = (msg: string): void => void process.stderr.write(`${msg}\n`);

// --- contenders --------------------------------------------------------------
log("building the Go contenders (go build)...");
const go = await buildGoContenders();
// Ctrl-C or kill: the hosts (process groups of their own) see their stdin end
// when this process exits and close their plugins; only the build is ours.
for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.once(signal, () => {
    log(`${signal}: stopping; every host closes its plugin`);
    rmSync(go.dir, { recursive: true, force: true });
    process.exit(signal === "SIGINT" ? 130 : 143);
  });
const bundledPlugin = await bundledBenchPlugin();
const snapshotBlob = await snapshotBenchPlugin();
const codeCachePlugin = await codeCacheBenchPlugin();
/**
 * Every contender, Node or Go, is a host process of its own (HostProcess),
 * started unpinned or in a pinned placement.
 */
type Start = (placement?: Placement) => Promise<HostProcess>;
const nodeHost =
  (name: string, kind: NodeKind, ...args: string[]): Start =>
  (placement) =>
    HostProcess.node(name, kind, args, placement);
const starts: Start[] = [
  (p) => GoPluginHost.start(GO_PLUGIN, go.host, go.plugin, false, p),
  (p) => GoPluginHost.start(GO_PLUGIN_MTLS, go.host, go.plugin, true, p),
  nodeHost(CP_FRAMED, "subprocess-framed"),
  nodeHost(CP_FRAMED_PLAIN, "subprocess-framed-plain"),
  nodeHost(CP_H2, "subprocess-connect"),
  nodeHost(CP_H2_PLAIN, "subprocess-connect-plain"),
  nodeHost(CP_REMOTE, "remote-connect"),
  nodeHost(CP_REMOTE_GRPC, "remote-grpc"),
  nodeHost(CP_REMOTE_FRAMED, "remote-framed"),
  nodeHost(CP_REMOTE_FRAMED_TLS, "remote-framed-tls"),
  nodeHost(CG_REMOTE, "remote-connect-go", go.connectGo),
  nodeHost(CP_HOST_GO_PLUGIN, "go-plugin-client", go.plugin),
  (p) => goHostConnectPlugin(GO_HOST_CP_PLUGIN, go.host, p),
  nodeHost("@grpc/grpc-js client and server, unix socket", "grpc-js"),
  nodeHost("vscode-jsonrpc over stdio", "vscode-jsonrpc"),
  nodeHost("JSON over HTTP/1.1 keep-alive, unix socket", "http-json"),
  nodeHost(FLOOR, "raw-socket"),
  nodeHost(H2_FLOOR, "raw-http2"),
  nodeHost(H2_FLOOR_TCP, "raw-http2-tcp"),
];
/** Starts every host, four at a time (nothing is measured yet), in the list's order. */
async function startAll(placement?: Placement): Promise<HostProcess[]> {
  const out: HostProcess[] = [];
  for (let i = 0; i < starts.length; i += 4)
    out.push(...(await Promise.all(starts.slice(i, i + 4).map((start) => start(placement)))));
  return out;
}
log("starting contenders (a host process each)...");
const tStart = performance.now();
const contenders = await startAll();
const inProc = await Promise.all([
  HostProcess.node(CP_DIRECT, "in-process-direct"),
  HostProcess.node(CP_SERIALIZE, "in-process-serialize"),
  HostProcess.node(PLAIN_CALL, "plain"),
]);
/** Scenario 2's label for each row: the cores each side may use. */
const cores = new Map(contenders.map((c) => [c.name, c.cores(CALLERS)]));

// --- scenarios ---------------------------------------------------------------
const samples = new Map<string, number[]>();
const add = (scenario: string, contender: string, values: number[]): void => {
  const key = `${scenario}\u0000${contender}`;
  const list = samples.get(key) ?? [];
  list.push(...values);
  samples.set(key, list);
};
const get = (scenario: string, contender: string): number[] =>
  samples.get(`${scenario}\u0000${contender}`) ?? [];
/** Each round's own figure (p50, or the rate), for the spread between rounds. */
const perRound = new Map<string, number[]>();
const addRound = (scenario: string, contender: string, value: number): void => {
  const key = `${scenario}\u0000${contender}`;
  perRound.set(key, [...(perRound.get(key) ?? []), value]);
};
const measured = (scenario: string, contender: string, values: number[], rate: boolean): void => {
  add(scenario, contender, values);
  addRound(scenario, contender, rate ? (values[0] as number) : median(values));
};

/** Seeded, so that a run's orders can be replayed. */
const random = seededRandom(seed);
const shuffled = <T>(items: readonly T[]): T[] => shuffleWith(items, random);

log(`started in ${Math.round((performance.now() - tStart) / 1000)} s`);
const t0 = performance.now();
// Warm-up, so that every contender's JIT has seen each kind of call.
for (const c of contenders) {
  await c.unary(500, 16);
  await c.concurrent(200, CALLERS);
  await c.stream(P.stream);
  await c.unary(3, MiB);
}
for (const c of inProc) await c.batches(2);
for (let round = 1; round <= P.rounds; round++) {
  log(`round ${round}/${P.rounds} (${Math.round((performance.now() - t0) / 1000)} s)`);
  // A fresh order for every scenario of every round, so that no contender
  // always runs first, last, or right after the same neighbour.
  // Each measured batch right after a short unmeasured one of the same kind
  // (REWARM), so that what the host did last (idle for a minute while the
  // others ran, 1 MiB calls, a stream) does not land in the measurement.
  for (const c of shuffled(contenders)) {
    await c.unary(REWARM.unary, 16);
    measured(S.unary, c.name, await c.unary(P.unary, 16), false);
  }
  for (const c of shuffled(contenders)) {
    await c.concurrent(REWARM.concurrentMs, CALLERS);
    measured(S.concurrent, c.name, [await c.concurrent(P.concurrentMs, CALLERS)], true);
  }
  // 1 MiB calls in P.bigBatches batches of P.big per round, each batch over
  // the contenders in a fresh order after its rewarm (bench/batches.ts):
  // one batch's p50 alone swung 0.4-3.6x go-plugin's per round.
  const tBig = performance.now();
  const big = await interleavedBatches(
    contenders.map((c) => [c.name, c] as const),
    { batches: P.bigBatches, warm: REWARM.big, n: P.big, size: MiB },
    shuffled,
  );
  for (const [name, values] of big) measured(S.big, name, values, false);
  log(`  1 MiB calls: ${Math.round((performance.now() - tBig) / 1000)} s`);
  for (const c of shuffled(contenders)) {
    await c.stream(P.stream / 10);
    measured(S.stream, c.name, [await c.stream(P.stream)], true);
  }
  for (const c of shuffled(inProc)) measured(S.inproc, c.name, await c.batches(P.inproc), false);
  // Cold starts, interleaved and shuffled too.
  const goHost = contenders[0] as HostProcess;
  const goHostMtls = contenders[1] as HostProcess;
  const colds: Array<[string, () => Promise<number[]>]> = [
    [GO_PLUGIN, () => goHost.cold(P.cold)],
    [GO_PLUGIN_MTLS, () => goHostMtls.cold(P.cold)],
    [COLD_PLAIN, () => coldStarts(P.cold, [benchPluginMain])],
    [COLD_BUNDLED, () => coldStarts(P.cold, [bundledPlugin])],
    [COLD_SNAPSHOT, () => coldStarts(P.cold, ["--snapshot-blob", snapshotBlob])],
    [COLD_CODE_CACHE, () => coldStarts(P.cold, [codeCachePlugin])],
    [NODE_BOOT, () => nodeBoots(P.cold)],
  ];
  for (const [name, run] of shuffled(colds)) measured(S.cold, name, await run(), false);
}

/** How long Node takes to start and exit with nothing to do: the part of a cold start no plugin code can remove. */
async function nodeBoots(n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await promisify(execFile)(process.execPath, ["-e", "0"]);
    out.push((performance.now() - t) * 1_000);
  }
  return out;
}

/** Spawn to first answer of `node ...args` (the bench plugin, AutoMTLS on), `n` times. */
async function coldStarts(n: number, args: string[]): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const client = await openPlugin(subprocess(process.execPath, args));
    out.push((performance.now() - t) * 1_000);
    await client.close();
  }
  return out;
}

/** The host's RSS growth per plugin, measured in a fresh process (bench/rss-host.ts). */
async function rssPerPlugin(n: number): Promise<number> {
  const { stdout } = await promisify(execFile)(process.execPath, [
    fileURLToPath(new URL("./rss-host.js", import.meta.url)),
    String(n),
  ]);
  return (JSON.parse(stdout) as { mb_per_plugin: number }).mb_per_plugin;
}

// Each serving process's memory after the run (idle now, after thousands of calls).
const serverMemory: Array<[string, ProcessMemory]> = [];
for (const c of contenders) {
  const pid = c.serverPid?.();
  if (pid !== undefined) serverMemory.push([c.name, processMemory(pid)]);
}
log("memory with 50 plugins...");
const goHost = contenders[0] as HostProcess;
const rss: Array<[string, number]> = [
  [GO_PLUGIN, await goHost.rss(PLUGINS)],
  [HOST_RSS_FRAMED, await rssPerPlugin(PLUGINS)],
];
await Promise.all([...contenders, ...inProc].map((c) => c.close()));

// Scenario 1 again in each pinned placement, with every host (and its
// floor) started afresh under taskset, rounds interleaved and shuffled.
const available = placementArg === "none" ? [] : pinnedPlacements();
const placements =
  typeof available === "string"
    ? []
    : available.filter((p) => placementArg === "all" || p.name === placementArg);
const pinnedScenario = (p: Placement): string => `${PINNED_PREFIX}${p.label}`;
for (const p of placements) {
  log(`pinned: ${p.label} (${Math.round((performance.now() - t0) / 1000)} s)...`);
  const pinned = await startAll(p);
  for (const c of pinned) await c.unary(500, 16);
  for (let r = 0; r < P.rounds; r++)
    for (const c of shuffled(pinned)) {
      await c.unary(REWARM.unary, 16);
      measured(pinnedScenario(p), c.name, await c.unary(P.unary, 16), false);
    }
  await Promise.all(pinned.map((c) => c.close()));
}
rmSync(go.dir, { recursive: true, force: true });

// --- report ------------------------------------------------------------------
const rows: Row[] = [];
const spread = (scenario: string, contender: string): [number, number] | null => {
  const r = perRound.get(`${scenario}\u0000${contender}`) ?? [];
  return r.length === 0 ? null : [Math.min(...r), Math.max(...r)];
};
const latencyRow = (scenario: string, contender: string): Row => {
  const s = get(scenario, contender);
  return {
    scenario,
    contender,
    p50_us: percentile(s, 50),
    p99_us: percentile(s, 99),
    ops_per_s: null,
    rss_mb: null,
    spread: spread(scenario, contender),
  };
};
const rateRow = (scenario: string, contender: string): Row => ({
  scenario,
  contender,
  p50_us: null,
  p99_us: null,
  ops_per_s: median(get(scenario, contender)),
  rss_mb: null,
  spread: spread(scenario, contender),
});
const names = contenders.map((c) => c.name);
for (const n of names) rows.push(latencyRow(S.unary, n));
for (const p of placements) for (const n of names) rows.push(latencyRow(pinnedScenario(p), n));
for (const n of names) rows.push({ ...rateRow(S.concurrent, n), cores: cores.get(n) ?? "" });
for (const n of names) rows.push(latencyRow(S.big, n));
for (const n of names) rows.push(rateRow(S.stream, n));
for (const n of [
  GO_PLUGIN,
  GO_PLUGIN_MTLS,
  COLD_PLAIN,
  COLD_BUNDLED,
  COLD_CODE_CACHE,
  COLD_SNAPSHOT,
  NODE_BOOT,
]) {
  const s = get(S.cold, n);
  rows.push({
    scenario: S.cold,
    contender: n,
    p50_us: median(s),
    p99_us: null,
    ops_per_s: null,
    rss_mb: null,
    spread: spread(S.cold, n),
  });
}
for (const n of inProc.map((c) => c.name)) {
  const s = get(S.inproc, n);
  const p50 = median(s);
  rows.push({
    scenario: S.inproc,
    contender: n,
    p50_us: p50,
    p99_us: null,
    ops_per_s: 1e6 / p50,
    rss_mb: null,
    spread: spread(S.inproc, n),
  });
}
const memoryRow = (scenario: string, contender: string, mb: number): Row => ({
  scenario,
  contender,
  p50_us: null,
  p99_us: null,
  ops_per_s: null,
  rss_mb: mb,
  spread: null,
});
for (const [n, mb] of rss) rows.push(memoryRow(S.rss, n, mb));
for (const [n, m] of serverMemory) rows.push(memoryRow(S.pss, n, m.pssMb));
for (const [n, m] of serverMemory) rows.push(memoryRow(S.anon, n, m.anonymousMb));
for (const r of rows) {
  for (const k of ["p50_us", "p99_us", "ops_per_s", "rss_mb"] as const) {
    const v = r[k];
    r[k] = v === null ? null : round(v);
  }
  if (r.spread !== null) r.spread = [round(r.spread[0]), round(r.spread[1])];
}

const targetList = targets(rows);

const cpu =
  /model name\s*:\s*(.*)/.exec(
    safe(() => execFileSync("cat", ["/proc/cpuinfo"]).toString()),
  )?.[1] ??
  cpus()[0]?.model ??
  "?";
const machine =
  `${cpus().length} cores (${cpu}), ${Math.round(totalmem() / 2 ** 30)} GiB RAM, ` +
  `load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(" ")} at the end, ` +
  `Node ${process.version}, ${await goVersion()}, ${new Date().toISOString().slice(0, 10)}, ` +
  // Every Node process parses this file at start, node -e 0 included: it
  // moves the cold-start reference (bench/cold-start.ts --no-extra-ca).
  `NODE_EXTRA_CA_CERTS ${process.env.NODE_EXTRA_CA_CERTS === undefined ? "unset" : "set"}`;
console.log(
  `\n${machine}; ${P.rounds} interleaved rounds${quick ? " (--quick)" : ""}, ${round((performance.now() - t0) / 1000)} s\n`,
);
console.log(markdownTable(rows));
console.log(
  `\nOrder seed ${seed} (--seed ${seed} replays the orders). Every host, Node or Go, runs ` +
    `in a process of its own (bench/node-host.ts, go/bench/goplugin/host), driven over a ` +
    `JSON-lines pipe, and every plugin or server in another; the in-process rows are in ` +
    `process within their own host. Scenario 2: each row says what each side may use: a ` +
    `Node host runs its ${CALLERS} callers as async loops on one JavaScript thread, a Go ` +
    `host as goroutines on all its CPUs. ` +
    (placements.length > 0
      ? `Pinned rows: the host started under \`taskset -c\`, its plugin or server re-pinned ` +
        `(every thread, \`taskset -a -p -c\`) and checked with \`taskset -a -p\`; each ` +
        `placement has its own floor. `
      : typeof available === "string"
        ? `${available}. `
        : "Unpinned only (--placement none). ") +
    `Scenarios 8 and 9: /proc/PID/smaps_rollup of each contender's serving process (the ` +
    `host process's child) once the run is over (connect-plugin's are its plugins).`,
);
console.log(`\n${markdownTargets(targetList)}\n`);
if (jsonFile !== undefined) writeFileSync(jsonFile, `${JSON.stringify(rows, null, 2)}\n`);

function safe(f: () => string): string {
  try {
    return f();
  } catch {
    return "";
  }
}
