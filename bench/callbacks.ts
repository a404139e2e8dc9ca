/**
 * `npm run bench:callbacks`: what a host-service callback costs. For each
 * location, a plain Jobs/Run call against the same call making one unary
 * callback to the host, interleaved round by round; prints the p50 of each
 * (median over rounds) and the callback's share (the difference). Asserts
 * nothing.
 */
import { fileURLToPath } from "node:url";
import {
  PluginClient,
  implement,
  inProcess,
  remote,
  silentLogger,
  subprocess,
  type PluginSource,
} from "../src/index.js";
import { Jobs, Progress, handshake } from "../examples/callbacks/shared.js";
import { benchJobs } from "./callbacks-plugin.js";
import { median, percentile, round } from "./stats.js";
import { startNetworkPlugin } from "../test/helpers.js";

const quick = process.argv.includes("--quick");
const ROUNDS = quick ? 3 : 5;
const CALLS = quick ? 200 : 500;
const main = fileURLToPath(new URL("./callbacks-plugin.js", import.meta.url));

// The remote plugin, in network mode on loopback.
const network = await startNetworkPlugin("serve", {}, main);
const url = network.url;

const locations: Array<[string, PluginSource]> = [
  ["subprocess (framed)", subprocess(process.execPath, [main, "serve"])],
  [
    "subprocess (HTTP/2)",
    subprocess(process.execPath, [main, "serve"], { transports: ["connect"] }),
  ],
  ["remote (HTTP/2, loopback)", remote(url)],
  ["in process", inProcess(benchJobs())],
];

const progress = implement(Progress, {
  report: () => ({ keepGoing: true }),
  async *settings() {},
});

interface Row {
  where: string;
  plain: number[];
  callback: number[];
}
const rows: Row[] = [];
const clients: Array<PluginClient<{ jobs: typeof Jobs }>> = [];
for (const [where, source] of locations) {
  const client = new PluginClient({
    handshake,
    plugins: { jobs: Jobs },
    source,
    hostServices: [progress],
    logger: silentLogger,
  });
  await client.start();
  clients.push(client);
  rows.push({ where, plain: [], callback: [] });
}

async function p50(client: PluginClient<{ jobs: typeof Jobs }>, name: string): Promise<number> {
  const jobs = client.dispense("jobs");
  const times: number[] = [];
  for (let i = 0; i < CALLS; i++) {
    const start = performance.now();
    await jobs.run({ name });
    times.push(performance.now() - start);
  }
  return percentile(times, 50) * 1_000;
}

for (let r = 0; r < ROUNDS; r++) {
  for (const [i, row] of rows.entries()) {
    const client = clients[i];
    if (client === undefined) continue;
    row.plain.push(await p50(client, "plain"));
    row.callback.push(await p50(client, "callback"));
  }
}

console.log(`callbacks: p50 per call in µs, median of ${ROUNDS} rounds of ${CALLS} calls`);
console.log("| location | plain call | call + 1 unary callback | the callback |");
console.log("| --- | --- | --- | --- |");
for (const row of rows) {
  const plain = median(row.plain);
  const callback = median(row.callback);
  console.log(
    `| ${row.where} | ${round(plain)} | ${round(callback)} | ${round(callback - plain)} (${(callback / plain).toFixed(2)}x) |`,
  );
}
await Promise.all(clients.map((c) => c.close()));
await network.stop();
