/**
 * The contenders: every way a Node or Go host could call a local plugin.
 * Each one runs the scenarios of bench/run.ts through the same small
 * interface, inside a host process of its own (bench/node-host.ts for Node,
 * go/bench/goplugin/host for Go) that measures itself and reports figures
 * over a JSON-lines pipe to `HostProcess`, the harness's one driver.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import type { Client } from "@connectrpc/connect";
import {
  StreamMessageReader,
  StreamMessageWriter,
  createMessageConnection,
  type MessageConnection,
} from "vscode-jsonrpc/node";
import {
  PluginClient,
  inProcess,
  remote,
  silentLogger,
  subprocess,
  type PluginSource,
} from "../src/index.js";
import { killGroup } from "../src/process/kill-group.js";
import { firstMatch } from "./child-output.js";
import { Bench, benchHandshake, benchPlugin } from "./service.js";
import { grpcDefinition } from "./grpc-definition.js";
import { LengthPrefixedReader } from "./length-prefixed.js";
import { childrenOf } from "./proc-memory.js";
import { allowedCpus, checkPinned, pin, pinnedCommand, type Placement } from "./placement.js";
import type { NodeKind } from "./node-host.js";

/** The protocols our host speaks over HTTP/2, as a bench's `--protocols` names them. */
export type HostProtocol = "connect" | "grpc" | "grpc-web";
/** How a row names each HostProtocol. */
export const PROTOCOL_NAMES: Record<HostProtocol, string> = {
  connect: "Connect",
  grpc: "gRPC",
  "grpc-web": "gRPC-web",
};

export interface Contender {
  readonly name: string;
  /** Runs `n` sequential calls with a payload of `size` bytes; µs per call. */
  unary(n: number, size: number): Promise<number[]>;
  /** Calls per second with `callers` concurrent callers for `ms`. */
  concurrent(ms: number, callers: number): Promise<number>;
  /** Messages per second of one server stream of `n` 16-byte messages. */
  stream(n: number): Promise<number>;
  /** µs per call, one figure per batch of 1,000 sequential 16-byte calls (in-process scale). */
  batches?(n: number): Promise<number[]>;
  /** The process that serves the calls (plugin or server), for its memory; none in process. */
  serverPid?(): number | undefined;
  close(): Promise<void>;
}

/** Round trip and stream primitives that the generic scenario code drives. */
export interface Ops {
  echo(payload: Uint8Array): Promise<unknown>;
  stream(n: number): Promise<number>;
}

export function fromOps(
  name: string,
  ops: Ops,
  close: () => Promise<void>,
  serverPid?: () => number | undefined,
): Contender {
  return {
    name,
    ...(serverPid !== undefined && { serverPid }),
    async unary(n, size) {
      const payload = new Uint8Array(size).fill(7);
      const out: number[] = [];
      for (let i = 0; i < n; i++) {
        const t = process.hrtime.bigint();
        await ops.echo(payload);
        out.push(Number(process.hrtime.bigint() - t) / 1_000);
      }
      return out;
    },
    async concurrent(ms, callers) {
      const payload = new Uint8Array(16).fill(7);
      const start = performance.now();
      const end = start + ms;
      let done = 0;
      await Promise.all(
        Array.from({ length: callers }, async () => {
          while (performance.now() < end) {
            await ops.echo(payload);
            done++;
          }
        }),
      );
      return done / ((performance.now() - start) / 1_000);
    },
    async stream(n) {
      const t = performance.now();
      const got = await ops.stream(n);
      if (got !== n) throw new Error(`${name}: stream delivered ${got} of ${n} messages`);
      return got / ((performance.now() - t) / 1_000);
    },
    async batches(n) {
      // `{ value }` is built per call by `echo`, as for every other contender.
      const value = new Uint8Array(16);
      const out: number[] = [];
      for (let b = 0; b < n; b++) {
        const t = process.hrtime.bigint();
        for (let i = 0; i < 1_000; i++) await ops.echo(value);
        out.push(Number(process.hrtime.bigint() - t) / 1_000 / 1_000);
      }
      return out;
    },
    close,
  };
}

/** The floor of in-process calls: a plain async function, no plugin system. */
export function plainCall(name: string): Promise<Contender> {
  const impl = (m: unknown): Promise<unknown> => Promise.resolve(m);
  const ops: Ops = {
    echo: (value) => impl({ value }),
    stream: (n) => Promise.resolve(n),
  };
  return Promise.resolve(fromOps(name, ops, () => Promise.resolve()));
}

const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url));
export const benchPluginMain = here("./plugin.js");
const serversMain = here("./servers.js");
const nodeHostMain = here("./node-host.js");

type BenchClient = PluginClient<{ bench: typeof Bench }>;

/**
 * A started client of the bench plugin at `source`. `Client`: the
 * PluginClient class to use (another build's, for an A/B of the host side).
 */
export async function openPlugin(
  source: PluginSource,
  Client: typeof PluginClient = PluginClient,
): Promise<BenchClient> {
  const client = new Client({
    handshake: benchHandshake,
    plugins: { bench: Bench },
    source,
    logger: silentLogger,
  });
  await client.start();
  await client.dispense("bench").echo({ value: new Uint8Array(1) });
  return client;
}

export function connectOps(bench: Client<typeof Bench>): Ops {
  return {
    echo: (value) => bench.echo({ value }),
    async stream(n) {
      let got = 0;
      for await (const _ of bench.stream({ value: BigInt(n) })) got++;
      return got;
    },
  };
}

/** connect-plugin with a subprocess plugin, over the given local transport. */
export async function connectPluginSubprocess(
  name: string,
  transports: ("framed" | "connect")[],
  main = benchPluginMain,
  autoMTLS = true,
): Promise<Contender> {
  const client = await openPlugin(subprocess(process.execPath, [main], { transports, autoMTLS }));
  return fromOps(
    name,
    connectOps(client.dispense("bench")),
    () => client.close(),
    () => client.pid,
  );
}

/**
 * connect-plugin with a plugin in network mode, over loopback TCP: over
 * HTTP/2 with `protocol`, or over the framed protocol negotiated on the same
 * port (`"framed"`, `"framed+tls"`: TLS with a throwaway certificate, ALPN).
 * `main`: the bench plugin's script (another build's, for an A/B).
 */
export async function connectPluginRemote(
  name: string,
  protocol: "connect" | "grpc" | "framed" | "framed+tls" = "connect",
  main = benchPluginMain,
): Promise<Contender> {
  const pki = protocol === "framed+tls" ? throwawayCert() : undefined;
  const child = spawn(process.execPath, [main], {
    env: {
      ...process.env,
      CONNECT_PLUGIN_LISTEN: "127.0.0.1:0",
      ...(pki !== undefined && {
        CONNECT_PLUGIN_TLS_CERT_FILE: pki.cert,
        CONNECT_PLUGIN_TLS_KEY_FILE: pki.key,
      }),
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const url = await firstMatch(child, "stderr", /"url":"([^"]+)"/, "bench plugin");
  const source =
    protocol === "framed" || protocol === "framed+tls"
      ? remote(url, {
          transport: "framed",
          ...(pki !== undefined && { tls: { ca: readFileSync(pki.cert) } }),
        })
      : remote(url, { protocol });
  const client = await openPlugin(source);
  return fromOps(
    name,
    connectOps(client.dispense("bench")),
    async () => {
      await client.close();
      child.kill("SIGTERM");
      if (pki !== undefined) rmSync(pki.dir, { recursive: true, force: true });
    },
    () => child.pid,
  );
}

/** A self-signed P-256 certificate for 127.0.0.1, made with openssl, in a temp folder. */
export function throwawayCert(): { dir: string; cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), "bench-tls-"));
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
      .concat(["-keyout", key, "-out", cert, "-subj", "/CN=localhost", "-days", "1"])
      .concat(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]),
    { stdio: "ignore" },
  );
  return { dir, cert, key };
}

/** connect-plugin with the plugin in the host's process. */
export async function connectPluginInProcess(
  name: string,
  mode: "direct" | "serialize",
): Promise<Contender> {
  const client = await openPlugin(inProcess(benchPlugin(), { mode }));
  return fromOps(name, connectOps(client.dispense("bench")), () => client.close());
}

/**
 * A child server process from bench/servers.ts that prints "ready", on a
 * unix socket, or (`tcp`, the h2 server only) on loopback TCP: then
 * `socket` is its "127.0.0.1:PORT".
 */
async function startServer(
  kind: string,
  tcp = false,
): Promise<{ child: ChildProcess; socket: string; stop: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), "cpb-"));
  const path = join(dir, "s.sock");
  const child = spawn(process.execPath, [serversMain, kind, tcp ? "tcp" : path], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const line = await new Promise<string>((resolve, reject) => {
    child.stdout?.once("data", (c: Buffer) => resolve(c.toString().trim()));
    child.once("exit", (code) => reject(new Error(`${kind} server exited with ${code}`)));
  });
  return {
    child,
    socket: tcp ? line.slice("ready ".length) : path,
    stop: () => {
      child.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The floor: length-prefixed ping-pong over a unix socket, no RPC at all. */
export async function rawSocket(name: string): Promise<Contender> {
  const server = await startServer("raw");
  const socket = net.connect(server.socket);
  socket.setNoDelay(true);
  await new Promise<void>((resolve) => socket.once("connect", resolve));
  // Replies come back in order; each waiter takes the next whole frame.
  const waiters: Array<(frame: Buffer) => void> = [];
  let streamLeft = 0;
  let streamDone: (() => void) | undefined;
  const reader = new LengthPrefixedReader(4);
  socket.on("data", (chunk: Buffer) =>
    reader.push(chunk, (frame) => {
      if (streamLeft > 0) {
        if (--streamLeft === 0) streamDone?.();
      } else waiters.shift()?.(frame.subarray(4));
    }),
  );
  const ops: Ops = {
    echo(payload) {
      const head = Buffer.allocUnsafe(4);
      head.writeUInt32BE(payload.length, 0);
      return new Promise<Buffer>((resolve) => {
        waiters.push(resolve);
        socket.write(payload.length < 1024 ? Buffer.concat([head, payload]) : head);
        if (payload.length >= 1024) socket.write(payload);
      });
    },
    stream(n) {
      const req = Buffer.alloc(12);
      req.writeUInt32BE(8, 0);
      req.writeBigUInt64BE(0xff00000000000000n | BigInt(n), 4);
      return new Promise<number>((resolve) => {
        streamLeft = n;
        streamDone = () => resolve(n);
        socket.write(req);
      });
    },
  };
  return fromOps(
    name,
    ops,
    () => {
      socket.destroy();
      server.stop();
      return Promise.resolve();
    },
    () => server.child.pid,
  );
}

/**
 * The HTTP/2 floor: bare node:http2 between two processes over a unix
 * socket (or, `tcp`, loopback TCP: the floor of the remote rows, which
 * run over TCP), with gRPC's 5-byte message prefix and trailers, no
 * Connect, no protobuf. What any HTTP/2 RPC stack in Node pays at least.
 */
export async function rawHttp2(name: string, tcp = false): Promise<Contender> {
  const server = await startServer("h2", tcp);
  const [host = "", port = ""] = server.socket.split(":");
  const session = http2.connect("http://localhost", {
    createConnection: () => (tcp ? net.connect(Number(port), host) : net.connect(server.socket)),
  });
  session.on("error", () => {});
  const call = (path: string, body: Buffer, onData: (chunk: Buffer) => void): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const stream = session.request({
        ":method": "POST",
        ":path": path,
        "content-type": "application/grpc",
        te: "trailers",
      });
      let status: string | undefined;
      stream.on("data", onData);
      stream.once(
        "trailers",
        (t: http2.IncomingHttpHeaders) => (status = String(t["grpc-status"])),
      );
      stream.once("error", reject);
      stream.once("close", () =>
        status === "0" ? resolve() : reject(new Error(`grpc-status ${status}`)),
      );
      stream.end(body);
    });
  const ops: Ops = {
    async echo(payload) {
      const body = Buffer.allocUnsafe(5 + payload.length);
      body[0] = 0;
      body.writeUInt32BE(payload.length, 1);
      body.set(payload, 5);
      let got = 0;
      await call("/bench.v1.BenchService/Echo", body, (c) => (got += c.length));
      if (got !== body.length) throw new Error(`h2 echo: ${got} bytes back`);
    },
    async stream(n) {
      // Split into messages, as every other contender's client does.
      const reader = new LengthPrefixedReader(5);
      let got = 0;
      await call(`/stream/${n}`, Buffer.alloc(0), (c) => reader.push(c, () => got++));
      return got;
    },
  };
  return fromOps(
    name,
    ops,
    () => {
      session.destroy();
      server.stop();
      return Promise.resolve();
    },
    () => server.child.pid,
  );
}

export async function grpcJs(name: string): Promise<Contender> {
  const server = await startServer("grpc-js");
  const Ctor = grpc.makeGenericClientConstructor(grpcDefinition, "BenchService");
  const client = new Ctor(`unix://${server.socket}`, grpc.credentials.createInsecure());
  const echo = client["echo"] as unknown as (
    req: Uint8Array,
    cb: (err: grpc.ServiceError | null, res: Uint8Array) => void,
  ) => void;
  const streamFn = client["stream"] as unknown as (
    req: number,
  ) => grpc.ClientReadableStream<Uint8Array>;
  const ops: Ops = {
    echo: (payload) =>
      new Promise((resolve, reject) =>
        echo.call(client, payload, (err, res) => (err ? reject(err) : resolve(res))),
      ),
    async stream(n) {
      let got = 0;
      for await (const _ of streamFn.call(client, n)) got++;
      return got;
    },
  };
  return fromOps(
    name,
    ops,
    () => {
      client.close();
      server.stop();
      return Promise.resolve();
    },
    () => server.child.pid,
  );
}

export async function httpJson(name: string): Promise<Contender> {
  const server = await startServer("http-json");
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const request = (path: string, body?: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const req = http.request(
        {
          socketPath: server.socket,
          path,
          method: body === undefined ? "GET" : "POST",
          agent,
          headers: body === undefined ? {} : { "content-type": "application/json" },
        },
        (res) => {
          const parts: Buffer[] = [];
          res.on("data", (c: Buffer) => parts.push(c));
          res.on("end", () => resolve(Buffer.concat(parts).toString()));
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  const ops: Ops = {
    async echo(payload) {
      const res = await request(
        "/echo",
        JSON.stringify({ value: Buffer.from(payload).toString("base64") }),
      );
      return Buffer.from((JSON.parse(res) as { value: string }).value, "base64");
    },
    async stream(n) {
      let got = 0;
      const text = await new Promise<void>((resolve, reject) => {
        const req = http.request(
          { socketPath: server.socket, path: `/stream?n=${n}`, agent },
          (res) => {
            let rest = "";
            res.setEncoding("utf8");
            res.on("data", (c: string) => {
              const lines = (rest + c).split("\n");
              rest = lines.pop() ?? "";
              for (const line of lines) {
                JSON.parse(line);
                got++;
              }
            });
            res.on("end", () => resolve());
            res.on("error", reject);
          },
        );
        req.on("error", reject);
        req.end();
      });
      void text;
      return got;
    },
  };
  return fromOps(
    name,
    ops,
    () => {
      agent.destroy();
      server.stop();
      return Promise.resolve();
    },
    () => server.child.pid,
  );
}

export async function vscodeJsonRpc(name: string): Promise<Contender> {
  const child = spawn(process.execPath, [serversMain, "jsonrpc"], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const connection: MessageConnection = createMessageConnection(
    new StreamMessageReader(child.stdout),
    new StreamMessageWriter(child.stdin),
  );
  let items = 0;
  connection.onNotification("item", (p: { value: string }) => {
    Buffer.from(p.value, "base64");
    items++;
  });
  connection.listen();
  const ops: Ops = {
    async echo(payload) {
      const res = await connection.sendRequest<{ value: string }>("echo", {
        value: Buffer.from(payload).toString("base64"),
      });
      return Buffer.from(res.value, "base64");
    },
    async stream(n) {
      items = 0;
      await connection.sendRequest("stream", { n });
      return items;
    },
  };
  await ops.echo(new Uint8Array(1));
  return fromOps(
    name,
    ops,
    () => {
      connection.dispose();
      child.kill();
      return Promise.resolve();
    },
    () => child.pid,
  );
}

const ASK_TIMEOUT_MS = 300_000;
const CLOSE_TIMEOUT_MS = 10_000;

/**
 * A host process, Node (bench/node-host.ts) or Go (go/bench/goplugin/host),
 * with its plugin or server, driven over a JSON-lines pipe: one command per
 * line on its stdin, one answer per line on its stdout. The host measures
 * itself, so the harness's own heap and GC stay out of every figure.
 *
 *     {"op":"unary","n":1000,"size":16}     -> {"samples_us":[...]}
 *     {"op":"concurrent","ms":1000,"c":64}  -> {"ops_per_s":N}
 *     {"op":"stream","n":100000}            -> {"ops_per_s":N}
 *     {"op":"batches","n":6}                -> {"samples_us":[...]}   (Node)
 *     {"op":"cold","n":5}                   -> {"samples_us":[...]}   (Go)
 *     {"op":"rss","plugins":50}             -> {"rss_mb_per_plugin":X} (Go)
 *
 * With a placement, the host starts under `taskset -c` and its plugin (its
 * only child process) is re-pinned, every thread, once the host is ready.
 *
 * Each host has a process group of its own, so a terminal's Ctrl-C reaches
 * the harness alone: its exit ends every host's stdin, and each host then
 * closes its plugin (go-plugin plugins ignore SIGINT and would outlive a
 * host killed by it).
 */
export class HostProcess implements Contender {
  private readonly lines: AsyncIterator<string>;
  private constructor(
    readonly name: string,
    /** The host's language, for the labels of scenario 2. */
    readonly language: "Node" | "Go",
    private readonly child: ChildProcess,
    private readonly cleanup: () => void,
  ) {
    this.lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })[
      Symbol.asyncIterator
    ]();
  }

  static async spawn(
    name: string,
    language: "Node" | "Go",
    argv: readonly string[],
    placement?: Placement,
    cleanup: () => void = () => {},
  ): Promise<HostProcess> {
    const [cmd = "", ...rest] = placement === undefined ? argv : pinnedCommand(placement, argv);
    const child = spawn(cmd, rest, { stdio: ["pipe", "pipe", "inherit"], detached: true });
    const host = new HostProcess(name, language, child, cleanup);
    await host.ask({ op: "unary", n: 1, size: 1 }); // answered once the contender is up
    if (placement !== undefined && child.pid !== undefined) {
      checkPinned(child.pid, placement.hostCpu);
      const plugin = host.serverPid();
      if (plugin !== undefined) pin(plugin, placement.pluginCpu);
    }
    return host;
  }

  /** One Node contender of bench/node-host.ts, in a host process of its own. */
  static node(
    name: string,
    kind: NodeKind,
    args: readonly string[] = [],
    placement?: Placement,
  ): Promise<HostProcess> {
    return HostProcess.spawn(
      name,
      "Node",
      [process.execPath, nodeHostMain, kind, name, ...args],
      placement,
    );
  }

  /**
   * Sends one command and waits for its answer, at most ASK_TIMEOUT_MS (5
   * min: the longest command, 50 plugins started for the RSS row, takes
   * seconds); a host that does not answer is killed, so a stuck contender
   * fails the run instead of hanging it.
   */
  async ask(command: Record<string, unknown>): Promise<Record<string, unknown>> {
    this.child.stdin?.write(`${JSON.stringify(command)}\n`);
    let timer: NodeJS.Timeout | undefined;
    const silent = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.kill();
        reject(
          new Error(
            `${this.name}: no answer to ${String(command["op"])} in ${ASK_TIMEOUT_MS / 1000} s`,
          ),
        );
      }, ASK_TIMEOUT_MS);
    });
    const line = await Promise.race([this.lines.next(), silent]).finally(() => clearTimeout(timer));
    if (line.done === true) throw new Error(`${this.name}: the host process exited`);
    const res = JSON.parse(line.value) as Record<string, unknown>;
    if (typeof res["error"] === "string") throw new Error(`${this.name}: ${res["error"]}`);
    return res;
  }

  async unary(n: number, size: number): Promise<number[]> {
    return (await this.ask({ op: "unary", n, size }))["samples_us"] as number[];
  }
  async concurrent(ms: number, c: number): Promise<number> {
    return (await this.ask({ op: "concurrent", ms, c }))["ops_per_s"] as number;
  }
  async stream(n: number): Promise<number> {
    return (await this.ask({ op: "stream", n }))["ops_per_s"] as number;
  }
  async batches(n: number): Promise<number[]> {
    return (await this.ask({ op: "batches", n }))["samples_us"] as number[];
  }
  async cold(n: number): Promise<number[]> {
    return (await this.ask({ op: "cold", n }))["samples_us"] as number[];
  }
  async rss(plugins: number): Promise<number> {
    return (await this.ask({ op: "rss", plugins }))["rss_mb_per_plugin"] as number;
  }
  /** The host's own process. */
  hostPid(): number | undefined {
    return this.child.pid;
  }
  /** The plugin or server the host started (its only child between commands); none in process. */
  serverPid(): number | undefined {
    return this.child.pid === undefined ? undefined : childrenOf(this.child.pid)[0];
  }

  /**
   * What each side may use with `callers` concurrent callers: Node runs them
   * as async loops on one JavaScript thread, Go as goroutines on every CPU
   * the process may use (GOMAXPROCS).
   */
  cores(callers: number): string {
    const host = this.child.pid === undefined ? "?" : allowedCpus(this.child.pid);
    const how =
      this.language === "Node" ? `${callers} async loops, 1 JS thread` : `${callers} goroutines`;
    const plugin = this.serverPid();
    if (plugin === undefined) return `host Node: ${how}, CPUs ${host}; plugin in its thread`;
    const node = basename(readlinkSync(`/proc/${plugin}/exe`)) === "node";
    return (
      `host ${this.language}: ${how}, CPUs ${host}; ` +
      `plugin ${node ? "Node: 1 JS thread" : "Go: goroutines"}, CPUs ${allowedCpus(plugin)}`
    );
  }

  /**
   * Ends the host's stdin, so that it closes its plugin and exits; a host
   * still running CLOSE_TIMEOUT_MS (10 s) later is killed with its group.
   */
  async close(): Promise<void> {
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.stdin?.end();
      const timer = setTimeout(() => this.kill(), CLOSE_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
    this.cleanup();
  }

  /** SIGKILL to the host's process group (its own, see spawn): the host and its plugin. */
  private kill(): void {
    killGroup(this.child, "SIGKILL");
  }
}

/** The Go host with its Go plugin (or any go-plugin plugin), driven over a JSON-lines pipe. */
export type GoPluginHost = HostProcess;
export const GoPluginHost = {
  /** `autoMTLS`: go-plugin's AutoMTLS on (off by default, as in go-plugin). */
  start(
    name: string,
    hostBin: string,
    pluginBin: string,
    autoMTLS = false,
    placement?: Placement,
    cleanup?: () => void,
  ): Promise<HostProcess> {
    const argv = autoMTLS ? [hostBin, "-automtls", pluginBin] : [hostBin, pluginBin];
    return HostProcess.spawn(name, "Go", argv, placement, cleanup);
  },
};
