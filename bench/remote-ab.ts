/**
 * End-to-end remote calls against the bench plugin of two builds, in the
 * same rounds (run.js runs one build at a time, and on a shared machine
 * the load between two runs moves more than a change of a few percent):
 *
 *   node dist/bench/remote-ab.js --build LABEL=DIR [--rounds 8] [--calls 1500]
 *
 * This build's host client (a PluginClient with a `remote()` source, as
 * run.js's "connect-plugin remote, loopback TCP, Connect over HTTP/2" and
 * "gRPC over HTTP/2" rows) calls each build's plugin in network mode on
 * loopback TCP. Each round, in a shuffled order, every plugin and protocol
 * gets `calls` sequential 16-byte echoes (the p50 of their wall-clock
 * latency) and then 2 x `calls` echoes from 64 concurrent callers
 * (calls/s). Prints the median of the rounds and their min-max.
 *
 * With `--hosts`, the other way round: one plugin (this build's), called
 * by each build's host client (its PluginClient and remote(), loaded from
 * DIR/dist) in this one process, rounds interleaved as above: what a
 * change of the host's code does to the latency and calls/s.
 *
 * `--http 1.1`: every client over HTTP/1.1 (`remote(url, { protocol,
 * httpVersion: "1.1" })`, keep-alive connections; Connect and gRPC-web).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { join, resolve } from "node:path";
import { loadavg } from "node:os";
import { fileURLToPath, pathToFileURL } from "node:url";
import { remote } from "../src/index.js";
import { firstMatch } from "./child-output.js";
import { openPlugin, PROTOCOL_NAMES, type HostProtocol } from "./contenders.js";
import { median, round, shuffled } from "./stats.js";

const args = process.argv.slice(2);
const option = (name: string, fallback: string): string => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? (args[at + 1] ?? fallback) : fallback;
};
const rounds = Number(option("rounds", "8"));
const calls = Number(option("calls", "1500"));
const hosts = args.includes("--hosts");
/** `--protocols connect,grpc,grpc-web` (default `connect,grpc`): the protocols called. */
const protocols = option("protocols", "connect,grpc").split(",") as HostProtocol[];
/** `--http 1.1`: the clients' HTTP version (default 2). */
const httpVersion = option("http", "2") as "1.1" | "2";
const builds = [
  { label: "this build", dir: resolve(fileURLToPath(new URL("../..", import.meta.url))) },
  ...args
    .flatMap((a, i) => (a === "--build" ? [args[i + 1] ?? ""] : []))
    .map((b) => {
      const at = b.indexOf("=");
      if (at < 1) throw new Error(`--build wants LABEL=DIR, got ${JSON.stringify(b)}`);
      return { label: b.slice(0, at), dir: resolve(b.slice(at + 1)) };
    }),
];

interface Target {
  readonly name: string;
  readonly child: ChildProcess;
  readonly echo: () => Promise<unknown>;
  readonly close: () => Promise<void>;
  readonly p50: number[];
  readonly perSecond: number[];
}

async function start(label: string, dir: string, protocol: HostProtocol): Promise<Target> {
  const child = spawn(process.execPath, [join(dir, "dist/bench/plugin.js")], {
    env: { ...process.env, CONNECT_PLUGIN_LISTEN: "127.0.0.1:0" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const url = await firstMatch(child, "stderr", /"url":"([^"]+)"/, `${label}'s bench plugin`);
  const client = await openPlugin(remote(url, { protocol, httpVersion }));
  const bench = client.dispense("bench");
  const value = new Uint8Array(16);
  return {
    name: `${label}, ${PROTOCOL_NAMES[protocol]} over HTTP/${httpVersion}`,
    child,
    echo: () => bench.echo({ value }),
    close: async () => {
      await client.close();
      child.kill("SIGTERM");
    },
    p50: [],
    perSecond: [],
  };
}

async function measure(target: Target): Promise<void> {
  for (let i = 0; i < 200; i++) await target.echo();
  const latencies: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t = process.hrtime.bigint();
    await target.echo();
    latencies.push(Number(process.hrtime.bigint() - t) / 1e3);
  }
  target.p50.push(median(latencies));
  let started = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (started < 2 * calls) {
        started++;
        await target.echo();
      }
    }),
  );
  target.perSecond.push(started / (Number(process.hrtime.bigint() - t0) / 1e9));
}

/** The bench plugin of this build in network mode: its URL. */
async function startPlugin(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [join(builds[0]?.dir ?? ".", "dist/bench/plugin.js")], {
    env: { ...process.env, CONNECT_PLUGIN_LISTEN: "127.0.0.1:0" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const url = await firstMatch(child, "stderr", /"url":"([^"]+)"/, "the bench plugin");
  return { url, child };
}

/** `--hosts`: the host client of the build in `dir` (its own dist) on the plugin at `url`. */
async function startHost(
  label: string,
  dir: string,
  plugin: { url: string; child: ChildProcess },
  protocol: HostProtocol,
): Promise<Target> {
  const lib = (await import(pathToFileURL(join(dir, "dist/src/index.js")).href)) as {
    remote: typeof remote;
  };
  const contenders = (await import(pathToFileURL(join(dir, "dist/bench/contenders.js")).href)) as {
    openPlugin: typeof openPlugin;
  };
  const client = await contenders.openPlugin(lib.remote(plugin.url, { protocol, httpVersion }));
  const bench = client.dispense("bench");
  const value = new Uint8Array(16);
  return {
    name: `host of ${label}, ${PROTOCOL_NAMES[protocol]} over HTTP/${httpVersion}`,
    child: plugin.child,
    echo: () => bench.echo({ value }),
    close: () => client.close(),
    p50: [],
    perSecond: [],
  };
}

const targets: Target[] = [];
let shared: { url: string; child: ChildProcess } | undefined;
try {
  if (hosts) shared = await startPlugin();
  for (const { label, dir } of builds) {
    for (const protocol of protocols) {
      targets.push(
        shared === undefined
          ? await start(label, dir, protocol)
          : await startHost(label, dir, shared, protocol),
      );
    }
  }
  for (let r = 0; r < rounds; r++) {
    for (const target of shuffled(targets)) await measure(target);
    process.stderr.write(`round ${r + 1}/${rounds}\n`);
  }
  const load = loadavg()
    .map((l) => l.toFixed(1))
    .join(" ");
  console.log(`load average ${load}, ${rounds} rounds, interleaved`);
  console.log(
    `| ${hosts ? "host" : "plugin"} | p50 µs, median | min–max | 64 callers calls/s, median | min–max |`,
  );
  console.log("| --- | ---: | ---: | ---: | ---: |");
  for (const t of targets) {
    const range = (v: number[]): string => `${round(Math.min(...v))}–${round(Math.max(...v))}`;
    console.log(
      `| ${t.name} | ${round(median(t.p50))} | ${range(t.p50)} | ${round(median(t.perSecond))} | ${range(t.perSecond)} |`,
    );
  }
} finally {
  await Promise.all(targets.map((t) => t.close()));
  shared?.child.kill("SIGTERM");
}
