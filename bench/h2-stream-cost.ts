/**
 * Where a server stream of 16-byte messages spends its CPU over HTTP/2, per
 * message, on each side, against the HTTP/2 floor (servers.ts "h2"):
 *
 *   node dist/bench/h2-stream-cost.js [--rounds 5] [--n 200000]
 *     [--frames] [--strace] [--profile DIR [--only CASE]] [--build DIR]
 *
 * Servers, each its own process on loopback TCP: the floor, and the bench
 * plugin in network mode (bench/plugin.js with CONNECT_PLUGIN_LISTEN, as
 * the remote rows of `npm run bench` serve it). Clients, in this process:
 * the floor's client (bare node:http2, messages split by the 5-byte
 * prefix, as contenders.ts rawHttp2 does) against the floor and against
 * the plugin (gRPC, Connect streaming with `application/connect+proto`, and
 * gRPC-web with `application/grpc-web+proto`),
 * and our host (`remote(url, { protocol })`, `for await` over the bench
 * service's Stream) against the plugin. Each round runs every case once, in
 * a shuffled order, and reads the client's CPU (process.cpuUsage) and the
 * server's (every thread's /proc/PID/task/TID/schedstat) before and after
 * one stream of `n` messages. `--frames` counts, for one stream per case,
 * the HTTP/2 frames the server sends (by type) and the socket reads the
 * client sees; `--strace` counts the server's system calls over one stream
 * (`strace -f -c -p PID`). `--profile DIR` writes, for one warm stream per
 * case (or only the cases whose name contains `--only`), a CPU profile of
 * the client (node:inspector in this process) and of the server (the
 * profile-preload.js window) into DIR, to read with cpuprofile.js --kinds.
 * A third server, this file with `--serve-each`, is the floor with one
 * write per message (see serveEach). `--promises` counts the promises
 * each side creates per message (async_hooks; slows both sides, so not
 * with the timed rounds). `--build DIR` adds a second plugin, DIR's build
 * (DIR/dist/bench/plugin.js, e.g. a worktree of main), and its plugin rows
 * marked "(DIR's build)" (our host's cases for each `--streams` kind),
 * shuffled into the same rounds: an A/B of the plugin side on one machine
 * state. `--go` adds go-plugin's Go host with
 * the bench plugin (and, with `--build`, with DIR's), CPU read from /proc
 * for both processes. `--streams server,bidi,client` (default `server`)
 * picks the stream kinds of our host's cases: `bidi` sends `n` 16-byte
 * messages on the bench service's EchoStream and reads their `n` echoes,
 * as fast as flow control lets it; `client` sends `n` on Collect and reads
 * the count. `--host DIR` adds our host's cases run by DIR's build of the
 * host (DIR/dist/src/index.js, e.g. a worktree of main), marked "(DIR's
 * host)", against this build's plugin, shuffled into the same rounds: an
 * A/B of the host side. `--protocols grpc,connect,grpc-web` (default
 * `grpc,connect`) picks the protocols of our host's cases. `--http 1.1`
 * runs our host's cases over HTTP/1.1 (`remote(url, { protocol,
 * httpVersion: "1.1" })`; Connect and gRPC-web, server and client streams).
 */
import { tapSocket } from "./tap-socket.js";
import { spawn, type ChildProcess } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createHook } from "node:async_hooks";
import * as http2 from "node:http2";
import { Session } from "node:inspector";
import * as net from "node:net";
import { cpus, loadavg, tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import type { Duplex } from "node:stream";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as thisHost from "../src/index.js";
import { firstMatch } from "./child-output.js";
import {
  connectOps,
  GoPluginHost,
  openPlugin,
  PROTOCOL_NAMES,
  type HostProtocol,
} from "./contenders.js";
import { buildGoContenders } from "./go-build.js";
import { LengthPrefixedReader } from "./length-prefixed.js";
import { threadsCpuNs } from "./proc-cpu.js";
import { median, round, shuffled } from "./stats.js";

const args = process.argv.slice(2);
const option = (name: string, fallback: string): string => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? (args[at + 1] ?? fallback) : fallback;
};
const rounds = Number(option("rounds", "5"));
const n = Number(option("n", "200000"));
const profileDir = option("profile", "");
const only = option("only", "");
const build = option("build", "");
const hostDir = option("host", "");
type Kind = "server" | "bidi" | "client";
const kinds = option("streams", "server").split(",") as Kind[];
const hostProtocols = option("protocols", "grpc,connect").split(",") as HostProtocol[];
/** `--http 1.1`: our host's cases over HTTP/1.1 (default HTTP/2). */
const httpVersion = option("http", "2") as "1.1" | "2";
const here = dirname(fileURLToPath(import.meta.url));
const preload = pathToFileURL(join(here, "profile-preload.js")).href;

interface Server {
  readonly name: string;
  /** The server's process (for the Go host's plugin, its pid only: the host owns it). */
  readonly child: Pick<ChildProcess, "pid" | "kill">;
  readonly port: number;
  /** Where profile-preload.js writes this server's window. */
  readonly profileOut: string;
}

/**
 * With `--promises`, a server child counts the promises it creates
 * (async_hooks) and, on each SIGUSR2, appends the count so far to
 * PROMISES_OUT: per message, the promise hops of the whole path.
 */
const COUNT_PROMISES = `data:text/javascript,${encodeURIComponent(
  [
    'import { createHook } from "node:async_hooks";',
    'import { appendFileSync } from "node:fs";',
    "let n = 0;",
    'createHook({ init(_id, type) { if (type === "PROMISE") n++; } }).enable();',
    'process.on("SIGUSR2", () => appendFileSync(process.env.PROMISES_OUT, `${n}\\n`));',
  ].join("\n"),
)}`;
const promisesDir = args.includes("--promises")
  ? mkdtempSync(join(tmpdir(), "h2stream-promises-"))
  : "";

/** Node flags and env for a server child: the profiling preload when `--profile`. */
function nodeArgs(name: string): { argv: string[]; env: NodeJS.ProcessEnv; out: string } {
  if (promisesDir !== "")
    return {
      argv: ["--import", COUNT_PROMISES],
      env: { PROMISES_OUT: join(promisesDir, name) },
      out: join(promisesDir, name),
    };
  if (profileDir === "") return { argv: [], env: {}, out: "" };
  const out = join(resolve(profileDir), `server-${name}`);
  // No heap sampling: at every 512 B it costs more than the stream itself.
  return {
    argv: ["--import", preload],
    env: { PROFILE_OUT: out, PROFILE_HEAP_BYTES: String(2 ** 30) },
    out,
  };
}

async function floorServer(): Promise<Server> {
  const p = nodeArgs("floor");
  const child = spawn(process.execPath, [...p.argv, join(here, "servers.js"), "h2", "tcp"], {
    env: { ...process.env, ...p.env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const port = Number(await firstMatch(child, "stdout", /ready 127\.0\.0\.1:(\d+)/));
  return { name: "floor", child, port, profileOut: p.out };
}

/**
 * `--serve-each`: the floor's server with one `stream.write` of 21 bytes per
 * message (backpressure honoured) instead of one write per 4096 messages:
 * what node:http2 costs per message when the framing is free but each
 * message is its own write, as any per-message server path makes it.
 */
function serveEach(): void {
  const frame = Buffer.alloc(21);
  frame.writeUInt32BE(16, 1);
  const h2 = http2.createServer().on("stream", (stream, headers) => {
    const count = Number(String(headers[":path"] ?? "").slice("/stream/".length));
    stream.resume();
    stream.respond(
      { ":status": 200, "content-type": "application/grpc" },
      { waitForTrailers: true },
    );
    stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    let left = count;
    const pump = (): void => {
      while (left > 0) {
        left--;
        if (!stream.write(frame)) {
          stream.once("drain", pump);
          return;
        }
      }
      stream.end();
    };
    pump();
  });
  h2.listen(0, "127.0.0.1", () => {
    const { port } = h2.address() as net.AddressInfo;
    process.stdout.write(`ready 127.0.0.1:${port}\n`);
  });
}

async function eachServer(mode = "each"): Promise<Server> {
  const p = nodeArgs("each");
  const child = spawn(
    process.execPath,
    [...p.argv, fileURLToPath(import.meta.url), "--serve-each"],
    {
      env: { ...process.env, ...p.env },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const port = Number(await firstMatch(child, "stdout", /ready 127\.0\.0\.1:(\d+)/));
  return { name: mode, child, port, profileOut: p.out };
}

/** The bench plugin of this build, or of `dist` (another build's dist/bench). */
async function pluginServer(dist = here, name = "plugin"): Promise<Server> {
  const p = nodeArgs(name);
  const child = spawn(process.execPath, [...p.argv, join(dist, "plugin.js")], {
    env: { ...process.env, ...p.env, CONNECT_PLUGIN_LISTEN: "127.0.0.1:0" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const url = new URL(await firstMatch(child, "stderr", /"url":"([^"]+)"/));
  return { name, child, port: Number(url.port), profileOut: p.out };
}

const STREAM = "/bench.v1.BenchService/Stream";

/** google.protobuf.Int64Value{value: n}, enveloped (flag 0, u32 length). */
function request(count: number): Buffer {
  const varint: number[] = [];
  for (let v = count; ; v = Math.floor(v / 128)) {
    if (v < 128) {
      varint.push(v);
      break;
    }
    varint.push((v % 128) | 128);
  }
  const msg = Buffer.from([0x08, ...varint]);
  return Buffer.concat([Buffer.from([0, 0, 0, 0, msg.length]), msg]);
}

type Wire = "floor" | "grpc" | "connect" | "grpc-web";

/** The flag of the body's last envelope, which is no message: Connect's end-of-stream, gRPC-web's trailer. */
const END_FLAG: Record<Wire, number> = { floor: 0, grpc: 0, connect: 2, "grpc-web": 0x80 };

/**
 * One stream of `count` messages read by the floor's client: bare
 * node:http2, each message split off by its 5-byte prefix and counted. For
 * Connect the last envelope (flag 2) is the end-of-stream JSON, for
 * gRPC-web (flag 0x80) the trailer, not a message.
 */
function bareStream(session: http2.ClientHttp2Session, wire: Wire, count: number): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const headers: http2.OutgoingHttpHeaders =
      wire === "floor"
        ? { ":method": "POST", ":path": `/stream/${count}`, "content-type": "application/grpc" }
        : wire === "grpc"
          ? {
              ":method": "POST",
              ":path": STREAM,
              "content-type": "application/grpc",
              te: "trailers",
            }
          : wire === "grpc-web"
            ? { ":method": "POST", ":path": STREAM, "content-type": "application/grpc-web+proto" }
            : {
                ":method": "POST",
                ":path": STREAM,
                "content-type": "application/connect+proto",
                "connect-protocol-version": "1",
              };
    const stream = session.request(headers);
    const reader = new LengthPrefixedReader(5);
    const endFlag = END_FLAG[wire];
    let got = 0;
    let end = endFlag === 0;
    let trailer = wire === "connect";
    stream.on("data", (c: Buffer) =>
      reader.push(c, (m) => {
        if (((m[0] as number) & endFlag) === 0) got++;
        else {
          end = true;
          if (wire === "grpc-web") trailer = m.subarray(5).toString() === "grpc-status: 0\r\n";
        }
      }),
    );
    stream.on("trailers", (t: http2.IncomingHttpHeaders) => (trailer = t["grpc-status"] === "0"));
    stream.once("error", reject);
    stream.once("close", () =>
      got === count && end && trailer
        ? resolvePromise()
        : reject(
            new Error(`${wire}: ${got} of ${count} messages, end ${end}, status ok ${trailer}`),
          ),
    );
    stream.end(wire === "floor" ? Buffer.alloc(0) : request(count));
  });
}

interface Case {
  readonly name: string;
  readonly server: Server;
  /** One stream of `count` messages. */
  run(count: number): Promise<void>;
  /** A fresh connection whose incoming bytes pass through `onBytes`, for --frames. */
  counted?(onBytes: (chunk: Buffer) => void): (count: number) => Promise<void>;
  close(): Promise<void>;
  /** A client in a process of its own (the Go host): its CPU is read from /proc, not this process's. */
  readonly clientPid?: number;
}

function bareCase(name: string, server: Server, wire: Wire): Case {
  const open = (socket?: Duplex): http2.ClientHttp2Session => {
    const session = http2.connect("http://localhost", {
      createConnection: () => socket ?? net.connect(server.port, "127.0.0.1"),
    });
    session.on("error", () => {});
    return session;
  };
  const session = open();
  const extra: http2.ClientHttp2Session[] = [];
  return {
    name,
    server,
    run: (count) => bareStream(session, wire, count),
    counted(onBytes) {
      const s = open(tapSocket(net.connect(server.port, "127.0.0.1"), onBytes));
      extra.push(s);
      return (count) => bareStream(s, wire, count);
    },
    close: () => {
      session.destroy();
      for (const s of extra) s.destroy();
      return Promise.resolve();
    },
  };
}

/** What a host case runs on: this build's host, or `--host DIR`'s. */
type Host = Pick<typeof thisHost, "PluginClient" | "remote">;

/** `count` 16-byte messages, the bench service's requests of EchoStream and Collect. */
// eslint-disable-next-line @typescript-eslint/require-await -- a request as fast as it goes
async function* sixteenBytes(count: number): AsyncGenerator<{ value: Uint8Array }> {
  const message = { value: new Uint8Array(16).fill(7) };
  for (let i = 0; i < count; i++) yield message;
}

/** Our host (`host`) against the plugin: one stream of `kind` per run. */
async function hostCase(
  name: string,
  server: Server,
  protocol: HostProtocol,
  kind: Kind = "server",
  host: Host = thisHost,
): Promise<Case> {
  const client = await openPlugin(
    host.remote(`http://127.0.0.1:${server.port}`, { protocol, httpVersion }),
    host.PluginClient,
  );
  const bench = client.dispense("bench");
  const ops = connectOps(bench);
  const streams: Record<Kind, (count: number) => Promise<number>> = {
    server: (count) => ops.stream(count),
    async bidi(count) {
      let got = 0;
      for await (const _ of bench.echoStream(sixteenBytes(count))) got++;
      return got;
    },
    client: async (count) => Number((await bench.collect(sixteenBytes(count))).value),
  };
  const stream = streams[kind];
  return {
    name,
    server,
    async run(count) {
      const got = await stream(count);
      if (got !== count) throw new Error(`${name}: ${got} of ${count} messages`);
    },
    close: () => client.close(),
  };
}

/** Our host's cases against `plugin` (named `plugin${pluginTag}`): each `--streams` kind, each `--protocols` protocol, each host. */
async function hostCases(plugin: Server, pluginTag = ""): Promise<Case[]> {
  const hosts: [string, Host][] = [["", thisHost]];
  if (hostDir !== "") {
    const url = pathToFileURL(join(resolve(hostDir), "dist", "src", "index.js")).href;
    hosts.push([` (${basename(resolve(hostDir))}'s host)`, (await import(url)) as Host]);
  }
  const cases: Case[] = [];
  for (const [tag, host] of hosts) {
    for (const kind of kinds) {
      const what = kind === "server" ? "" : `, ${kind} stream`;
      for (const protocol of hostProtocols) {
        const over = httpVersion === "2" ? "" : ` over HTTP/${httpVersion}`;
        const name = `our host${tag} -> plugin${pluginTag}, ${PROTOCOL_NAMES[protocol]}${over}${what}`;
        cases.push(await hostCase(name, plugin, protocol, kind, host));
      }
    }
  }
  return cases;
}

/**
 * go-plugin's Go host (go/bench/goplugin/host) with the bench plugin of
 * `dist` as its plugin, over go-plugin's gRPC (the "go-plugin Go host ->
 * connect-plugin Node plugin" row of `npm run bench`): one `stream` command
 * per run. Both are processes of their own; their CPU is read from /proc.
 */
async function goHostCase(name: string, hostBin: string, dist: string): Promise<Case> {
  const dir = mkdtempSync(join(tmpdir(), "h2stream-go-"));
  const script = join(dir, "bench-plugin");
  writeFileSync(script, `#!/bin/sh\nexec "${process.execPath}" "${join(dist, "plugin.js")}"\n`);
  chmodSync(script, 0o755);
  const host = await GoPluginHost.start(name, hostBin, script, false, undefined, () =>
    rmSync(dir, { recursive: true, force: true }),
  );
  const client = host.hostPid();
  const server = host.serverPid();
  if (client === undefined || server === undefined) throw new Error(`${name}: no pids`);
  return {
    name,
    server: { name, child: { pid: server, kill: () => false }, port: 0, profileOut: "" },
    clientPid: client,
    async run(count) {
      await host.stream(count);
    },
    close: () => host.close(),
  };
}

/** DATA frames and their payload bytes, other frames, and socket reads, of one direction. */
class FrameCounter {
  data = 0;
  dataBytes = 0;
  other = 0;
  reads = 0;
  private pending: Buffer = Buffer.alloc(0);
  push(chunk: Buffer): void {
    this.reads++;
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    let at = 0;
    while (this.pending.length - at >= 9) {
      const length = this.pending.readUIntBE(at, 3);
      if (this.pending.length - at < 9 + length) break;
      if (this.pending[at + 3] === 0) {
        this.data++;
        this.dataBytes += length;
      } else this.other++;
      at += 9 + length;
    }
    this.pending = this.pending.subarray(at);
  }
}

async function frames(c: Case): Promise<string> {
  if (c.counted === undefined) return "(the client's own connection: not tapped)";
  const counter = new FrameCounter();
  const run = c.counted((chunk) => counter.push(chunk));
  await run(1000);
  const before = { ...counter };
  await run(n);
  const d = counter.data - before.data;
  const r = counter.reads - before.reads;
  return (
    `${d} DATA frames (${round(n / d)} msgs, ${round((counter.dataBytes - before.dataBytes) / d)} B each), ` +
    `${counter.other - before.other} other frames, ${r} client socket reads (${round(n / r)} msgs each)`
  );
}

async function syscalls(c: Case): Promise<string> {
  const out = join(mkdtempSync(join(tmpdir(), "h2stream-strace-")), "out");
  const tracer = spawn("strace", ["-f", "-c", "-o", out, "-p", String(c.server.child.pid)], {
    stdio: "ignore",
  });
  await new Promise((r) => setTimeout(r, 500));
  await c.run(n);
  tracer.kill("SIGINT");
  await new Promise((r) => tracer.once("exit", r));
  const table = readFileSync(out, "utf8");
  rmSync(dirname(out), { recursive: true, force: true });
  const counts: string[] = [];
  for (const line of table.split("\n")) {
    const cols = line.trim().split(/\s+/);
    const name = cols[cols.length - 1] ?? "";
    if (/^(writev?|sendmsg|read|recvmsg|epoll_wait|futex|total)$/.test(name) && cols.length >= 5)
      counts.push(`${name} ${cols[3]} (${round(n / Number(cols[3]))} msgs each)`);
  }
  return counts.join(", ");
}

/** CPU-profiles this process (node:inspector) and the server (profile-preload.js) over one stream. */
async function profile(c: Case, session: Session): Promise<void> {
  const post = <T>(method: string, params: object = {}): Promise<T> =>
    new Promise((ok, fail) =>
      session.post(method, params, (e, r) => (e === null ? ok(r as T) : fail(e))),
    );
  const tag = c.name.replace(/[^a-z0-9]+/gi, "-");
  rmSync(`${c.server.profileOut}.done`, { force: true });
  process.kill(c.server.child.pid as number, "SIGUSR2");
  await post("Profiler.enable");
  await post("Profiler.setSamplingInterval", { interval: 50 });
  await post("Profiler.start");
  await new Promise((r) => setTimeout(r, 300));
  await c.run(n);
  const { profile: host } = await post<{ profile: unknown }>("Profiler.stop");
  process.kill(c.server.child.pid as number, "SIGUSR2");
  while (!existsSync(`${c.server.profileOut}.done`)) await new Promise((r) => setTimeout(r, 50));
  writeFileSync(join(profileDir, `client-${tag}.cpuprofile`), JSON.stringify(host));
  for (const ext of ["cpuprofile", "gc.json"])
    writeFileSync(
      join(profileDir, `server-${tag}.${ext}`),
      readFileSync(`${c.server.profileOut}.${ext}`),
    );
}

/** Promises created per message by this process (the client) and by the server, over one stream. */
async function promises(c: Case): Promise<string> {
  const count = 20_000;
  const server = async (): Promise<number> => {
    rmSync(c.server.profileOut, { force: true });
    process.kill(c.server.child.pid as number, "SIGUSR2");
    while (!existsSync(c.server.profileOut)) await new Promise((r) => setTimeout(r, 20));
    return Number(readFileSync(c.server.profileOut, "utf8").trim());
  };
  let mine = 0;
  const hook = createHook({ init: (_id, type) => void (type === "PROMISE" && mine++) });
  const s0 = await server();
  hook.enable();
  await c.run(count);
  hook.disable();
  const s1 = await server();
  return `client ${round(mine / count)}, server ${round((s1 - s0) / count)} promises per message`;
}

async function main(): Promise<void> {
  if (profileDir !== "") mkdirSync(profileDir, { recursive: true });
  const floor = await floorServer();
  const each = await eachServer();
  const plugin = await pluginServer();
  const all: Case[] = [
    bareCase("floor client -> floor server", floor, "floor"),
    bareCase("floor client -> floor, one write per message", each, "floor"),
    bareCase("floor client -> plugin, gRPC", plugin, "grpc"),
    bareCase("floor client -> plugin, Connect", plugin, "connect"),
    bareCase("floor client -> plugin, gRPC-web", plugin, "grpc-web"),
    ...(await hostCases(plugin)),
  ];
  const other =
    build === "" ? undefined : await pluginServer(join(resolve(build), "dist", "bench"), "base");
  if (other !== undefined) {
    const tag = `(${basename(resolve(build))}'s build)`;
    all.push(
      bareCase(`floor client -> plugin ${tag}, gRPC`, other, "grpc"),
      bareCase(`floor client -> plugin ${tag}, Connect`, other, "connect"),
      bareCase(`floor client -> plugin ${tag}, gRPC-web`, other, "grpc-web"),
      ...(await hostCases(other, ` ${tag}`)),
    );
  }
  const go = args.includes("--go") ? await buildGoContenders() : undefined;
  if (go !== undefined) {
    all.push(await goHostCase("Go host -> plugin, go-plugin gRPC", go.host, here));
    if (build !== "") {
      all.push(
        await goHostCase(
          `Go host -> plugin (${basename(resolve(build))}'s build), go-plugin gRPC`,
          go.host,
          join(resolve(build), "dist", "bench"),
        ),
      );
    }
  }
  const cases = all.filter((c) => c.name.includes(only));
  for (const c of cases) await c.run(20_000); // warm-up: JIT, windows, pools
  if (profileDir !== "") {
    const session = new Session();
    session.connect();
    for (const c of cases) {
      // The Go host's plugin has no profiling preload.
      if (c.clientPid !== undefined) continue;
      await c.run(n);
      await profile(c, session);
      process.stderr.write(`profiled ${c.name}\n`);
    }
    session.disconnect();
  }
  const results = new Map<string, { client: number[]; server: number[]; rate: number[] }>();
  for (let r = 0; r < rounds; r++) {
    for (const c of shuffled(cases)) {
      const pid = c.server.child.pid as number;
      const clientPid = c.clientPid;
      const clientCpuUs = (): number => {
        if (clientPid !== undefined) return threadsCpuNs(clientPid) / 1000;
        const u = process.cpuUsage();
        return u.user + u.system;
      };
      const u0 = clientCpuUs();
      const s0 = threadsCpuNs(pid);
      const t0 = process.hrtime.bigint();
      await c.run(n);
      const t1 = process.hrtime.bigint();
      const s1 = threadsCpuNs(pid);
      const u1 = clientCpuUs() - u0;
      const e = results.get(c.name) ?? { client: [], server: [], rate: [] };
      e.client.push(u1 / n);
      e.server.push((s1 - s0) / 1000 / n);
      e.rate.push(n / (Number(t1 - t0) / 1e9));
      results.set(c.name, e);
    }
    process.stderr.write(`round ${r + 1}/${rounds}\n`);
  }
  const spread = (xs: number[]): string =>
    `${round(median(xs))} (${round(Math.min(...xs))}–${round(Math.max(...xs))})`;
  if (rounds > 0) {
    console.log(
      `${cpus().length} cores, load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(
          " ",
        )}, Node ${process.version}, ${rounds} rounds of one ${n}-message stream per case, shuffled`,
    );
    console.log(
      "| case | client CPU µs/msg, median (min–max) | server CPU µs/msg | msgs/s (wall) |",
    );
    console.log("| --- | ---: | ---: | ---: |");
    for (const c of cases) {
      const e = results.get(c.name);
      if (e === undefined) continue;
      console.log(
        `| ${c.name} | ${spread(e.client)} | ${spread(e.server)} | ${round(median(e.rate))} (${round(Math.min(...e.rate))}–${round(Math.max(...e.rate))}) |`,
      );
    }
  }
  if (args.includes("--frames")) {
    console.log(`\nWhat the server sends per ${n}-message stream:`);
    for (const c of cases) console.log(`- ${c.name}: ${await frames(c)}`);
  }
  if (promisesDir !== "") {
    console.log("\nPromises created per message (async_hooks, one 20000-message stream):");
    for (const c of cases) {
      if (c.clientPid === undefined) console.log(`- ${c.name}: ${await promises(c)}`);
    }
    rmSync(promisesDir, { recursive: true, force: true });
  }
  if (args.includes("--strace")) {
    console.log(`\nServer system calls per ${n}-message stream (strace -f -c):`);
    for (const c of cases) console.log(`- ${c.name}: ${await syscalls(c)}`);
  }
  for (const c of all) await c.close();
  for (const s of [floor, each, plugin, other]) s?.child.kill();
  if (go !== undefined) rmSync(go.dir, { recursive: true, force: true });
}

if (args.includes("--serve-each")) serveEach();
else await main();
