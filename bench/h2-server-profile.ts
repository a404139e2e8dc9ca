/**
 * Where the plugin's CPU per HTTP/2 unary call goes, next to the HTTP/2
 * floor's server (servers.ts "h2"):
 *
 *   node dist/bench/h2-server-profile.js [--calls 10000] [--warmup 3000]
 *     [--build LABEL=DIR ...] [--top 30] [--keep DIR] [--remote-headers]
 *     [--callers 1]
 *
 * Each server runs in its own process with profile-preload.js, which
 * profiles the window between two SIGUSR2s: after `warmup` sequential
 * 16-byte echo calls from one bare node:http2 client (this process), the
 * profiler starts, `calls` more calls run (sequential, or from `--callers`
 * concurrent callers), and it stops. The
 * floor serves gRPC; the bench plugin (launched as a go-plugin host
 * launches it: h2c on a unix socket) serves Connect (`application/proto`)
 * and gRPC. Prints, per server and protocol, busy µs per call (samples not
 * idle; on a loaded machine time off the CPU counts too), GC counts and
 * bytes allocated per call, then the self time per call of each function
 * and file against the floor's (the difference is what our server does
 * per call that the floor does not), and our heaviest inclusive frames.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import * as http2 from "node:http2";
import * as net from "node:net";
import { loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { firstMatch } from "./child-output.js";
import { byFile, cpuCosts, heapCosts, type FunctionCost } from "./cpuprofile.js";

const args = process.argv.slice(2);
const option = (name: string, fallback: string): string => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? (args[at + 1] ?? fallback) : fallback;
};
const calls = Number(option("calls", "10000"));
const warmup = Number(option("warmup", "3000"));
const top = Number(option("top", "30"));
const keep = option("keep", "");
/** `--callers N`: the profiled calls come from N concurrent callers on the one session (default 1: sequential). */
const callers = Number(option("callers", "1"));
/** `--remote-headers`: the headers remote()'s client adds (user-agent, the accepted encodings). */
const remoteHeaders = args.includes("--remote-headers");
const builds = args
  .flatMap((a, i) => (a === "--build" ? [args[i + 1] ?? ""] : []))
  .map((b) => ({ label: b.slice(0, b.indexOf("=")), dir: resolve(b.slice(b.indexOf("=") + 1)) }));
const here = dirname(fileURLToPath(import.meta.url));
const preload = pathToFileURL(join(here, "profile-preload.js")).href;
const dir = keep !== "" ? keep : mkdtempSync(join(tmpdir(), "h2prof-"));
mkdirSync(dir, { recursive: true });

type Protocol = "connect" | "grpc";
interface Server {
  readonly name: string;
  readonly child: ChildProcess;
  readonly protocols: readonly Protocol[];
  connect(): net.Socket;
}

function spawnProfiled(main: string, env: NodeJS.ProcessEnv, name: string): ChildProcess {
  return spawn(process.execPath, ["--import", preload, main], {
    env: { ...process.env, ...env, PROFILE_OUT: join(dir, name) },
    stdio: ["pipe", "pipe", "pipe"],
  });
}

async function floor(): Promise<Server> {
  const socket = join(dir, "floor.sock");
  const child = spawn(
    process.execPath,
    ["--import", preload, join(here, "servers.js"), "h2", socket],
    {
      env: { ...process.env, PROFILE_OUT: join(dir, "floor") },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  await firstMatch(child, "stdout", /(ready)/);
  return { name: "floor", child, protocols: ["grpc"], connect: () => net.connect(socket) };
}

async function launched(label: string, dist: string): Promise<Server> {
  const child = spawnProfiled(
    join(dist, "bench/plugin.js"),
    { BENCH_PLUGIN: "bench", PLUGIN_PROTOCOL_VERSIONS: "1" },
    label,
  );
  child.stderr?.resume();
  const socket = await firstMatch(child, "stdout", /^\d+\|\d+\|unix\|([^|]+)\|/m);
  return { name: label, child, protocols: ["connect", "grpc"], connect: () => net.connect(socket) };
}

const PATH = "/bench.v1.BenchService/Echo";
const message = Buffer.concat([Buffer.from([0x0a, 16]), Buffer.alloc(16, 7)]);
const grpcBody = Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message]);

function call(session: http2.ClientHttp2Session, protocol: Protocol): Promise<void> {
  return new Promise((done, reject) => {
    const extra = !remoteHeaders
      ? {}
      : {
          "user-agent": "connect-es/2.1.2",
          [protocol === "grpc" ? "grpc-accept-encoding" : "accept-encoding"]: "gzip,br",
        };
    const stream = session.request(
      protocol === "grpc"
        ? {
            ":method": "POST",
            ":path": PATH,
            "content-type": "application/grpc",
            te: "trailers",
            ...extra,
          }
        : {
            ":method": "POST",
            ":path": PATH,
            "content-type": "application/proto",
            "connect-protocol-version": "1",
            ...extra,
          },
    );
    let status = "";
    stream.on("response", (h) => (status = String(h[":status"])));
    stream.resume();
    stream.once("error", reject);
    stream.once("close", () => (status === "200" ? done() : reject(new Error(`status ${status}`))));
    stream.end(protocol === "grpc" ? grpcBody : message);
  });
}

async function profile(server: Server, protocol: Protocol): Promise<string> {
  const session = http2.connect("http://localhost", { createConnection: () => server.connect() });
  session.on("error", () => {});
  for (let i = 0; i < warmup; i++) await call(session, protocol);
  const pid = server.child.pid as number;
  const out = join(dir, server.name);
  rmSync(`${out}.done`, { force: true });
  process.kill(pid, "SIGUSR2");
  await new Promise((r) => setTimeout(r, 300));
  let next = 0;
  const caller = async (): Promise<void> => {
    while (next++ < calls) await call(session, protocol);
  };
  await Promise.all(Array.from({ length: callers }, caller));
  process.kill(pid, "SIGUSR2");
  while (!existsSync(`${out}.done`)) await new Promise((r) => setTimeout(r, 50));
  session.destroy();
  // The preload writes to one name per process: keep each protocol's.
  for (const ext of ["cpuprofile", "heapprofile", "gc.json"]) {
    renameSync(`${out}.${ext}`, `${out}-${protocol}.${ext}`);
  }
  return `${out}-${protocol}`;
}

interface Profiled {
  readonly name: string;
  readonly cpu: Map<string, FunctionCost>;
  readonly busy: number;
  readonly heap: Map<string, FunctionCost>;
  readonly gc: Record<string, { count: number; ms: number }>;
}

function read(name: string, base: string): Profiled {
  const { functions, busy } = cpuCosts(`${base}.cpuprofile`, calls);
  const heap = heapCosts(`${base}.heapprofile`, calls);
  const gc = JSON.parse(readFileSync(`${base}.gc.json`, "utf8")) as Profiled["gc"];
  return { name, cpu: functions, busy, heap, gc };
}

const f1 = (n: number): string => n.toFixed(1);

function report(floorP: Profiled, ours: Profiled): void {
  const bytes = (p: Profiled): number => [...p.heap.values()].reduce((s, c) => s + c.self, 0);
  const gcText = (p: Profiled): string =>
    Object.entries(p.gc)
      .map(([k, v]) => `${k} ${v.count} (${f1(v.ms)} ms)`)
      .join(", ");
  console.log(`\n### ${ours.name} against ${floorP.name}`);
  console.log(
    `busy µs/call: ${f1(ours.busy)} vs ${f1(floorP.busy)}; bytes/call ${Math.round(bytes(ours))} vs ${Math.round(bytes(floorP))}; GC ${gcText(ours)} vs ${gcText(floorP)}`,
  );
  console.log("\n| file | ours µs/call | floor µs/call | difference |\n| --- | --: | --: | --: |");
  const fo = byFile(ours.cpu);
  const ff = byFile(floorP.cpu);
  const files = [...new Set([...fo.keys(), ...ff.keys()])]
    .map((f) => ({ f, o: fo.get(f) ?? 0, l: ff.get(f) ?? 0 }))
    .sort((a, b) => b.o - b.l - (a.o - a.l))
    .slice(0, top);
  for (const { f, o, l } of files) console.log(`| ${f} | ${f1(o)} | ${f1(l)} | ${f1(o - l)} |`);
  console.log("\n| function (self) | ours | floor | difference |\n| --- | --: | --: | --: |");
  const keys = [...new Set([...ours.cpu.keys(), ...floorP.cpu.keys()])]
    .map((k) => ({ k, o: ours.cpu.get(k)?.self ?? 0, l: floorP.cpu.get(k)?.self ?? 0 }))
    .sort((a, b) => b.o - b.l - (a.o - a.l))
    .slice(0, top);
  for (const { k, o, l } of keys) console.log(`| ${k} | ${f1(o)} | ${f1(l)} | ${f1(o - l)} |`);
  console.log("\n| our frame (inclusive) | µs/call |\n| --- | --: |");
  const incl = [...ours.cpu.values()]
    .filter(
      (c) =>
        c.file.startsWith("src/") ||
        c.file.startsWith("@connectrpc") ||
        c.file.startsWith("@bufbuild"),
    )
    .sort((a, b) => b.total - a.total)
    .slice(0, top);
  for (const c of incl) console.log(`| ${c.key} | ${f1(c.total)} |`);
  console.log("\n| allocating function | bytes/call ours | floor |\n| --- | --: | --: |");
  const heapKeys = [...new Set([...ours.heap.keys(), ...floorP.heap.keys()])]
    .map((k) => ({ k, o: ours.heap.get(k)?.self ?? 0, l: floorP.heap.get(k)?.self ?? 0 }))
    .sort((a, b) => b.o - b.l - (a.o - a.l))
    .slice(0, top);
  for (const { k, o, l } of heapKeys) console.log(`| ${k} | ${Math.round(o)} | ${Math.round(l)} |`);
}

const servers: Server[] = [await floor(), await launched("this", resolve(here, ".."))];
for (const { label, dir: d } of builds) servers.push(await launched(label, join(d, "dist")));
console.log(
  `load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(
      " ",
    )}, Node ${process.version}, ${warmup} warm-up then ${calls} profiled calls from ${callers} caller(s) per case, profiles in ${dir}`,
);
const floorServer = servers[0] as Server;
const floorP = read("floor gRPC", await profile(floorServer, "grpc"));
for (const s of servers.slice(1)) {
  for (const p of s.protocols) {
    const base = await profile(s, p);
    report(floorP, read(`${s.name} ${p}`, base));
  }
}
for (const s of servers) s.child.kill();
if (keep === "") rmSync(dir, { recursive: true, force: true });
