/**
 * Reads V8 .cpuprofile files (node --cpu-prof, or H2CPU_PROFILE of
 * bench/h2-client-cpu.ts) and prints where the time went:
 *
 *   node dist/bench/cpu-profile.js [--calls N] [--top K] [--match TEXT] FILE...
 *
 * For each file: busy time (all samples but "(idle)"), then the K functions
 * with the most self time (name, file:line), the self time per file, and
 * the inclusive time of every function whose file contains TEXT (default
 * "connect-plugin" paths: /dist/src/), a sample counted once per function
 * however often it recurs on the stack, and the self time by kind of code
 * (garbage collection, node:http2, events and streams, microtasks, our
 * code, connect-es, protobuf-es, undici, ...: docs/http2-client.md,
 * session 14). With --calls, times are µs per call. Several files (e.g.
 * the rounds of one contender) are summed, and --calls divided by their
 * number.
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}
interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}
interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

const args = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const at = args.indexOf(`--${name}`);
  if (at < 0) return undefined;
  const value = args[at + 1];
  args.splice(at, 2);
  return value;
};
const calls = Number(option("calls") ?? 0);
const top = Number(option("top") ?? 40);
const match = option("match") ?? "/dist/src/";
const files = args;
if (files.length === 0) {
  console.error("usage: cpu-profile.js [--calls N] [--top K] [--match TEXT] FILE...");
  process.exit(2);
}

const self = new Map<string, number>();
const byKind = new Map<string, number>();

/** The kind of code a frame is (see the table in docs/http2-client.md, session 14). */
function kindOf(f: CallFrame): string {
  const u = f.url;
  const name = f.functionName;
  if (name === "(garbage collector)") return "garbage collection";
  if (name === "(program)") return "(program)";
  if (u.includes("/dist/src/")) return "our code (dist/src)";
  if (u.includes("bench/")) return "the bench's own code";
  if (u.includes("node_modules/@bufbuild")) return "protobuf-es";
  if (u.includes("node_modules/@connectrpc")) return "connect-es";
  if (u.includes("undici")) return "undici (Headers)";
  // node:http2's native request() has no script; it is node:http2's all the same.
  if (u.includes("http2") || (u === "" && (name === "request" || name === "toHeaderObject"))) {
    return "node:http2, JavaScript";
  }
  if (u.includes("async_hooks") || (u.includes("util") && name === "deprecate")) {
    return "node:http2's request: AsyncResource.bind/deprecate";
  }
  if (u.includes("events") || u.includes("streams") || u.includes("stream_base")) {
    return "node streams and events";
  }
  if (
    u.includes("task_queues") ||
    u.includes("promises") ||
    u.includes("timers") ||
    name === "runMicrotasks"
  ) {
    return "microtasks, ticks, timers";
  }
  if (u === "") return "builtins without a script";
  return "other node";
}
const byFile = new Map<string, number>();
const inclusive = new Map<string, number>();
let busy = 0;
let total = 0;

const keyOf = (f: CallFrame): string =>
  `${f.functionName || "(anonymous)"} ${f.url === "" ? "" : `${shortUrl(f.url)}:${f.lineNumber + 1}`}`;

function shortUrl(url: string): string {
  const at = url.indexOf("/dist/");
  if (at >= 0) return url.slice(at + 6);
  const nm = url.lastIndexOf("node_modules/");
  if (nm >= 0) return url.slice(nm + 13);
  return basename(url);
}

for (const file of files) {
  const p = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const byId = new Map<number, ProfileNode>(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Each sample's time is the delta to the next sample (V8's convention: timeDeltas[i+1]).
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i + 1] ?? 0;
    const node = byId.get(p.samples[i] as number);
    if (node === undefined) continue;
    total += dt;
    if (node.callFrame.functionName === "(idle)") continue;
    busy += dt;
    const key = keyOf(node.callFrame);
    self.set(key, (self.get(key) ?? 0) + dt);
    const kind = kindOf(node.callFrame);
    byKind.set(kind, (byKind.get(kind) ?? 0) + dt);
    const fileKey =
      node.callFrame.url === "" ? node.callFrame.functionName : shortUrl(node.callFrame.url);
    byFile.set(fileKey, (byFile.get(fileKey) ?? 0) + dt);
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const f = (byId.get(id) as ProfileNode).callFrame;
      if (!f.url.includes(match)) continue;
      const k = keyOf(f);
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + dt);
    }
  }
}

const unit = calls > 0 ? "µs/call" : "ms";
const perCall = calls * files.length;
const fmt = (us: number): string =>
  calls > 0 ? (us / perCall).toFixed(2) : (us / 1000).toFixed(1);
const table = (title: string, m: Map<string, number>, k: number): void => {
  console.log(`\n${title} (${unit})`);
  for (const [key, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, k)) {
    console.log(`${fmt(us).padStart(9)}  ${key}`);
  }
};
console.log(`${files.length} file(s); busy ${fmt(busy)} ${unit} of ${fmt(total)} sampled`);
table("self time by kind of code", byKind, top);
table("self time by function", self, top);
table("self time by file", byFile, top);
table(`inclusive time of functions in files matching ${JSON.stringify(match)}`, inclusive, top);
