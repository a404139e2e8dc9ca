/**
 * `npm run bench:cold`: only scenario 5 of `npm run bench`, a Node plugin's
 * cold start (the host spawns it, to the first call answered, framed), with
 * more rounds, against `node -e 0` in the same run. Every round runs every
 * contender once, in a shuffled order; each figure is the median over
 * rounds, with min and max, and its ratio to `node -e 0`'s median; the
 * next column is the median of each round's own ratio (a round's samples
 * are seconds apart, so a loaded machine's drift cancels out more). The
 * CPU columns are the CPU time the plugin process used up to the first
 * answer (for node -e 0: up to its exit), which depends much less on what
 * else the machine runs. The floor (bench/cold-floor.ts) is what any Node
 * process serving one AutoMTLS connection must do: no plugin starts faster;
 * the "/ floor" columns divide by its medians. This build's plugin also
 * runs from a startup snapshot (`connect-plugin snapshot`) and as a CommonJS
 * bundle with V8's code cache (`connect-plugin code-cache`).
 *
 *   --rounds N     rounds (default 15)
 *   --before DIR   also run the host and plugin of another build's dist/
 *                  (a checkout of main, built), each in its own host process
 *   --go           also go-plugin's Go host with its Go plugin (go build)
 *   --instructions also the instructions the bundled (snapshot, code-cache) plugins
 *                  execute to their first answer, and node -e 0 to its exit, counted once under
 *                  valgrind's callgrind after the rounds (bench/cold-instructions.ts):
 *                  the same in every run whatever the load, about 20 s a launch (the
 *                  snapshot's blob is built under valgrind first, about 15 s)
 *   --no-extra-ca  unset NODE_EXTRA_CA_CERTS for every process the bench starts.
 *                  Node 20 parses that file, and its own root certificates,
 *                  when any process starts (node -e 0 included): with a
 *                  system bundle of 144 certificates, about 420 M
 *                  instructions, five times the rest of `node -e 0`. Some
 *                  machines set it (the one these figures come from did); a
 *                  plugin user's usually does not. The output says which.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { createInterface } from "node:readline";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { startFloor } from "./cold-floor.js";
import {
  callgrindAvailable,
  firstAnswerInstructions,
  floorInstructions,
  nodeBootInstructions,
  valgrindSnapshot,
} from "./cold-instructions.js";
import { GoPluginHost } from "./contenders.js";
import { buildGoContenders } from "./go-build.js";
import { GO_PLUGIN } from "./names.js";
import { median, round, shuffled } from "./stats.js";

const args = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const rounds = Number(option("--rounds") ?? 15);
const before = option("--before");
const instructions = args.includes("--instructions");
if (args.includes("--no-extra-ca")) delete process.env.NODE_EXTRA_CA_CERTS;
const extraCa = process.env.NODE_EXTRA_CA_CERTS;
if (instructions && !(await callgrindAvailable())) {
  throw new Error("--instructions needs valgrind on PATH (scripts/setup-test-deps.sh installs it)");
}
const log = (msg: string): void => void process.stderr.write(`${msg}\n`);

/** A host process (bench/cold-host.ts) of one build. */
class ColdHost {
  private readonly lines: AsyncIterator<string>;
  private constructor(private readonly child: ChildProcess) {
    this.lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })[
      Symbol.asyncIterator
    ]();
  }
  static start(dist: string | undefined): ColdHost {
    const main = fileURLToPath(new URL("./cold-host.js", import.meta.url));
    const args = dist === undefined ? [main] : [main, "--dist", dist];
    return new ColdHost(spawn(process.execPath, args, { stdio: ["pipe", "pipe", "inherit"] }));
  }
  async cold(
    bundled: boolean,
    autoMTLS: boolean,
    variant: { snapshot?: boolean; codeCache?: boolean } = {},
  ): Promise<Sample> {
    this.child.stdin?.write(
      `${JSON.stringify({ op: "cold", n: 1, bundled, autoMTLS, ...variant })}\n`,
    );
    const line = await this.lines.next();
    if (line.done === true) throw new Error("the cold-start host exited");
    const res = JSON.parse(line.value) as {
      samples_us?: number[];
      cpu_us?: number[];
      error?: string;
    };
    if (res.error !== undefined) throw new Error(res.error);
    return { wall: res.samples_us?.[0] ?? NaN, cpu: res.cpu_us?.[0] ?? NaN };
  }
  async close(): Promise<void> {
    this.child.stdin?.end();
    await new Promise((resolve) => this.child.once("exit", resolve));
  }
}

/** Wall time and CPU time of one cold start, in µs. */
interface Sample {
  readonly wall: number;
  readonly cpu: number;
}

const NODE_BOOT = "node -e 0 (Node's own boot, no plugin)";
const contenders: Array<{ name: string; run: () => Promise<Sample> }> = [
  {
    name: NODE_BOOT,
    run: async () => {
      const t = performance.now();
      await promisify(execFile)(process.execPath, ["-e", "0"]);
      const wall = (performance.now() - t) * 1_000;
      // Its CPU time, from a second run that reads it just before exiting.
      const { stdout } = await promisify(execFile)(process.execPath, [
        "-e",
        'process.stdout.write(require("fs").readFileSync("/proc/self/schedstat", "latin1"))',
      ]);
      return { wall, cpu: Number(stdout.split(" ")[0]) / 1_000 };
    },
  },
];
const FLOOR =
  "floor: bare Node TLS echo server (one CommonJS file, node:tls, AutoMTLS P-256, unix socket)";
// Its client (this process) once first: its own first TLS connection's costs are not the floor's.
await (await startFloor()).close();
contenders.push({
  name: FLOOR,
  run: async () => {
    const floor = await startFloor();
    await floor.close();
    return { wall: floor.wall, cpu: floor.cpu };
  },
});
/** Instruction counts (--instructions): node -e 0, the floor, then each build's Node plugins. */
const counts: Array<{ name: string; count: () => Promise<number> }> = [
  { name: NODE_BOOT, count: nodeBootInstructions },
  { name: FLOOR, count: floorInstructions },
];
const CODE_CACHE =
  "Node plugin, CommonJS bundle + V8 code cache (connect-plugin code-cache), framed + AutoMTLS";
const hosts: ColdHost[] = [];
for (const [label, dist] of [
  ...(before !== undefined ? [["before", before] as const] : []),
  [before !== undefined ? "after" : "", undefined] as const,
]) {
  const host = ColdHost.start(dist);
  hosts.push(host);
  const prefix = label === "" ? "" : `${label}: `;
  contenders.push(
    { name: `${prefix}Node plugin, framed + AutoMTLS`, run: () => host.cold(false, true) },
    { name: `${prefix}Node plugin bundled, framed + AutoMTLS`, run: () => host.cold(true, true) },
    { name: `${prefix}Node plugin, framed, autoMTLS: false`, run: () => host.cold(false, false) },
  );
  // The files the build's host launches (its bench/bundle.ts writes the bundle and blob).
  const bench = join(dist ?? fileURLToPath(new URL("../", import.meta.url)), "bench");
  const bundled = [join(bench, "plugin-bundle", "plugin.mjs")];
  counts.push({
    name: `${prefix}Node plugin bundled, framed + AutoMTLS`,
    count: () => firstAnswerInstructions(bundled, true),
  });
  // A startup snapshot of the bundled plugin (connect-plugin snapshot), and the
  // CommonJS bundle with V8's code cache (connect-plugin code-cache): this build only.
  if (dist === undefined) {
    contenders.push(
      {
        name: `${prefix}Node plugin bundled + snapshot, framed + AutoMTLS`,
        run: () => host.cold(true, true, { snapshot: true }),
      },
      {
        name: `${prefix}${CODE_CACHE}`,
        run: () => host.cold(true, true, { codeCache: true }),
      },
    );
    counts.push(
      {
        name: `${prefix}Node plugin bundled + snapshot, framed + AutoMTLS`,
        count: async () =>
          firstAnswerInstructions(["--snapshot-blob", await valgrindSnapshot()], true),
      },
      {
        name: `${prefix}${CODE_CACHE}`,
        // The cache the host made (V8 accepts it under valgrind: its check is version and flags).
        count: () =>
          firstAnswerInstructions([join(bench, "plugin-code-cache", "plugin.cjs")], true),
      },
    );
  }
}
let go: { host: string; plugin: string; dir: string } | undefined;
let goHost: GoPluginHost | undefined;
if (args.includes("--go")) {
  go = await buildGoContenders();
  const host = await GoPluginHost.start(GO_PLUGIN, go.host, go.plugin);
  goHost = host;
  contenders.push({
    name: GO_PLUGIN,
    run: async () => ({ wall: (await host.cold(1))[0] ?? NaN, cpu: NaN }),
  });
}

const samples = new Map<string, Sample[]>(contenders.map((c) => [c.name, []]));
for (let r = 1; r <= rounds; r++) {
  log(`round ${r}/${rounds}`);
  const order = shuffled(contenders);
  for (const c of order) samples.get(c.name)?.push(await c.run());
}
for (const h of hosts) await h.close();
await goHost?.close();
if (go !== undefined) rmSync(go.dir, { recursive: true, force: true });

const ms = (us: number): string => String(round(us / 1_000));
const boots = (samples.get(NODE_BOOT) ?? []).map((s) => s.wall);
const boot = median(boots);
const bootCpu = median((samples.get(NODE_BOOT) ?? []).map((s) => s.cpu));
// The floor's medians: what no Node plugin with AutoMTLS starts under.
const floorWall = median((samples.get(FLOOR) ?? []).map((s) => s.wall));
const floorCpu = median((samples.get(FLOOR) ?? []).map((s) => s.cpu));
const lines = [
  `Cold start, spawn to first call answered: ${rounds} rounds, shuffled; ${cpus().length} cores, ` +
    `load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")} at the end (a shared machine: compare within the run only).`,
  extraCa === undefined
    ? "NODE_EXTRA_CA_CERTS is not set."
    : `NODE_EXTRA_CA_CERTS=${extraCa}: every Node process here, node -e 0 included, parses ` +
      "it and Node's root certificates when it starts (--no-extra-ca measures without).",
  "",
  "| contender | median ms | min ms | max ms | median / node -e 0 | per-round ratio, median | median / floor | CPU ms, median | CPU / node -e 0 | CPU / floor |",
  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
];
for (const c of contenders) {
  const s = (samples.get(c.name) ?? []).map((x) => x.wall);
  const m = median(s);
  const perRound = median(s.map((v, i) => v / (boots[i] ?? NaN)));
  const cpu = median((samples.get(c.name) ?? []).map((x) => x.cpu));
  lines.push(
    `| ${c.name} | ${ms(m)} | ${ms(Math.min(...s))} | ${ms(Math.max(...s))} | ` +
      `${(m / boot).toFixed(2)}× | ${perRound.toFixed(2)}× | ${(m / floorWall).toFixed(2)}× | ` +
      (Number.isNaN(cpu)
        ? "| | |"
        : `${ms(cpu)} | ${(cpu / bootCpu).toFixed(2)}× | ${(cpu / floorCpu).toFixed(2)}× |`),
  );
}
process.stdout.write(`${lines.join("\n")}\n`);
if (instructions) {
  log("counting instructions under callgrind");
  const counted = new Map<string, number>();
  for (const c of counts) {
    // One contender that fails under valgrind (say its snapshot build) must
    // not lose the others' counts.
    counted.set(
      c.name,
      await c.count().catch((error: Error) => {
        log(`${c.name}: not counted: ${error.message.split("\n")[0]}`);
        return NaN;
      }),
    );
  }
  const bootCount = counted.get(NODE_BOOT) ?? NaN;
  const floorCount = counted.get(FLOOR) ?? NaN;
  const out = [
    "",
    "Instructions executed to the first answer (node -e 0: to its exit), valgrind's callgrind, " +
      "once each (load-independent):",
    "",
    "| contender | instructions, M | / node -e 0 | / floor |",
    "| --- | ---: | ---: | ---: |",
  ];
  for (const [name, n] of counted) {
    out.push(
      Number.isNaN(n)
        ? `| ${name} | not counted | |`
        : `| ${name} | ${(n / 1e6).toFixed(1)} | ${(n / bootCount).toFixed(2)}× | ${(n / floorCount).toFixed(2)}× |`,
    );
  }
  process.stdout.write(`${out.join("\n")}\n`);
}
