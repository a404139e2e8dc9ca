/**
 * Bytes the host allocates per HTTP/2 unary call, and where:
 * `node dist/bench/h2-client-heap.js [connect|grpc|framed|in-process|floor-grpc|floor-connect] [CALLS] [ROOT] [TOP] [CALLERS]`.
 *
 * Starts the Node bench plugin (network mode), calls `remote()` over
 * Connect or gRPC from this process with the build in ROOT (a dist
 * folder; default this one), warms up with 5,000 calls, then runs CALLS
 * (default 5,000) sequential 16-byte echo calls under V8's sampling heap
 * profiler (every 128 bytes, objects that minor and major GCs collected
 * included) and prints the bytes allocated per call: in all, by the
 * nearest frame of the project's code (`dist/src/`), and by the last
 * three frames. Allocation, unlike time, hardly depends on the machine's
 * load. docs/http2-client.md (session 12) has what it showed. `framed`
 * calls the same plugin over the framed protocol (`remote(url, { transport:
 * "framed" })`), `in-process` the bench plugin in this process (`inProcess`,
 * direct mode; its handler's allocations count too): the other paths that
 * share the host's call runner and CallGuard. `floor-grpc` and
 * `floor-connect` call the same plugin with the HTTP/2 floor's bare
 * node:http2 client (bench/h2-raw-clients.ts): what node:http2 itself
 * allocates per call, for each protocol's answer. CALLERS (default 1)
 * makes the calls from that many concurrent callers (64: issue 12's
 * throughput row), warm-up included.
 *
 * H2HEAP_MODE chooses what the measured calls show (session 27):
 * - `bytes` (default): all bytes allocated, as above.
 * - `survivors`: only what outlived a scavenge: the profiler keeps no
 *   sample of an object a minor GC collected, and a minor GC after the
 *   calls (run with `--expose-gc`) drops the last batch's dead objects, so
 *   what is left is what was promoted (or is still live): the bytes that
 *   scavenges copied and moved to the old generation, by allocation site.
 * - `hooks`: no profiler; async_hooks `init` events per call by resource
 *   type (PROMISE, HTTP2STREAM, Timeout...), counted over the calls.
 * - `plain`: no profiler, no hooks; prints `measure start` and `measure
 *   end` around the calls, for `--trace-gc-nvp`'s lines between them.
 */
import { createHook } from "node:async_hooks";
import { spawn } from "node:child_process";
import { Session } from "node:inspector";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as net from "node:net";
import { firstMatch } from "./child-output.js";
import { rawClient, rawConnectClient, type Echo } from "./h2-raw-clients.js";

interface Frame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}
interface Node {
  readonly callFrame: Frame;
  readonly selfSize: number;
  readonly children: readonly Node[];
}
interface Client {
  start(): Promise<void>;
  dispense(name: string): { echo(m: { value: Uint8Array }): Promise<unknown> };
  close(): Promise<void>;
}
interface Lib {
  readonly PluginClient: new (options: unknown) => Client;
  readonly remote: (url: string, options: unknown) => unknown;
  readonly inProcess: (plugin: unknown, options: unknown) => unknown;
  readonly silentLogger: unknown;
}

const kinds = ["connect", "grpc", "framed", "in-process", "floor-grpc", "floor-connect"] as const;
const protocol = kinds.find((k) => k === process.argv[2]) ?? "connect";
const calls = Number(process.argv[3] ?? 5_000);
const root = resolve(process.argv[4] ?? join(fileURLToPath(import.meta.url), "../.."));
const top = Number(process.argv[5] ?? 25);
const callers = Number(process.argv[6] ?? 1);
// Checked before the plugin starts, so that a typo fails at once.
const modes = ["bytes", "survivors", "hooks", "plain"];
const mode = process.env["H2HEAP_MODE"] ?? "bytes";
if (!modes.includes(mode))
  throw new Error(`H2HEAP_MODE is one of ${modes.join(", ")}, not ${mode}`);
const survivors = mode === "survivors";
const minorGc = (globalThis as { gc?: (o: { type: string }) => void }).gc;
if (survivors && minorGc === undefined) throw new Error("survivors: run node with --expose-gc");

const lib = (await import(pathToFileURL(join(root, "src/index.js")).href)) as Lib;
const service = (await import(pathToFileURL(join(root, "bench/service.js")).href)) as {
  Bench: unknown;
  benchHandshake: unknown;
  benchPlugin: () => unknown;
};
const plugin = spawn(process.execPath, [join(root, "bench/plugin.js")], {
  env: { ...process.env, CONNECT_PLUGIN_LISTEN: "127.0.0.1:0" },
  stdio: ["ignore", "ignore", "pipe"],
});
// Whatever ends this run (a throw included), the plugin goes with it.
process.on("exit", () => plugin.kill());
const url = await firstMatch(plugin, "stderr", /"url":"([^"]+)"/);
/** The client under test, started: echo calls and how to close it. */
async function open(): Promise<{ echo: Echo; close: () => Promise<void> }> {
  if (protocol === "floor-grpc" || protocol === "floor-connect") {
    const port = Number(new URL(url).port);
    const connect = (): net.Socket => net.connect(port, "127.0.0.1");
    const floor = protocol === "floor-grpc" ? rawClient(connect) : rawConnectClient(connect);
    return {
      echo: floor.echo,
      close: () => {
        floor.close();
        return Promise.resolve();
      },
    };
  }
  const client = new lib.PluginClient({
    handshake: service.benchHandshake,
    plugins: { bench: service.Bench },
    source:
      protocol === "in-process"
        ? lib.inProcess(service.benchPlugin(), { mode: "direct" })
        : protocol === "framed"
          ? lib.remote(url, { transport: "framed" })
          : lib.remote(url, { protocol }),
    logger: lib.silentLogger,
  });
  await client.start();
  const bench = client.dispense("bench");
  return { echo: (value) => bench.echo({ value }), close: () => client.close() };
}
const client = await open();
const value = new Uint8Array(16).fill(7);
/** `n` calls from `callers` concurrent callers. */
const run = async (n: number): Promise<void> => {
  let left = n;
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (left-- > 0) await client.echo(value);
    }),
  );
};
await run(5_000);

if (mode === "hooks" || mode === "plain") {
  const types = new Map<string, number>();
  const hook = createHook({
    init: (_id, type) => void types.set(type, (types.get(type) ?? 0) + 1),
  });
  if (mode === "hooks") hook.enable();
  else console.log("measure start");
  await run(calls);
  hook.disable();
  if (mode === "plain") console.log("measure end");
  await client.close();
  plugin.kill();
  console.log(`${root}, ${protocol}, ${callers} caller(s), ${mode}`);
  for (const [type, n] of [...types].sort((a, b) => b[1] - a[1])) {
    console.log(`${(n / calls).toFixed(2).padStart(7)}  ${type}`);
  }
  process.exit(0);
}

const session = new Session();
session.connect();
const post = <T>(method: string, params?: object): Promise<T> =>
  new Promise((done, fail) =>
    session.post(method, params, (error, result) =>
      error === null ? done(result as T) : fail(error),
    ),
  );
await post("HeapProfiler.enable");
await post("HeapProfiler.startSampling", {
  samplingInterval: 128,
  includeObjectsCollectedByMajorGC: true,
  includeObjectsCollectedByMinorGC: !survivors,
});
await run(calls);
if (survivors) minorGc?.({ type: "minor" });
const { profile } = await post<{ profile: { head: Node } }>("HeapProfiler.stopSampling");
session.disconnect();
await client.close();
plugin.kill();

const name = (f: Frame): string =>
  `${f.functionName === "" ? "(anonymous)" : f.functionName} ${f.url.split("/").slice(-2).join("/")}:${f.lineNumber}`;
const byOwn = new Map<string, number>();
const byTail = new Map<string, number>();
const bySite = new Map<string, number>();
let total = 0;
const add = (m: Map<string, number>, key: string, n: number): void => {
  m.set(key, (m.get(key) ?? 0) + n);
};
const walk = (node: Node, stack: readonly Frame[]): void => {
  const frames = [...stack, node.callFrame];
  if (node.selfSize > 0) {
    total += node.selfSize;
    const own = [...frames].reverse().find((f) => f.url.includes("/dist/src/"));
    add(byOwn, own === undefined ? "(no frame of dist/src)" : name(own), node.selfSize);
    add(byTail, frames.slice(-3).map(name).join(" -> "), node.selfSize);
    // The allocating function and its caller, the clients' own frames
    // left out (the same node:http2 site under the floor's client and
    // ours), or the client's function when it allocates itself.
    const ownCode = (f: Frame): boolean => /\/dist\/(src|bench)\//.test(f.url);
    const last = frames[frames.length - 1] as Frame;
    add(
      bySite,
      ownCode(last)
        ? `(client) ${name(last)}`
        : frames
            .filter((f) => !ownCode(f))
            .slice(-2)
            .map(name)
            .join(" -> "),
      node.selfSize,
    );
  }
  for (const child of node.children) walk(child, frames);
};
walk(profile.head, []);

const print = (title: string, m: Map<string, number>): void => {
  console.log(`\n${title}`);
  for (const [key, bytes] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${(bytes / calls).toFixed(0).padStart(7)}  ${key}`);
  }
};
console.log(
  `${root}, ${protocol}, ${callers} caller(s): ${(total / calls).toFixed(0)} bytes ${survivors ? "surviving a scavenge" : "allocated"} per call`,
);
print("by nearest frame of the project's code (bytes per call)", byOwn);
print("by last three frames (bytes per call)", byTail);
print("by allocating site outside the project's code, last two frames (bytes per call)", bySite);
