/**
 * A byte-level fuzzer for live servers: it throws random and mutated bytes
 * at a framed server, a network-mode HTTP/2 server and a go-plugin gRPC
 * endpoint, one connection per case, and checks after every batch that the
 * server still answers a real call. A case that the server neither answers
 * nor closes after the fuzzer has sent everything and half-closed is a hang;
 * a server that stops answering is a failure. It reports the server's memory
 * before and after (heap in this process, or the plugin's RSS).
 *
 * Mutations start from a corpus of real calls, recorded by a relay between a
 * real client and the server, so that most cases get past the first bytes.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { KV } from "../examples/kv/shared.js";
import { kvPlugin } from "../examples/kv/definition.js";
import { serve, type ServeHandle } from "../src/index.js";
import { PluginServer } from "../src/plugin/plugin-server.js";
import { createFramedTransport } from "../src/transport/framed/client.js";
import { FramedServer } from "../src/transport/framed/server.js";
import { Health } from "../src/gen/grpc/health/v1/health_pb.js";
import type { Transport } from "@connectrpc/connect";
import { seededRandom } from "../chaos/suite.js";

export interface FuzzResult {
  readonly target: string;
  readonly cases: number;
  /** Connections the server neither answered to the end nor closed in time. */
  readonly hangs: number;
  /** Batches after which a real call failed. */
  readonly deadChecks: number;
  /** What `memoryMb` measured before and after (the server's heap, or the plugin's RSS). */
  readonly memory: string;
  readonly memoryBeforeMb: number;
  /** After half the cases: growth from here to the end is judged by stillGrowing(). */
  readonly memoryMidMb: number;
  readonly memoryAfterMb: number;
  readonly elapsedMs: number;
  readonly failures: string[];
}

interface Target {
  readonly name: string;
  /** Where to connect. */
  readonly address: net.NetConnectOpts;
  /**
   * The server's memory, in MB: the heap after a collection when it runs in
   * this process, the plugin's resident set when it is a child process.
   */
  readonly memory: { readonly what: string; mb(): number };
  /** A real call, which must succeed after every batch. */
  alive(): Promise<void>;
  /** Makes real calls through `transportTo(relay)`, to record the corpus. */
  exercise(connect: () => net.Socket): Promise<void>;
  close(): Promise<void>;
}

/** Records the bytes real clients send, one buffer per connection. */
async function recordCorpus(target: Target): Promise<Buffer[]> {
  const connections: Buffer[][] = [];
  const relay = net.createServer((client) => {
    const chunks: Buffer[] = [];
    connections.push(chunks);
    const upstream = net.connect(target.address);
    client.on("data", (c: Buffer) => {
      chunks.push(c);
      upstream.write(c);
    });
    upstream.on("data", (c: Buffer) => client.write(c));
    const done = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on("close", done);
    upstream.on("close", done);
    client.on("error", () => {});
    upstream.on("error", () => {});
  });
  await new Promise<void>((r) => relay.listen(0, "127.0.0.1", r));
  const port = (relay.address() as net.AddressInfo).port;
  try {
    await target.exercise(() => net.connect(port, "127.0.0.1"));
  } finally {
    relay.close();
  }
  const corpus = connections.map((c) => Buffer.concat(c)).filter((b) => b.length > 0);
  if (corpus.length === 0) throw new Error(`no corpus recorded for ${target.name}`);
  return corpus;
}

/** One mutated or random input. */
function makeCase(corpus: Buffer[], random: () => number): Buffer {
  const pick = Math.floor(random() * 10);
  if (pick === 0) return randomBytes(Math.floor(random() * 512));
  const base = Buffer.from(corpus[Math.floor(random() * corpus.length)] as Buffer);
  let buf = base;
  const edits = 1 + Math.floor(random() * 8);
  for (let i = 0; i < edits; i++) {
    const at = Math.floor(random() * Math.max(1, buf.length));
    switch (Math.floor(random() * 6)) {
      case 0: // flip a bit
        if (buf.length > 0) buf[at] = (buf[at] as number) ^ (1 << Math.floor(random() * 8));
        break;
      case 1: // a random byte
        if (buf.length > 0) buf[at] = Math.floor(random() * 256);
        break;
      case 2: // cut here
        buf = buf.subarray(0, at);
        break;
      case 3: // insert random bytes
        buf = Buffer.concat([
          buf.subarray(0, at),
          randomBytes(1 + Math.floor(random() * 16)),
          buf.subarray(at),
        ]);
        break;
      case 4: // a boundary value over 4 bytes (lengths, ids)
        if (buf.length >= at + 4)
          buf.writeUInt32BE(
            [0, 1, 0x7fffffff, 0xffffffff, 0x10000000][Math.floor(random() * 5)] as number,
            at,
          );
        break;
      case 5: // repeat a slice
        buf = Buffer.concat([buf, buf.subarray(at, at + Math.floor(random() * 64))]);
        break;
    }
  }
  return buf;
}

/** Sends one case and half-closes; resolves "closed" or "hung". */
function sendCase(
  address: net.NetConnectOpts,
  bytes: Buffer,
  hangMs: number,
): Promise<"closed" | "hung"> {
  return new Promise((resolve) => {
    const socket = net.connect(address);
    socket.on("error", () => {});
    socket.on("data", () => {});
    const timer = setTimeout(() => {
      socket.destroy();
      resolve("hung");
    }, hangMs);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve("closed");
    });
    socket.once("connect", () => socket.end(bytes));
  });
}

export async function fuzzTarget(
  target: Target,
  options: {
    cases: number;
    seed: number;
    concurrency?: number;
    hangMs?: number;
    log?: (l: string) => void;
  },
): Promise<FuzzResult> {
  const log = options.log ?? (() => {});
  // Seeded, so that a failing case can be replayed (`--seed`).
  const random = seededRandom(options.seed);
  const corpus = await recordCorpus(target);
  const failures: string[] = [];
  let hangs = 0;
  let deadChecks = 0;
  const started = Date.now();
  const memoryBefore = target.memory.mb();
  let memoryMid = memoryBefore;
  const batch = 1_000;
  const concurrency = options.concurrency ?? 16;
  for (let done = 0; done < options.cases;) {
    const n = Math.min(batch, options.cases - done);
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < n) {
          next++;
          const bytes = makeCase(corpus, random);
          if ((await sendCase(target.address, bytes, options.hangMs ?? 10_000)) === "hung") {
            hangs++;
            if (failures.length < 5) failures.push(`hang on ${bytes.toString("hex")}`); // whole, to replay it
          }
        }
      }),
    );
    const firstHalf = done < options.cases / 2;
    done += n;
    if (firstHalf && done >= options.cases / 2) memoryMid = target.memory.mb();
    try {
      await target.alive();
    } catch (error) {
      deadChecks++;
      if (failures.length < 10)
        failures.push(`after ${done} cases a real call failed: ${String(error)}`);
      if (deadChecks >= 3) break;
    }
    if (done % 10_000 === 0 || done === options.cases)
      log(
        `${target.name}: ${done} cases, ${hangs} hangs, ${target.memory.what} ${target.memory.mb()} MB`,
      );
  }
  return {
    target: target.name,
    cases: options.cases,
    hangs,
    deadChecks,
    memory: target.memory.what,
    memoryBeforeMb: memoryBefore,
    memoryMidMb: memoryMid,
    memoryAfterMb: target.memory.mb(),
    elapsedMs: Date.now() - started,
    failures,
  };
}

/** Runs shorter than this are too short to judge memory by. */
export const MEMORY_JUDGED_FROM_CASES = 20_000;

/**
 * Why a run's memory looks unbounded, or undefined. A server warms up (pools,
 * caches, JIT) in the first half and then holds still; memory that grows in
 * the second half by more than 20% of its mid-run figure and 2 MB grows with
 * the cases. (The framed server's heap grew 11 -> 54 MB over 100,000 cases,
 * faster towards the end, while a few Watch calls were never cancelled.)
 */
export function stillGrowing(r: FuzzResult): string | undefined {
  if (r.cases < MEMORY_JUDGED_FROM_CASES) return undefined;
  const growth = r.memoryAfterMb - r.memoryMidMb;
  if (growth <= Math.max(2, 0.2 * r.memoryMidMb)) return undefined;
  return `${r.memory} still growing in the second half of the run: ${r.memoryMidMb} -> ${r.memoryAfterMb} MB (unbounded allocation?)`;
}

/** The heap of this process after a collection (run with --expose-gc), in MB. */
const IN_PROCESS_HEAP = {
  what: "server heap",
  mb: (): number => {
    globalThis.gc?.();
    return Math.round(process.memoryUsage().heapUsed / 1e5) / 10;
  },
};

/** A process's resident set (VmRSS), in MB. */
function residentMb(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
  return Math.round(kb / 100) / 10;
}

async function* toAsync<T>(items: T[]): AsyncGenerator<T> {
  for (const item of items) yield await Promise.resolve(item);
}

const kvCalls = async (transport: Transport): Promise<void> => {
  const kv = createClient(KV, transport);
  await kv.put({ key: "a", value: new Uint8Array([1, 2, 3]) });
  await kv.get({ key: "a" });
  // connect-es' stream iterables have no return(): leaving the loop does not
  // cancel the call, the signal does. (Without it, this Watch stayed open on
  // the HTTP/2 target for the whole run, and its unread events grew the heap.)
  const watching = new AbortController();
  for await (const _ of kv.watch({ key: "a" }, { signal: watching.signal })) break;
  watching.abort();
  // A client stream of one message, as an async iterable.
  await kv.putMany(toAsync([{ key: "b", value: new Uint8Array([4]) }]));
};

/** A framed server in this process, on a unix socket. */
export async function framedTarget(): Promise<Target> {
  const dir = mkdtempSync(join(tmpdir(), "cp-fuzz-"));
  const path = join(dir, "f.sock");
  const plugin = new PluginServer(kvPlugin());
  const server = await FramedServer.listen(plugin.routes, { network: "unix", path });
  const client = createFramedTransport({ network: "unix", address: path });
  return {
    name: "framed server",
    address: { path },
    memory: IN_PROCESS_HEAP,
    alive: () =>
      createClient(KV, client.transport)
        .get({ key: "a" })
        .then(() => {}),
    exercise: async (connect) => {
      // The framed client dials by address; record through a unix relay.
      const relayDir = mkdtempSync(join(tmpdir(), "cp-fuzz-r-"));
      const relayPath = join(relayDir, "r.sock");
      const relay = net.createServer((s) => s.pipe(connect()).pipe(s));
      await new Promise<void>((r) => relay.listen(relayPath, r));
      const t = createFramedTransport({ network: "unix", address: relayPath });
      try {
        await kvCalls(t.transport);
      } finally {
        t.close();
        await new Promise<void>((r) => relay.close(() => r()));
        rmSync(relayDir, { recursive: true, force: true });
      }
    },
    close: async () => {
      client.close();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A network-mode plugin (HTTP/2 and HTTP/1.1 on loopback TCP) in this process. */
export async function http2Target(): Promise<Target> {
  const handle: ServeHandle = await serve(kvPlugin(), {
    listen: "127.0.0.1:0",
    exitProcess: false,
  });
  const url = new URL(handle.url);
  const address = { host: "127.0.0.1", port: Number(url.port) };
  const client = createConnectTransport({ baseUrl: handle.url, httpVersion: "2" });
  return {
    name: "HTTP/2 network server",
    address,
    memory: IN_PROCESS_HEAP,
    alive: () =>
      createClient(KV, client)
        .get({ key: "a" })
        .then(() => {}),
    exercise: async (connect) => {
      for (const httpVersion of ["2", "1.1"] as const) {
        const t = createConnectTransport({
          baseUrl: "http://127.0.0.1",
          httpVersion,
          nodeOptions: { createConnection: () => connect() } as never,
        });
        const kv = createClient(KV, t);
        await kv.put({ key: "a", value: new Uint8Array([1]) });
        await kv.get({ key: "a" });
      }
      await kvCalls(
        createGrpcTransport({
          baseUrl: "http://127.0.0.1",
          nodeOptions: { createConnection: () => connect() },
        }),
      );
    },
    close: () => handle.shutdown("fuzzing done"),
  };
}

/** The KV example plugin launched as a go-plugin host would (gRPC on a unix socket). */
export async function goPluginTarget(): Promise<Target> {
  const main = fileURLToPath(new URL("../examples/kv/plugin.js", import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), "cp-fuzz-g-"));
  const child: ChildProcess = spawn(process.execPath, [main], {
    env: {
      ...process.env,
      KV_PLUGIN: "hello",
      PLUGIN_PROTOCOL_VERSIONS: "1",
      PLUGIN_UNIX_SOCKET_DIR: dir,
    },
    stdio: ["pipe", "pipe", "ignore"],
  });
  const line = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout?.on("data", (c: Buffer) => {
      out += c.toString();
      if (out.includes("\n")) resolve(out.slice(0, out.indexOf("\n")));
    });
    child.once("exit", (code) => reject(new Error(`go-plugin target exited with ${code}`)));
  });
  const path = line.split("|")[3] as string;
  const grpc = (connect: () => net.Socket): Transport =>
    createGrpcTransport({
      baseUrl: "http://localhost",
      nodeOptions: { createConnection: () => connect() },
    });
  const client = grpc(() => net.connect(path));
  return {
    name: "go-plugin gRPC endpoint",
    address: { path },
    memory: { what: "plugin RSS", mb: () => residentMb(child.pid as number) },
    alive: async () => {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error("the plugin process died");
      await createClient(Health, client).check({ service: "plugin" });
      await createClient(KV, client).get({ key: "a" });
    },
    exercise: async (connect) => {
      await createClient(Health, grpc(connect)).check({ service: "plugin" });
      await kvCalls(grpc(connect));
    },
    close: async () => {
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once("exit", r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const TARGETS = {
  framed: framedTarget,
  http2: http2Target,
  goplugin: goPluginTarget,
} as const;
