/**
 * Reads V8 .cpuprofile and sampling .heapprofile files (as node --cpu-prof,
 * --heap-prof or node:inspector write them) into per-function figures:
 * self time, inclusive time (a sample counts once for each distinct
 * function on its stack) and allocated bytes, each divided by a number of
 * calls. `node dist/bench/cpuprofile.js FILE.cpuprofile CALLS [TOP]`
 * prints one profile's table; `--shares FILE...` each file's share of
 * several profiles' busy time; `--kinds [--calls N] [--top K] [--match
 * TEXT] FILE...` sums several profiles (the rounds of one contender, each
 * of N calls) and prints busy time, self time by kind of code (garbage
 * collection, node:http2, streams and events, microtasks, our code,
 * connect-es, protobuf-es, undici: the tables of docs/http2-client.md,
 * session 14), by function and by file, and the inclusive time of every
 * function whose URL contains TEXT (default /dist/src/, our code).
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}
interface CpuNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}
interface CpuProfile {
  readonly nodes: readonly CpuNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}
interface HeapNode {
  readonly callFrame: CallFrame;
  readonly selfSize: number;
  readonly children: readonly HeapNode[];
}

/** Per function: µs of self and inclusive time (or bytes), per call. */
export interface FunctionCost {
  readonly key: string;
  readonly file: string;
  /** The function's frame (name and URL), for grouping by kind. */
  readonly frame: CallFrame;
  self: number;
  total: number;
}

/** A short file name: node's internals as node:..., ours from src/ or bench/, packages by name. */
export function shortFile(url: string): string {
  if (url === "") return "(native)";
  if (url.startsWith("node:")) return url;
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m?.[1] !== undefined) return m[1];
  const ours = /\/dist\/((?:src|bench)\/.*)$/.exec(url);
  return ours?.[1] ?? url;
}

const keyOf = (f: CallFrame): string =>
  `${f.functionName === "" ? "(anonymous)" : f.functionName} ${shortFile(f.url)}:${f.lineNumber + 1}`;

/** Self and inclusive µs per call of each function in a CPU profile; `busy` excludes (idle). */
export function cpuCosts(
  file: string,
  calls: number,
): { functions: Map<string, FunctionCost>; busy: number; idle: number } {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const functions = new Map<string, FunctionCost>();
  const get = (f: CallFrame): FunctionCost => {
    const key = keyOf(f);
    let cost = functions.get(key);
    if (cost === undefined) {
      cost = { key, file: shortFile(f.url), frame: f, self: 0, total: 0 };
      functions.set(key, cost);
    }
    return cost;
  };
  let busy = 0;
  let idle = 0;
  // A sample's time is the delta to the next sample.
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i + 1] ?? 0;
    const node = byId.get(profile.samples[i] as number);
    if (node === undefined) continue;
    if (node.callFrame.functionName === "(idle)") {
      idle += dt;
      continue;
    }
    busy += dt;
    get(node.callFrame).self += dt;
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const f = (byId.get(id) as CpuNode).callFrame;
      const key = keyOf(f);
      if (seen.has(key)) continue;
      seen.add(key);
      get(f).total += dt;
    }
  }
  for (const c of functions.values()) {
    c.self /= calls;
    c.total /= calls;
  }
  return { functions, busy: busy / calls, idle: idle / calls };
}

/** Bytes allocated per call by each function (self) in a sampling heap profile. */
export function heapCosts(file: string, calls: number): Map<string, FunctionCost> {
  const root = (JSON.parse(readFileSync(file, "utf8")) as { head: HeapNode }).head;
  const out = new Map<string, FunctionCost>();
  const walk = (n: HeapNode): void => {
    const key = keyOf(n.callFrame);
    const c = out.get(key) ?? {
      key,
      file: shortFile(n.callFrame.url),
      frame: n.callFrame,
      self: 0,
      total: 0,
    };
    c.self += n.selfSize / calls;
    out.set(key, c);
    for (const child of n.children) walk(child);
  };
  walk(root);
  return out;
}

/** Sums the self figure of each function by its file. */
export function byFile(functions: Map<string, FunctionCost>): Map<string, number> {
  const out = new Map<string, number>();
  for (const c of functions.values()) out.set(c.file, (out.get(c.file) ?? 0) + c.self);
  return out;
}

/**
 * `--shares FILE...`: per file, each profile's share of its busy time (%),
 * which a loaded machine, slowing every sample alike, changes less than
 * the µs.
 */
function shares(files: readonly string[], top: number): void {
  const columns = files.map((f) => {
    const { functions, busy } = cpuCosts(f, 1);
    const perFile = byFile(functions);
    for (const [k, v] of perFile) perFile.set(k, (100 * v) / busy);
    return perFile;
  });
  const names = new Set(columns.flatMap((c) => [...c.keys()]));
  const rows = [...names]
    .map((n) => ({ n, v: columns.map((c) => c.get(n) ?? 0) }))
    .sort((a, b) => Math.max(...b.v) - Math.max(...a.v))
    .slice(0, top);
  console.log(`| file | ${files.map((f) => f.split("/").pop()).join(" | ")} |`);
  console.log(`| --- |${files.map(() => " --: |").join("")}`);
  for (const { n, v } of rows) console.log(`| ${n} | ${v.map((x) => x.toFixed(1)).join(" | ")} |`);
}

/** The kind of code a frame is (see the table in docs/http2-client.md, session 14). */
export function kindOf(f: CallFrame): string {
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

/** Adds `value` to `key`'s entry of `m`. */
const add = (m: Map<string, number>, key: string, value: number): void => {
  m.set(key, (m.get(key) ?? 0) + value);
};

/**
 * `--kinds`: several profiles summed, per call when `calls` is given (each
 * file holding `calls` calls), else in ms.
 */
function kinds(files: readonly string[], calls: number, top: number, match: string): void {
  const self = new Map<string, number>();
  const perKind = new Map<string, number>();
  const perFile = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let busy = 0;
  let all = 0;
  for (const file of files) {
    const costs = cpuCosts(file, 1);
    busy += costs.busy;
    all += costs.busy + costs.idle;
    for (const c of costs.functions.values()) {
      if (c.self > 0) {
        add(self, c.key, c.self);
        add(perKind, kindOf(c.frame), c.self);
        add(perFile, c.frame.url === "" ? c.frame.functionName : c.file, c.self);
      }
      if (c.frame.url.includes(match)) add(inclusive, c.key, c.total);
    }
  }
  const unit = calls > 0 ? "µs/call" : "ms";
  const fmt = (us: number): string =>
    calls > 0 ? (us / (calls * files.length)).toFixed(2) : (us / 1000).toFixed(1);
  const table = (title: string, m: Map<string, number>): void => {
    console.log(`\n${title} (${unit})`);
    for (const [key, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`${fmt(us).padStart(9)}  ${key}`);
    }
  };
  console.log(`${files.length} file(s); busy ${fmt(busy)} ${unit} of ${fmt(all)} sampled`);
  table("self time by kind of code", perKind);
  table("self time by function", self);
  table("self time by file", perFile);
  table(`inclusive time of functions in files matching ${JSON.stringify(match)}`, inclusive);
}

/** The value after `--name` in `args`, taken out of it. */
function option(args: string[], name: string): string | undefined {
  const at = args.indexOf(`--${name}`);
  if (at < 0) return undefined;
  return args.splice(at, 2)[1];
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === "--shares") {
  shares(process.argv.slice(3), 40);
} else if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === "--kinds") {
  const args = process.argv.slice(3);
  const calls = Number(option(args, "calls") ?? 0);
  const top = Number(option(args, "top") ?? 40);
  const match = option(args, "match") ?? "/dist/src/";
  if (args.length === 0) {
    console.error("usage: cpuprofile.js --kinds [--calls N] [--top K] [--match TEXT] FILE...");
    process.exit(2);
  }
  kinds(args, calls, top, match);
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [file = "", calls = "1", top = "40"] = process.argv.slice(2);
  const { functions, busy, idle } = cpuCosts(file, Number(calls));
  console.log(`busy ${busy.toFixed(1)} µs/call, idle ${idle.toFixed(1)}`);
  const rows = [...functions.values()].sort((a, b) => b.self - a.self).slice(0, Number(top));
  for (const r of rows) console.log(`${r.self.toFixed(2)}\t${r.total.toFixed(2)}\t${r.key}`);
}
