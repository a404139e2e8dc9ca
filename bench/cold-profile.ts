/**
 * `npm run bench:cold-profile -- [--rounds N] [--interval US] [--before DIR]`:
 * what a Node plugin's process spends its CPU on between its start and its
 * first answer (framed + AutoMTLS, the esbuild bundle as the scaffold builds
 * it), by phase. Each round launches the bundled bench plugin with
 * `--cpu-prof` (sampling every `--interval` µs, default 100) through a
 * connect-plugin host in this process, notes the monotonic clock when the
 * first call is answered, and counts only the samples taken before it (the
 * profile's clock and process.hrtime are both CLOCK_MONOTONIC). A sample
 * belongs to the first phase, in the order printed, whose test matches a
 * frame of its stack. Figures are ms per launch, medians over rounds, with
 * the profiler's own overhead in them: compare phases, and runs of this
 * script, not with `npm run bench:cold`. `--before DIR` adds the bench plugin
 * of another build's dist/, bundled the same way, interleaved.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { bundledBenchPlugin, bundlePlugin } from "./bundle.js";
import { openPlugin } from "./contenders.js";
import { median, round, shuffled } from "./stats.js";
import { subprocess } from "../src/index.js";

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
}
interface CpuProfile {
  readonly nodes: readonly { id: number; callFrame: CallFrame; children?: readonly number[] }[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
  readonly startTime: number;
}

const args = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const rounds = Number(option("--rounds") ?? 10);
const interval = Number(option("--interval") ?? 100);
const before = option("--before");

const inBundle = (f: CallFrame): boolean =>
  f.url.includes("/plugin-bundle/") || f.url.endsWith(".mjs");
const named =
  (...names: string[]) =>
  (f: CallFrame): boolean =>
    names.includes(f.functionName);
/** Phases, outermost concern first: a sample goes to the first that matches its stack. */
const PHASES: ReadonlyArray<readonly [string, (f: CallFrame) => boolean]> = [
  ["garbage collection", named("(garbage collector)")],
  ["serve(): AutoMTLS key and certificate", named("launchMtls")],
  ["serve(): socket and TLS server", (f) => f.functionName === "listen" && inBundle(f)],
  ["serve(): launch token (stdin)", named("readLaunchToken")],
  ["serve(): the rest (handshake line, parent watch)", named("serveLaunched", "serveNow")],
  [
    "connections and calls (TLS handshake, Handshake RPC, first call)",
    named("onStreamRead", "onconnection", "onhandshakedone", "processTicksAndRejections"),
  ],
  [
    "module evaluation: protobuf-es descriptors",
    named("boot", "fileDesc", "createFileRegistry", "messageDesc", "serviceDesc", "enumDesc"),
  ],
  [
    "built-in modules (node:tls, node:crypto, ...)",
    named("compileForPublicLoader", "builtinStrategy"),
  ],
  ["compiling the bundle", named("compileSourceTextModule")],
  ["module evaluation: the rest", (f) => inBundle(f) && f.functionName === ""],
  ["ES module loader (resolve, read, link)", (f) => f.url.startsWith("node:internal/modules/")],
  ["Node's bootstrap", (f) => f.url.startsWith("node:internal/")],
  ["other", () => true],
];

/** ms per phase of one profile, counting samples taken before `untilUs` (monotonic µs). */
function phases(profile: CpuProfile, untilUs: number): Map<string, number> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const phaseOf = new Map<number, string | undefined>();
  const out = new Map<string, number>();
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    if (t > untilUs) break;
    const id = profile.samples[i] ?? 0;
    if (!phaseOf.has(id)) {
      const stack: CallFrame[] = [];
      for (let n: number | undefined = id; n !== undefined; n = parent.get(n)) {
        const frame = byId.get(n)?.callFrame;
        if (frame !== undefined) stack.push(frame);
      }
      const idle = stack[0]?.functionName === "(idle)";
      phaseOf.set(id, idle ? undefined : PHASES.find(([, test]) => stack.some(test))?.[0]);
    }
    const phase = phaseOf.get(id);
    // A sample's time is the gap to the next one.
    const ms = (profile.timeDeltas[i + 1] ?? 0) / 1_000;
    if (phase !== undefined) out.set(phase, (out.get(phase) ?? 0) + ms);
  }
  return out;
}

const plugins = new Map<string, string>([["this build", await bundledBenchPlugin()]]);
const scratch = mkdtempSync(join(tmpdir(), "cold-profile-"));
if (before !== undefined) {
  const old = join(resolve(before), "bench", "plugin.js");
  plugins.set("before", await bundlePlugin(old, join(scratch, "before-bundle")));
}
const results = new Map<string, Map<string, number>[]>([...plugins.keys()].map((k) => [k, []]));
for (let r = 1; r <= rounds; r++) {
  process.stderr.write(`round ${r}/${rounds}\n`);
  for (const name of shuffled([...plugins.keys()])) {
    const dir = join(scratch, `${name.replace(/\W/g, "-")}-${r}`);
    const main = plugins.get(name) as string;
    const flags = ["--cpu-prof", "--cpu-prof-dir", dir, "--cpu-prof-interval", String(interval)];
    const client = await openPlugin(subprocess(process.execPath, [...flags, main]));
    const answeredUs = Number(process.hrtime.bigint() / 1_000n);
    await client.close();
    const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
    if (file === undefined) throw new Error(`no profile in ${dir}`);
    const profile = JSON.parse(readFileSync(join(dir, file), "utf8")) as CpuProfile;
    results.get(name)?.push(phases(profile, answeredUs));
  }
}
rmSync(scratch, { recursive: true, force: true });

const names = [...plugins.keys()];
const column = (name: string, phase: string | undefined): string => {
  const per = (results.get(name) ?? []).map((m) =>
    phase === undefined ? [...m.values()].reduce((a, b) => a + b, 0) : (m.get(phase) ?? 0),
  );
  return String(round(median(per)));
};
console.log(
  `CPU by phase, process start to first answer (bundled bench plugin, framed + AutoMTLS): ` +
    `${rounds} rounds, sampled every ${interval} µs, ms per launch (medians); load average ` +
    `${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")} at the end.\n`,
);
console.log(`| phase | ${names.join(" | ")} |`);
console.log(`| --- |${names.map(() => " ---: |").join("")}`);
for (const [phase] of PHASES) {
  console.log(`| ${phase} | ${names.map((n) => column(n, phase)).join(" | ")} |`);
}
console.log(`| **busy, in all** | ${names.map((n) => column(n, undefined)).join(" | ")} |`);
