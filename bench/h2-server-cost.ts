/**
 * What the plugin (server) side of a unary HTTP/2 call costs, against the
 * HTTP/2 floor's server (servers.ts "h2"), measured in CPU time of the server
 * process rather than wall time, which on a shared machine is mostly noise:
 *
 *   node dist/bench/h2-server-cost.js [--rounds 5] [--calls 2000]
 *     [--build LABEL=DIR ...] [--protocols connect,grpc,grpc-web] [--strace] [--frames]
 *
 * Servers, each its own process, driven by one bare node:http2 client in
 * this process (the same client for all, so that only the server differs):
 * the floor on a unix socket; the bench plugin in network mode (cleartext
 * TCP: the port's sniff, then HTTP/2); and the bench plugin launched as a
 * go-plugin host launches it (h2c on a private unix socket, no AutoMTLS).
 * With `--build LABEL=DIR` (a built checkout: DIR/dist/bench/plugin.js),
 * its plugin runs in the same rounds, interleaved. Each round runs, per server
 * and protocol (`--protocols`, default `connect,grpc`: Connect unary with
 * `application/proto`, gRPC, and gRPC-web with `application/grpc-web+proto`),
 * `calls` sequential calls and `calls` calls from 64 concurrent callers,
 * and reads the server's CPU time (every thread's /proc/PID/task/TID/schedstat)
 * before and after. `--strace` counts the server's system calls per call
 * (`strace -f -c -p PID`) over 500 sequential calls; `--frames` counts the
 * HTTP/2 frames the server sends per call (the client reads through a
 * counting stream for that pass only).
 */
import { tapSocket } from "./tap-socket.js";
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as http2 from "node:http2";
import * as net from "node:net";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import type { Duplex } from "node:stream";
import { fileURLToPath } from "node:url";
import { firstMatch } from "./child-output.js";
import { median, round, shuffled } from "./stats.js";
import { threadsCpuNs } from "./proc-cpu.js";

const args = process.argv.slice(2);
const option = (name: string, fallback: string): string => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? (args[at + 1] ?? fallback) : fallback;
};
const rounds = Number(option("rounds", "5"));
const calls = Number(option("calls", "2000"));
/** `--build LABEL=DIR` (repeatable): the plugin of another built checkout, in the same rounds. */
const builds = args
  .flatMap((a, i) => (a === "--build" ? [args[i + 1] ?? ""] : []))
  .map((b) => {
    const at = b.indexOf("=");
    return { label: b.slice(0, at), dir: resolve(b.slice(at + 1)) };
  });
const here = dirname(fileURLToPath(import.meta.url));

type Protocol = "connect" | "grpc" | "grpc-web";
/** The plugins' protocols (`--protocols`); the floor speaks gRPC only. */
const pluginProtocols = option("protocols", "connect,grpc").split(",") as Protocol[];

interface Server {
  readonly name: string;
  readonly child: ChildProcess;
  readonly protocols: readonly Protocol[];
  /** A fresh connection to it. */
  connect(): net.Socket;
  stop(): void;
}

async function floor(): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), "h2cost-"));
  const socket = join(dir, "s.sock");
  const child = spawn(process.execPath, [join(here, "servers.js"), "h2", socket], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  await firstMatch(child, "stdout", /(ready)/);
  return {
    name: "floor (bare node:http2, unix)",
    child,
    protocols: ["grpc"],
    connect: () => net.connect(socket),
    stop: () => {
      child.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The bench plugin of `dist` in network mode (cleartext TCP, sniffed). */
async function network(label: string, dist: string): Promise<Server> {
  const child = spawn(process.execPath, [join(dist, "bench/plugin.js")], {
    env: { ...process.env, CONNECT_PLUGIN_LISTEN: "127.0.0.1:0" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const url = new URL(await firstMatch(child, "stderr", /"url":"([^"]+)"/));
  return {
    name: `${label} network mode (TCP)`,
    child,
    protocols: pluginProtocols,
    connect: () => net.connect(Number(url.port), url.hostname),
    stop: () => child.kill(),
  };
}

/** The bench plugin of `dist` launched as a go-plugin host launches it: h2c on a unix socket. */
async function launched(label: string, dist: string): Promise<Server> {
  const child = spawn(process.execPath, [join(dist, "bench/plugin.js")], {
    env: { ...process.env, BENCH_PLUGIN: "bench", PLUGIN_PROTOCOL_VERSIONS: "1" },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const socket = await firstMatch(child, "stdout", /^\d+\|\d+\|unix\|([^|]+)\|/m);
  return {
    name: `${label} launched h2c (unix)`,
    child,
    protocols: pluginProtocols,
    connect: () => net.connect(socket),
    stop: () => child.kill(),
  };
}

const PATH = "/bench.v1.BenchService/Echo";
/** google.protobuf.BytesValue{value: 16 bytes of 7}. */
const message = Buffer.concat([Buffer.from([0x0a, 16]), Buffer.alloc(16, 7)]);
const grpcBody = Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message]);
/** gRPC-web's answer: the message's envelope, then the trailer envelope `grpc-status: 0\r\n`. */
const GRPC_WEB_ANSWER_BYTES = grpcBody.length + 5 + "grpc-status: 0\r\n".length;

const REQUEST_HEADERS: Record<Protocol, http2.OutgoingHttpHeaders> = {
  grpc: { ":method": "POST", ":path": PATH, "content-type": "application/grpc", te: "trailers" },
  connect: {
    ":method": "POST",
    ":path": PATH,
    "content-type": "application/proto",
    "connect-protocol-version": "1",
  },
  "grpc-web": { ":method": "POST", ":path": PATH, "content-type": "application/grpc-web+proto" },
};

function call(session: http2.ClientHttp2Session, protocol: Protocol): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const stream = session.request(REQUEST_HEADERS[protocol]);
    let got = 0;
    let status = "";
    stream.on("response", (h) => (status = String(h[":status"])));
    stream.on("data", (c: Buffer) => (got += c.length));
    stream.on("trailers", (t: http2.IncomingHttpHeaders) => {
      if (t["grpc-status"] !== "0") status = `grpc-status ${String(t["grpc-status"])}`;
    });
    stream.once("error", reject);
    stream.once("close", () => {
      const want = {
        grpc: grpcBody.length,
        connect: message.length,
        "grpc-web": GRPC_WEB_ANSWER_BYTES,
      }[protocol];
      if (status === "200" && got === want) resolvePromise();
      else reject(new Error(`status ${status}, ${got} bytes`));
    });
    stream.end(protocol === "connect" ? message : grpcBody);
  });
}

function open(server: Server, socket?: Duplex): http2.ClientHttp2Session {
  const session = http2.connect("http://localhost", {
    createConnection: () => socket ?? server.connect(),
  });
  session.on("error", () => {});
  return session;
}

async function batch(
  session: http2.ClientHttp2Session,
  protocol: Protocol,
  n: number,
  callers: number,
): Promise<void> {
  let next = 0;
  const loop = async (): Promise<void> => {
    while (next++ < n) await call(session, protocol);
  };
  await Promise.all(Array.from({ length: callers }, loop));
}

/** Server CPU µs per call over `n` calls from `callers` callers (after a warm-up). */
async function measure(
  server: Server,
  session: http2.ClientHttp2Session,
  protocol: Protocol,
  callers: number,
): Promise<{ cpu: number; rate: number }> {
  await batch(session, protocol, 200, callers);
  const pid = server.child.pid as number;
  const t0 = process.hrtime.bigint();
  const c0 = threadsCpuNs(pid);
  await batch(session, protocol, calls, callers);
  const c1 = threadsCpuNs(pid);
  const t1 = process.hrtime.bigint();
  return { cpu: (c1 - c0) / 1000 / calls, rate: calls / (Number(t1 - t0) / 1e9) };
}

/** Counts the HTTP/2 frames (by type) and bytes that pass one way through it. */
class FrameCounter {
  readonly types = new Map<number, number>();
  bytes = 0;
  private pending = Buffer.alloc(0);
  push(chunk: Buffer): void {
    this.bytes += chunk.length;
    this.pending = Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= 9) {
      const length = this.pending.readUIntBE(0, 3);
      if (this.pending.length < 9 + length) break;
      const type = this.pending[3] as number;
      this.types.set(type, (this.types.get(type) ?? 0) + 1);
      this.pending = this.pending.subarray(9 + length);
    }
  }
}

const FRAME_NAMES = [
  "DATA",
  "HEADERS",
  "PRIORITY",
  "RST",
  "SETTINGS",
  "PUSH",
  "PING",
  "GOAWAY",
  "WINDOW_UPDATE",
  "CONT",
];

/** A socket to `server` whose incoming bytes pass through `counter`. */
function counted(server: Server, counter: FrameCounter): Duplex {
  return tapSocket(server.connect(), (chunk) => counter.push(chunk));
}

async function frames(server: Server, protocol: Protocol): Promise<string> {
  const counter = new FrameCounter();
  const session = open(server, counted(server, counter));
  await batch(session, protocol, 50, 1);
  const before = new Map(counter.types);
  const bytes0 = counter.bytes;
  const n = 200;
  await batch(session, protocol, n, 1);
  session.destroy();
  const parts: string[] = [];
  for (const [type, count] of counter.types) {
    const per = (count - (before.get(type) ?? 0)) / n;
    if (per > 0) parts.push(`${FRAME_NAMES[type] ?? type} ${round(per)}`);
  }
  return `${parts.join(", ")}; ${round((counter.bytes - bytes0) / n)} bytes`;
}

async function syscalls(server: Server, protocol: Protocol): Promise<string> {
  const session = open(server);
  await batch(session, protocol, 100, 1);
  const out = join(mkdtempSync(join(tmpdir(), "h2cost-strace-")), "out");
  const tracer = spawn("strace", ["-f", "-c", "-o", out, "-p", String(server.child.pid)], {
    stdio: "ignore",
  });
  await new Promise((r) => setTimeout(r, 500));
  const n = 500;
  await batch(session, protocol, n, 1);
  tracer.kill("SIGINT");
  await new Promise((r) => tracer.once("exit", r));
  session.destroy();
  const table = readFileSync(out, "utf8");
  rmSync(dirname(out), { recursive: true, force: true });
  const counts = new Map<string, number>();
  for (const line of table.split("\n")) {
    const cols = line.trim().split(/\s+/);
    const name = cols[cols.length - 1];
    const callsCol = cols.length === 6 ? cols[3] : cols[3];
    if (name !== undefined && /^\d+$/.test(callsCol ?? "") && cols.length >= 5) {
      counts.set(name, Number(callsCol));
    }
  }
  const total = counts.get("total") ?? NaN;
  counts.delete("total");
  const top = [...counts]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 6)
    .map(([name, count]) => `${name} ${round(count / n)}`);
  return `${round(total / n)} per call (${top.join(", ")})`;
}

async function main(): Promise<void> {
  const ours = resolve(here, "..");
  const servers: Server[] = [await floor()];
  servers.push(await network("this build", ours), await launched("this build", ours));
  for (const { label, dir } of builds) {
    const dist = join(dir, "dist");
    servers.push(await network(label, dist), await launched(label, dist));
  }
  const sessions = new Map(servers.map((s) => [s, open(s)]));
  const results = new Map<string, { cpu: number[]; rate: number[] }>();
  const cases = servers.flatMap((s) =>
    s.protocols.flatMap((p) => [1, 64].map((callers) => ({ s, p, callers }))),
  );
  const t0 = Date.now();
  for (let r = 0; r < rounds; r++) {
    for (const { s, p, callers } of shuffled(cases)) {
      const key = `${s.name} | ${p} | ${callers === 1 ? "sequential" : "64 callers"}`;
      const m = await measure(s, sessions.get(s) as http2.ClientHttp2Session, p, callers);
      const entry = results.get(key) ?? { cpu: [], rate: [] };
      entry.cpu.push(m.cpu);
      entry.rate.push(m.rate);
      results.set(key, entry);
    }
    process.stderr.write(`round ${r + 1}/${rounds} (${Math.round((Date.now() - t0) / 1000)} s)\n`);
  }
  for (const session of sessions.values()) session.destroy();
  console.log(
    `${cpus().length} cores, load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}, Node ${process.version}, ${rounds} rounds of ${calls} calls, interleaved`,
  );
  console.log(
    "| server | protocol | callers | server CPU µs/call, median | min–max | calls/s, median |",
  );
  console.log("| --- | --- | --- | ---: | ---: | ---: |");
  for (const [key, { cpu, rate }] of [...results].sort()) {
    const [name, p, callers] = key.split(" | ");
    console.log(
      `| ${name} | ${p} | ${callers} | ${round(median(cpu))} | ${round(Math.min(...cpu))}–${round(Math.max(...cpu))} | ${round(median(rate))} |`,
    );
  }
  if (args.includes("--frames")) {
    console.log("\nHTTP/2 frames the server sends per sequential call:");
    for (const s of servers)
      for (const p of s.protocols) console.log(`- ${s.name}, ${p}: ${await frames(s, p)}`);
  }
  if (args.includes("--strace")) {
    execFileSync("strace", ["-V"], { stdio: "ignore" });
    console.log("\nServer system calls per sequential call (strace -f -c):");
    for (const s of servers)
      for (const p of s.protocols) console.log(`- ${s.name}, ${p}: ${await syscalls(s, p)}`);
  }
  for (const s of servers) s.stop();
}

await main();
