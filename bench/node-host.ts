/**
 * One Node contender in a host process of its own, as every Go host is:
 * `node node-host.js KIND NAME [ARG]` builds the contender KIND (with the
 * factories of contenders.ts and interop.ts, so the harness's heap and GC
 * and the other contenders stay out of its figures) and answers the Go
 * host's JSON-lines commands on stdin/stdout (see `HostProcess`), plus
 * `batches` for in-process calls. The in-process contenders are "in
 * process" within this host, as a user's host would hold them. Ends when
 * stdin does.
 */
import { createInterface } from "node:readline";
import { PerformanceObserver } from "node:perf_hooks";
import {
  benchPluginMain,
  connectPluginInProcess,
  connectPluginRemote,
  connectPluginSubprocess,
  grpcJs,
  httpJson,
  plainCall,
  rawHttp2,
  rawSocket,
  vscodeJsonRpc,
  type Contender,
} from "./contenders.js";
import { connectHostGoPlugin } from "./interop.js";
import { connectGoRemote } from "./connect-go.js";

const factories = {
  "subprocess-framed": (name: string) => connectPluginSubprocess(name, ["framed"]),
  "subprocess-framed-plain": (name: string) =>
    connectPluginSubprocess(name, ["framed"], benchPluginMain, false),
  "subprocess-connect": (name: string) => connectPluginSubprocess(name, ["connect"]),
  "subprocess-connect-plain": (name: string) =>
    connectPluginSubprocess(name, ["connect"], benchPluginMain, false),
  "remote-connect": (name: string) => connectPluginRemote(name),
  "remote-grpc": (name: string) => connectPluginRemote(name, "grpc"),
  "remote-framed": (name: string) => connectPluginRemote(name, "framed"),
  "remote-framed-tls": (name: string) => connectPluginRemote(name, "framed+tls"),
  /** ARG: the connect-go bench plugin's executable (go/bench/connectgo). */
  "remote-connect-go": (name: string, bin = "") => connectGoRemote(name, bin),
  /** The same with connect-go's default compression: every response gzipped, 16-byte ones too. */
  "remote-connect-go-gzip-all": (name: string, bin = "") =>
    connectGoRemote(name, bin, { env: { BENCH_COMPRESS_MIN_BYTES: "0" } }),
  /** The same with no response compressed (1 GiB threshold), as go-plugin's gRPC rows. */
  "remote-connect-go-no-gzip": (name: string, bin = "") =>
    connectGoRemote(name, bin, { env: { BENCH_COMPRESS_MIN_BYTES: String(2 ** 30) } }),
  /** ARG: the Go go-plugin plugin's executable. */
  "go-plugin-client": (name: string, goPlugin = "") => connectHostGoPlugin(name, goPlugin),
  "grpc-js": grpcJs,
  "vscode-jsonrpc": vscodeJsonRpc,
  "http-json": httpJson,
  "raw-socket": rawSocket,
  "raw-http2": (name: string) => rawHttp2(name),
  "raw-http2-tcp": (name: string) => rawHttp2(name, true),
  "in-process-direct": (name: string) => connectPluginInProcess(name, "direct"),
  "in-process-serialize": (name: string) => connectPluginInProcess(name, "serialize"),
  plain: plainCall,
} satisfies Record<string, (name: string, arg?: string) => Promise<Contender>>;

export type NodeKind = keyof typeof factories;

// stdout carries the protocol and nothing else: whatever a library or plugin
// prints in this process goes to stderr. A write to a harness that is gone
// (EPIPE) is dropped; stdin then ends and the contender is closed below.
const { stdout, stderr } = process;
const protocol = stdout.write.bind(stdout);
stdout.write = stderr.write.bind(stderr);
stdout.on("error", () => {});

const [kind = "", name = kind, arg] = process.argv.slice(2);
if (!(kind in factories)) {
  process.stderr.write(`node-host: unknown contender kind "${kind}"\n`);
  process.exit(2);
}
const contender = await factories[kind as NodeKind](name, arg);

/** This process's garbage collections since it started, by kind, for the `stats` op. */
const gc = { count: 0, ms: 0, scavenges: 0, majors: 0 };
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gc.count++;
    gc.ms += e.duration;
    // perf_hooks' NODE_PERFORMANCE_GC_MINOR is 1 (a scavenge), MAJOR 4.
    const kind = (e as { detail?: { kind?: number } }).detail?.kind;
    if (kind === 1) gc.scavenges++;
    else if (kind === 4) gc.majors++;
  }
}).observe({ entryTypes: ["gc"] });

async function answer(line: string): Promise<Record<string, unknown>> {
  const cmd = JSON.parse(line) as {
    op?: string;
    n?: number;
    size?: number;
    ms?: number;
    c?: number;
  };
  const n = cmd.n ?? 0;
  switch (cmd.op) {
    case "unary":
      return { samples_us: await contender.unary(n, cmd.size ?? 16) };
    case "concurrent":
      return { ops_per_s: await contender.concurrent(cmd.ms ?? 0, cmd.c ?? 1) };
    case "stream":
      return { ops_per_s: await contender.stream(n) };
    case "stats": {
      // The host's own state, to see whether it changes over a long run.
      const cpu = process.cpuUsage();
      const mem = process.memoryUsage();
      return {
        cpu_us: cpu.user + cpu.system,
        heap_used: mem.heapUsed,
        heap_total: mem.heapTotal,
        rss: mem.rss,
        gc: { ...gc },
      };
    }
    case "batches":
      if (contender.batches === undefined) break;
      return { samples_us: await contender.batches(n) };
  }
  throw new Error(`unknown op ${JSON.stringify(cmd.op)} for ${kind}`);
}

for await (const line of createInterface({ input: process.stdin })) {
  let out: Record<string, unknown>;
  try {
    out = await answer(line);
  } catch (err) {
    out = { error: err instanceof Error ? err.message : String(err) };
  }
  protocol(`${JSON.stringify(out)}\n`);
}
await contender.close();
process.exit(0);
