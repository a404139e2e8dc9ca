/**
 * `npm run bench`: per-call cost of connect-plugin in its three locations,
 * measured in one run with the contenders interleaved round by round, so
 * that machine drift hits all of them alike. Prints a Markdown table;
 * `--json FILE` also writes the rows; `--quick` runs fewer rounds.
 *
 * This is the core's baseline. The side-by-side suite against go-plugin,
 * grpc-js and the raw-socket floor is tracked separately.
 */
import { writeFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import {
  PluginClient,
  inProcess,
  remote,
  silentLogger,
  subprocess,
  type PluginSource,
} from "../src/index.js";
import { kvPlugin } from "../examples/kv/definition.js";
import { KV, handshake } from "../examples/kv/shared.js";

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const jsonIndex = args.indexOf("--json");
const jsonFile = jsonIndex >= 0 ? args[jsonIndex + 1] : undefined;

const ROUNDS = quick ? 3 : 10;
const CALLS_PER_ROUND = quick ? 300 : 1_000;
const CONCURRENCY = 64;
const CONCURRENT_MS = quick ? 500 : 1_500;
const COLD_STARTS = quick ? 3 : 10;

const pluginMain = fileURLToPath(new URL("../examples/kv/plugin.js", import.meta.url));
const payload = new Uint8Array(16).fill(7);

type Client = PluginClient<{ kv: typeof KV }>;
interface Row {
  scenario: string;
  contender: string;
  p50_us: number | null;
  p99_us: number | null;
  ops_per_s: number | null;
  rss_mb: number | null;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}
const median = (xs: number[]): number =>
  percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );

async function startNetworkKv(): Promise<{ url: string; stop: () => void }> {
  const child = spawn(process.execPath, [pluginMain], {
    env: { ...process.env, CONNECT_PLUGIN_LISTEN: "127.0.0.1:0" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const url = await new Promise<string>((resolve) => {
    let buffered = "";
    child.stderr.on("data", (c: Buffer) => {
      buffered += c.toString();
      const m = /"url":"([^"]+)"/.exec(buffered);
      if (m?.[1] !== undefined) resolve(m[1]);
    });
  });
  return { url, stop: () => child.kill("SIGTERM") };
}

async function open(source: PluginSource): Promise<Client> {
  const client = new PluginClient({ handshake, plugins: { kv: KV }, source, logger: silentLogger });
  await client.start();
  await client.dispense("kv").put({ key: "k", value: payload });
  return client;
}

async function sequential(client: Client, n: number, into: number[]): Promise<void> {
  const kv = client.dispense("kv");
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await kv.get({ key: "k" });
    into.push(Number(process.hrtime.bigint() - t) / 1_000);
  }
}

async function concurrent(client: Client, ms: number): Promise<number> {
  const kv = client.dispense("kv");
  const end = performance.now() + ms;
  let done = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        await kv.get({ key: "k" });
        done++;
      }
    }),
  );
  return done / (ms / 1_000);
}

async function coldStart(): Promise<number> {
  const t = performance.now();
  const client = await open(subprocess(process.execPath, [pluginMain]));
  const ms = performance.now() - t;
  await client.close();
  return ms;
}

const network = await startNetworkKv();
const contenders: Array<[string, Client]> = [
  [
    "connect-plugin subprocess (unix socket, Connect/h2c)",
    await open(subprocess(process.execPath, [pluginMain])),
  ],
  ["connect-plugin remote (loopback TCP, Connect/h2c)", await open(remote(network.url))],
  ["connect-plugin in process (router transport)", await open(inProcess(kvPlugin()))],
];

const latencies = new Map<string, number[]>(contenders.map(([name]) => [name, []]));
const throughput = new Map<string, number[]>(contenders.map(([name]) => [name, []]));
for (const [, client] of contenders) await sequential(client, 200, []); // warm-up
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, client] of contenders) {
    await sequential(client, CALLS_PER_ROUND, latencies.get(name) ?? []);
    throughput.get(name)?.push(await concurrent(client, CONCURRENT_MS));
  }
}
const colds: number[] = [];
for (let i = 0; i < COLD_STARTS; i++) colds.push(await coldStart());

const rows: Row[] = [];
for (const [name] of contenders) {
  const sorted = [...(latencies.get(name) ?? [])].sort((a, b) => a - b);
  rows.push({
    scenario: "unary 16 B, sequential",
    contender: name,
    p50_us: Math.round(percentile(sorted, 50)),
    p99_us: Math.round(percentile(sorted, 99)),
    ops_per_s: null,
    rss_mb: null,
  });
  rows.push({
    scenario: `unary 16 B, ${CONCURRENCY} concurrent`,
    contender: name,
    p50_us: null,
    p99_us: null,
    ops_per_s: Math.round(median(throughput.get(name) ?? [])),
    rss_mb: null,
  });
}
rows.push({
  scenario: "cold start: spawn to first call",
  contender: "connect-plugin subprocess (Node plugin)",
  p50_us: Math.round(median(colds) * 1_000),
  p99_us: null,
  ops_per_s: null,
  rss_mb: null,
});
for (const [, client] of contenders) await client.close();
network.stop();

const fmt = (v: number | null): string => (v === null ? "" : v.toLocaleString("en-US"));
console.log(`\nnode ${process.version}, ${ROUNDS} interleaved rounds${quick ? " (quick)" : ""}\n`);
console.log("| scenario | contender | p50 µs | p99 µs | calls/s |");
console.log("| --- | --- | ---: | ---: | ---: |");
for (const r of rows) {
  console.log(
    `| ${r.scenario} | ${r.contender} | ${fmt(r.p50_us)} | ${fmt(r.p99_us)} | ${fmt(r.ops_per_s)} |`,
  );
}
if (jsonFile !== undefined) writeFileSync(jsonFile, `${JSON.stringify(rows, null, 2)}\n`);
