/**
 * Host CPU per unary call before and after one server stream in the same
 * process: `node dist/bench/h2-after-stream.js [ROUNDS] [ROOT...]`.
 *
 * Each figure comes from a fresh child that calls the Node bench plugin
 * (network mode, loopback TCP) with `remote()` over Connect: 5,000 calls
 * to warm up, 2,000 measured ("before"), one server stream of 100,000
 * messages, then two more batches of 2,000 ("after", "later"). A host
 * whose streams have two hidden classes pays for the stream in the
 * batches after it (docs/http2-client.md, 2026-12-02). With several ROOTs
 * (dist folders) the builds run interleaved, in a shuffled order.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { firstMatch } from "./child-output.js";
import { median, round, shuffled } from "./stats.js";

interface Result {
  readonly before: number;
  readonly after: number;
  readonly later: number;
}

interface Lib {
  readonly PluginClient: new (options: unknown) => {
    start(): Promise<void>;
    dispense(name: string): {
      echo(m: { value: Uint8Array }): Promise<unknown>;
      stream(m: { value: bigint }): AsyncIterable<unknown>;
    };
    close(): Promise<void>;
  };
  readonly remote: (url: string, options: unknown) => unknown;
  readonly silentLogger: unknown;
}

async function child(root: string): Promise<void> {
  const lib = (await import(pathToFileURL(join(root, "src/index.js")).href)) as Lib;
  const service = (await import(pathToFileURL(join(root, "bench/service.js")).href)) as {
    Bench: unknown;
    benchHandshake: unknown;
  };
  const plugin: ChildProcess = spawn(process.execPath, [join(root, "bench/plugin.js")], {
    env: { ...process.env, CONNECT_PLUGIN_LISTEN: "127.0.0.1:0" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const url = await firstMatch(plugin, "stderr", /"url":"([^"]+)"/);
  const client = new lib.PluginClient({
    handshake: service.benchHandshake,
    plugins: { bench: service.Bench },
    source: lib.remote(url, { protocol: "connect" }),
    logger: lib.silentLogger,
  });
  await client.start();
  const bench = client.dispense("bench");
  const value = new Uint8Array(16).fill(7);
  const cpu = async (n: number): Promise<number> => {
    const t = process.cpuUsage();
    for (let i = 0; i < n; i++) await bench.echo({ value });
    const used = process.cpuUsage(t);
    return (used.user + used.system) / n;
  };
  await cpu(5_000);
  const before = await cpu(2_000);
  let got = 0;
  for await (const _ of bench.stream({ value: 100_000n })) got++;
  if (got !== 100_000) throw new Error(`stream delivered ${got} messages`);
  const after = await cpu(2_000);
  const later = await cpu(2_000);
  await client.close();
  plugin.kill();
  process.send?.({ before, after, later } satisfies Result);
}

function run(root: string): Promise<Result> {
  return new Promise((resolveResult, reject) => {
    const p = spawn(process.execPath, [fileURLToPath(import.meta.url), "--child", root], {
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    let result: Result | undefined;
    p.on("message", (m) => (result = m as Result));
    p.once("exit", (code) =>
      result !== undefined ? resolveResult(result) : reject(new Error(`${root}: exit ${code}`)),
    );
  });
}

if (process.argv[2] === "--child") {
  await child(process.argv[3] ?? "");
} else {
  const rounds = Number(process.argv[2] ?? 3);
  const own = resolve(fileURLToPath(import.meta.url), "../..");
  const roots = process.argv.length > 3 ? process.argv.slice(3).map((r) => resolve(r)) : [own];
  const results = new Map<string, Result[]>(roots.map((r) => [r, []]));
  for (let r = 0; r < rounds; r++) {
    for (const root of shuffled(roots)) results.get(root)?.push(await run(root));
    process.stderr.write(`round ${r + 1}/${rounds} done\n`);
  }
  const fmt = (xs: number[]): string =>
    `${round(median(xs))} (${round(Math.min(...xs))}-${round(Math.max(...xs))})`;
  console.log("host CPU µs per unary call; median of rounds (min-max)");
  for (const [root, rs] of results) {
    console.log(
      `${root}: before ${fmt(rs.map((x) => x.before))}, after the stream ` +
        `${fmt(rs.map((x) => x.after))}, later ${fmt(rs.map((x) => x.later))}, ` +
        `after/before ${fmt(rs.map((x) => x.after / x.before))}`,
    );
  }
}
