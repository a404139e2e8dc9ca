/**
 * Host CPU per HTTP/2 unary call, for the client side alone:
 * `node dist/bench/h2-client-cpu.js [ROUNDS] [CALLS] [ROOT...]`.
 *
 * Each contender runs in a child process of its own (its own heap and GC)
 * that starts its server, warms up, then measures its own CPU
 * (process.cpuUsage, user + system, GC included) over CALLS sequential
 * calls and over CALLS calls made by 64 concurrent callers. Rounds run the
 * contenders interleaved, in a shuffled order, so that a loaded machine
 * shifts all of them alike. CPU time, unlike wall-clock latency, hardly
 * depends on what else the machine runs.
 *
 * Contenders: the HTTP/2 floor's client (bench/contenders.ts rawHttp2:
 * node:http2 with gRPC framing, no Connect, no protobuf) against the Go
 * go-plugin bench plugin and against the Node bench plugin in network mode;
 * the same client speaking the Connect protocol to the Node plugin
 * (`floor-node-connect`: the message as the body, the status in the
 * response's headers, no trailers frame), so that what the gRPC answer's
 * shape costs node:http2 shows apart from what our code costs;
 * GoPluginClient against the Go plugin; remote() over Connect and over gRPC
 * against the Node plugin. With several ROOTs (dist folders, e.g. the
 * build of main beside this one), each connect-plugin contender runs once
 * per root, so two builds compare inside one run.
 *
 * Set H2CPU_STRACE=1 to count the syscalls of each measured phase instead
 * (`strace -f -c -p`; needs strace), H2CPU_ONLY=a,b to run some contenders.
 * H2CPU_PROFILE=DIR writes a CPU profile of each measured phase of each
 * child (V8's sampling profiler through node:inspector, every 100 µs,
 * started after the warm-up) as DIR/KIND-ROUND-sequential.cpuprofile and
 * ...-64.cpuprofile; `bench/cpuprofile.ts --kinds` reads them.
 *
 * `node dist/bench/h2-client-cpu.js --blocks BLOCKS CALLS ROOT_A ROOT_B`
 * compares two builds inside one child process per client kind instead:
 * it opens the client of each build (each with its own server) and
 * alternates them block by block (CALLS sequential calls, then CALLS
 * calls from 64 callers, A then B, the order swapped every block), reading
 * the process's CPU and the sequential p50 of each block. Neighbouring
 * blocks share the machine's load, which moves too much between child
 * processes on a shared machine; the figure is the median over the blocks
 * of B's over A's. (Both builds share one heap: a GC one block's garbage
 * set off may land in the other's, alike both ways.)
 *
 * Besides CPU it reports the p50 of the sequential calls' wall-clock time,
 * which, unlike CPU, moves with the machine's load: compare it only between
 * contenders of the same round.
 */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { buildGoContenders } from "./go-build.js";
import { firstMatch } from "./child-output.js";
import { rawClient, rawConnectClient, type Echo } from "./h2-raw-clients.js";
import { shuffled } from "./stats.js";

const here = fileURLToPath(import.meta.url);
const ownRoot = resolve(here, "../..");

interface Result {
  readonly seqUs: number;
  readonly concUs: number;
  /** p50 of the sequential calls' wall-clock time, µs. */
  readonly p50Us: number;
  readonly strace?: string;
}

// ---------------------------------------------------------------- child side

async function child(kind: string, root: string, calls: number, goPlugin: string): Promise<void> {
  const { echo, close } = await open(kind, root, goPlugin);
  const value = new Uint8Array(16).fill(7);
  const times = new Float64Array(calls);
  let timed = false;
  const seq = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await echo(value);
      if (timed) times[i] = performance.now() - t0;
    }
  };
  const conc = async (n: number): Promise<void> => {
    let left = n;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (left-- > 0) await echo(value);
      }),
    );
  };
  await seq(Math.min(2_000, calls));
  await conc(Math.min(2_000, calls));
  const profileDir = process.env.H2CPU_PROFILE;
  const measure = async (
    run: (n: number) => Promise<void>,
    phase: string,
  ): Promise<[number, string?]> => {
    const tracer = process.env.H2CPU_STRACE === "1" ? await strace() : undefined;
    const profiler = profileDir === undefined ? undefined : await profile();
    const before = process.cpuUsage();
    await run(calls);
    const used = process.cpuUsage(before);
    if (profiler !== undefined) {
      const file = join(profileDir as string, `${kind}-${process.env.H2CPU_TAG ?? "0"}-${phase}`);
      writeFileSync(`${file}.cpuprofile`, await profiler());
    }
    const counts = tracer === undefined ? undefined : await tracer();
    return [(used.user + used.system) / calls, counts];
  };
  timed = true;
  const [seqUs, seqTrace] = await measure(seq, "sequential");
  timed = false;
  const [concUs, concTrace] = await measure(conc, "64");
  await close();
  const sorted = [...times].sort((a, b) => a - b);
  const result: Result = {
    seqUs,
    concUs,
    p50Us: (sorted[sorted.length >> 1] ?? NaN) * 1000,
    ...(seqTrace !== undefined && {
      strace: `sequential:\n${seqTrace}\n64 callers:\n${concTrace}`,
    }),
  };
  process.send?.(result);
}

/** Starts V8's sampling profiler (every 100 µs); the returned function stops it and gives the profile's JSON. */
async function profile(): Promise<() => Promise<string>> {
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object): Promise<unknown> =>
    new Promise((resolvePost, reject) =>
      session.post(method, params, (error, result) =>
        error === null ? resolvePost(result) : reject(error),
      ),
    );
  await post("Profiler.enable");
  await post("Profiler.setSamplingInterval", { interval: 100 });
  await post("Profiler.start");
  return async () => {
    const { profile: p } = (await post("Profiler.stop")) as { profile: unknown };
    session.disconnect();
    return JSON.stringify(p);
  };
}

/** strace -f -c on this process; the returned function stops it and gives its table. */
async function strace(): Promise<() => Promise<string>> {
  const p = spawn("strace", ["-f", "-c", "-p", String(process.pid)], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let out = "";
  p.stderr.on("data", (c: Buffer) => (out += c.toString()));
  // strace announces each thread it attaches to.
  await new Promise((r) => setTimeout(r, 500));
  return () =>
    new Promise((resolveOut) => {
      p.once("exit", () => resolveOut(out));
      p.kill("SIGINT");
    });
}

interface ClientModule {
  readonly GoPluginClient: new (options: unknown) => {
    start(): Promise<void>;
    dispense(name: string): { echo(m: { value: Uint8Array }): Promise<unknown> };
    close(): Promise<void>;
  };
  readonly PluginClient: new (options: unknown) => {
    start(): Promise<void>;
    dispense(name: string): { echo(m: { value: Uint8Array }): Promise<unknown> };
    close(): Promise<void>;
  };
  readonly remote: (url: string, options: unknown) => unknown;
  readonly silentLogger: unknown;
}

async function open(
  kind: string,
  root: string,
  goPlugin: string,
): Promise<{ echo: Echo; close: () => Promise<void> }> {
  const lib = (await import(pathToFileURL(join(root, "src/index.js")).href)) as ClientModule;
  const service = (await import(pathToFileURL(join(root, "bench/service.js")).href)) as {
    Bench: unknown;
    benchHandshake: unknown;
  };
  if (kind === "goplugin") {
    const client = new lib.GoPluginClient({
      handshake: service.benchHandshake,
      plugins: { bench: service.Bench },
      command: goPlugin,
      logger: lib.silentLogger,
    });
    await client.start();
    const bench = client.dispense("bench");
    return { echo: (value) => bench.echo({ value }), close: () => client.close() };
  }
  if (kind === "floor-go") {
    const plugin = await startGoPlugin(goPlugin);
    return floorOver(() => net.connect(plugin.address), plugin.child);
  }
  const plugin = await startNodePlugin();
  if (kind === "floor-node" || kind === "floor-node-connect") {
    return floorOver(
      () => net.connect(plugin.port, "127.0.0.1"),
      plugin.child,
      kind === "floor-node-connect",
    );
  }
  const protocol = kind === "remote-grpc" ? "grpc" : "connect";
  const client = new lib.PluginClient({
    handshake: service.benchHandshake,
    plugins: { bench: service.Bench },
    source: lib.remote(plugin.url, { protocol }),
    logger: lib.silentLogger,
  });
  await client.start();
  const bench = client.dispense("bench");
  return {
    echo: (value) => bench.echo({ value }),
    close: async () => {
      await client.close();
      plugin.child.kill();
    },
  };
}

function floorOver(
  connect: () => net.Socket,
  server: ChildProcess,
  connectProtocol = false,
): { echo: Echo; close: () => Promise<void> } {
  const floor = connectProtocol ? rawConnectClient(connect) : rawClient(connect);
  return {
    echo: floor.echo,
    close: () => {
      floor.close();
      server.kill();
      return Promise.resolve();
    },
  };
}

async function startGoPlugin(command: string): Promise<{ child: ChildProcess; address: string }> {
  const child = spawn(command, [], {
    env: { ...process.env, BENCH_PLUGIN: "bench", PLUGIN_PROTOCOL_VERSIONS: "1" },
    stdio: ["ignore", "pipe", "ignore"],
  });
  const address = await firstMatch(child, "stdout", /^1\|1\|unix\|([^|]+)\|grpc/m);
  return { child, address };
}

async function startNodePlugin(): Promise<{ child: ChildProcess; url: string; port: number }> {
  const child = spawn(process.execPath, [join(ownRoot, "bench/plugin.js")], {
    env: { ...process.env, CONNECT_PLUGIN_LISTEN: "127.0.0.1:0" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const url = await firstMatch(child, "stderr", /"url":"([^"]+)"/);
  return { child, url, port: Number(new URL(url).port) };
}

// --------------------------------------------------------------- parent side

function runChild(
  kind: string,
  root: string,
  calls: number,
  goPlugin: string,
  tag: string,
): Promise<Result> {
  return new Promise((resolveResult, reject) => {
    const p = spawn(process.execPath, [here, "--child", kind, root, String(calls), goPlugin], {
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      env: { ...process.env, H2CPU_TAG: tag },
    });
    let result: Result | undefined;
    p.on("message", (m) => (result = m as Result));
    p.once("exit", (code) =>
      result !== undefined ? resolveResult(result) : reject(new Error(`${kind}: exit ${code}`)),
    );
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 5);
  const calls = Number(process.argv[3] ?? 5_000);
  const roots = process.argv.length > 4 ? process.argv.slice(4).map((r) => resolve(r)) : [ownRoot];
  const dir = mkdtempSync(join(tmpdir(), "h2cpu-"));
  const { plugin: goPlugin } = await buildGoContenders();
  const only = process.env.H2CPU_ONLY?.split(",");
  const contenders: { name: string; kind: string; root: string; letter: string }[] = [
    { name: "floor client -> Go plugin", kind: "floor-go", root: ownRoot, letter: "floor" },
    { name: "floor client -> Node plugin", kind: "floor-node", root: ownRoot, letter: "floor" },
    {
      name: "floor Connect client -> Node plugin",
      kind: "floor-node-connect",
      root: ownRoot,
      letter: "floor",
    },
  ];
  const letters: string[] = [];
  for (const [i, root] of roots.entries()) {
    const letter = String.fromCharCode(65 + i);
    letters.push(letter);
    const tag = roots.length > 1 ? ` [${letter}: ${root}]` : "";
    contenders.push(
      { name: `GoPluginClient -> Go plugin${tag}`, kind: "goplugin", root, letter },
      { name: `remote Connect -> Node plugin${tag}`, kind: "remote-connect", root, letter },
      { name: `remote gRPC -> Node plugin${tag}`, kind: "remote-grpc", root, letter },
    );
  }
  const chosen = contenders.filter((c) => only === undefined || only.includes(c.kind));
  const results = new Map<string, Result[]>(chosen.map((c) => [c.name, []]));
  for (let r = 0; r < rounds; r++) {
    for (const c of shuffled(chosen)) {
      const res = await runChild(c.kind, c.root, calls, goPlugin, `${c.letter}${r + 1}`);
      results.get(c.name)?.push(res);
      if (res.strace !== undefined) console.log(`--- ${c.name}\n${res.strace}`);
    }
    process.stderr.write(`round ${r + 1}/${rounds} done\n`);
  }
  console.log(
    `host CPU µs per call (user+sys), ${rounds} rounds x ${calls} calls; median (min-max)`,
  );
  console.log(`load average: ${execFileSync("cat", ["/proc/loadavg"]).toString().trim()}`);
  const fmt = (xs: number[], digits = 1): string =>
    `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)})`;
  for (const [name, rs] of results) {
    console.log(
      `${name.padEnd(60)} sequential ${fmt(rs.map((x) => x.seqUs)).padEnd(22)} 64 callers ${fmt(rs.map((x) => x.concUs)).padEnd(22)} p50 µs ${fmt(rs.map((x) => x.p50Us))}`,
    );
  }
  if (letters.length > 1) {
    // Per round, each later build's figure over the first's (same round, same load).
    console.log(`per-round ratios to A, median (min-max):`);
    for (const kind of ["goplugin", "remote-connect", "remote-grpc"]) {
      const of = (letter: string): Result[] =>
        results.get(chosen.find((c) => c.kind === kind && c.letter === letter)?.name ?? "") ?? [];
      const a = of("A");
      for (const letter of letters.slice(1)) {
        const b = of(letter);
        if (a.length === 0 || b.length !== a.length) continue;
        const ratio = (pick: (x: Result) => number): string =>
          fmt(
            b.map((x, i) => pick(x) / pick(a[i] as Result)),
            3,
          );
        console.log(
          `${`${kind} ${letter}/A`.padEnd(28)} sequential ${ratio((x) => x.seqUs).padEnd(22)} 64 callers ${ratio((x) => x.concUs).padEnd(22)} p50 ${ratio((x) => x.p50Us)}`,
        );
      }
    }
  }
  rmSync(dir, { recursive: true, force: true });
}

/** One block of `calls` calls: CPU µs per call (sequential, 64 callers) and the sequential p50, µs. */
async function block(echo: Echo, calls: number): Promise<[number, number, number]> {
  const value = new Uint8Array(16).fill(7);
  const times = new Float64Array(calls);
  let before = process.cpuUsage();
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    await echo(value);
    times[i] = performance.now() - t0;
  }
  let used = process.cpuUsage(before);
  const seq = (used.user + used.system) / calls;
  before = process.cpuUsage();
  let left = calls;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (left-- > 0) await echo(value);
    }),
  );
  used = process.cpuUsage(before);
  times.sort();
  return [seq, (used.user + used.system) / calls, (times[calls >> 1] ?? NaN) * 1000];
}

/** The --blocks child: both builds' clients of `kind` in this process, alternated by block. */
async function pairChild(
  kind: string,
  roots: readonly string[],
  blocks: number,
  calls: number,
  goPlugin: string,
): Promise<void> {
  const clients = [];
  for (const root of roots) clients.push(await open(kind, root, goPlugin));
  for (const c of clients) for (let i = 0; i < 3; i++) await block(c.echo, calls);
  const figures: [number, number, number][][] = clients.map(() => []);
  for (let b = 0; b < blocks; b++) {
    const order = b % 2 === 0 ? [0, 1] : [1, 0];
    for (const i of order)
      figures[i]?.push(await block((clients[i] as { echo: Echo }).echo, calls));
  }
  for (const c of clients) await c.close();
  process.send?.(figures);
}

async function pairMain(): Promise<void> {
  const [, , , blocksArg, callsArg, rootA, rootB] = process.argv;
  const blocks = Number(blocksArg);
  const calls = Number(callsArg);
  const roots = [resolve(rootA as string), resolve(rootB as string)];
  const { plugin: goPlugin } = await buildGoContenders();
  const kinds = process.env.H2CPU_ONLY?.split(",") ?? ["goplugin", "remote-connect", "remote-grpc"];
  const load0 = execFileSync("cat", ["/proc/loadavg"]).toString().trim();
  const fmt = (xs: number[], digits: number): string =>
    `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)})`;
  const lines: string[] = [];
  for (const kind of kinds) {
    const figures = await new Promise<[number, number, number][][]>((resolveFigures, reject) => {
      const p = spawn(
        process.execPath,
        [here, "--pair-child", kind, String(blocks), String(calls), goPlugin, ...roots],
        { stdio: ["ignore", "inherit", "inherit", "ipc"] },
      );
      let got: [number, number, number][][] | undefined;
      p.on("message", (m) => (got = m as [number, number, number][][]));
      p.once("exit", (code) =>
        got !== undefined ? resolveFigures(got) : reject(new Error(`${kind}: exit ${code}`)),
      );
    });
    const [a, b] = figures as [[number, number, number][], [number, number, number][]];
    const col = (xs: [number, number, number][], k: number): number[] =>
      xs.map((x) => x[k] as number);
    const ratio = (k: number): number[] =>
      b.map((x, i) => (x[k] as number) / (a[i]?.[k] as number));
    // Over all blocks: CPU summed (a GC or a busy neighbour weighs once, not per block).
    const total = (k: number): string =>
      (col(b, k).reduce((x, y) => x + y, 0) / col(a, k).reduce((x, y) => x + y, 0)).toFixed(3);
    lines.push(
      `${kind.padEnd(16)} seq CPU A ${fmt(col(a, 0), 1)} B ${fmt(col(b, 0), 1)} B/A ${fmt(ratio(0), 3)} all blocks ${total(0)}`,
      `${"".padEnd(16)} 64c CPU A ${fmt(col(a, 1), 1)} B ${fmt(col(b, 1), 1)} B/A ${fmt(ratio(1), 3)} all blocks ${total(1)}`,
      `${"".padEnd(16)} seq p50 A ${fmt(col(a, 2), 1)} B ${fmt(col(b, 2), 1)} B/A ${fmt(ratio(2), 3)}`,
    );
  }
  console.log(
    `${blocks} blocks x ${calls} calls per build, alternated in one process per client; µs, median (min-max) over blocks`,
  );
  console.log(`A ${roots[0]}\nB ${roots[1]}`);
  console.log(
    `load average before: ${load0}; after: ${execFileSync("cat", ["/proc/loadavg"]).toString().trim()}`,
  );
  for (const line of lines) console.log(line);
}

if (process.argv[2] === "--blocks") {
  await pairMain();
} else if (process.argv[2] === "--pair-child") {
  const [, , , kind, blocks, calls, goPlugin, ...roots] = process.argv;
  await pairChild(kind as string, roots, Number(blocks), Number(calls), goPlugin as string);
} else if (process.argv[2] === "--child") {
  const [, , , kind, root, calls, goPlugin] = process.argv;
  await child(kind as string, root as string, Number(calls), goPlugin as string);
} else {
  await main();
}
