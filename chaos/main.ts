/**
 * `npm run chaos [-- --json FILE] [--duration SECONDS] [--instances N]
 * [--concurrency N] [--seed N] [--no-partitions] [--quiet]`: the chaos suite
 * (see suite.ts).
 *
 * As root, the run takes place in network namespaces made for it (see
 * netns.ts) so that instances can be really partitioned: this process makes
 * them, runs itself again inside the host's namespace, and deletes them at
 * the end. Without root it says so and runs without partitions.
 *
 * Exit codes: 0 every target met; 1 a target missed (a library failure);
 * 2 the harness failed (the run proves nothing). A report is always written.
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createTopology, destroyTopology, netnsUnavailable, type Topology } from "./netns.js";
import { formatReport, runChaos, type ChaosReport } from "./suite.js";

const { values } = parseArgs({
  options: {
    json: { type: "string" },
    duration: { type: "string" },
    instances: { type: "string" },
    concurrency: { type: "string" },
    seed: { type: "string" },
    "no-partitions": { type: "boolean" },
    quiet: { type: "boolean" },
  },
});
const log = values.quiet ? () => {} : (line: string) => process.stderr.write(`[chaos] ${line}\n`);
const instances = values.instances !== undefined ? Number(values.instances) : 5;
const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
const INSIDE = "CONNECT_PLUGIN_CHAOS_TOPOLOGY";

function writeReport(
  report: ChaosReport | { verdict: "harness-error"; error: string; seed: number },
) {
  if (values.json !== undefined) {
    writeFileSync(values.json, JSON.stringify(report, null, 2) + "\n");
    console.log(`report written to ${values.json}`);
  }
}

async function runHere(topology: Topology | undefined, unavailable: string | undefined) {
  let report: ChaosReport;
  try {
    report = await runChaos({
      ...(values.duration !== undefined && { durationMs: Number(values.duration) * 1000 }),
      instances,
      ...(values.concurrency !== undefined && { concurrency: Number(values.concurrency) }),
      seed,
      ...(topology !== undefined && { topology }),
      ...(unavailable !== undefined && { partitionsUnavailable: unavailable }),
      log,
    });
  } catch (error) {
    const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
    console.log(`RESULT: HARNESS ERROR (seed ${seed})\n${text}`);
    writeReport({ verdict: "harness-error", error: text, seed });
    process.exit(2);
  }
  console.log(formatReport(report));
  writeReport(report);
  process.exit(report.verdict === "pass" ? 0 : report.verdict === "harness-error" ? 2 : 1);
}

const inside = process.env[INSIDE];
if (inside !== undefined) {
  await runHere(JSON.parse(inside) as Topology, undefined);
} else {
  const unavailable = values["no-partitions"] ? "--no-partitions was given" : netnsUnavailable();
  if (unavailable !== undefined) {
    log(`no network partitions: ${unavailable}; running the other faults`);
    await runHere(undefined, unavailable);
  } else {
    let topology: Topology | undefined;
    let code: number | null = 2;
    try {
      topology = createTopology(instances);
      log(
        `namespaces: host ${topology.hostNs}, instances ${topology.links.map((l) => l.ns).join(" ")}`,
      );
      const args = [...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)];
      if (values.seed === undefined) args.push("--seed", String(seed));
      const child = spawn("ip", ["netns", "exec", topology.hostNs, process.execPath, ...args], {
        env: { ...process.env, [INSIDE]: JSON.stringify(topology) },
        stdio: "inherit",
      });
      const stop = (): void => void child.kill("SIGTERM");
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
      code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
      if (code === null || code > 2) {
        const text = `the run inside ${topology.hostNs} ended with ${code ?? "a signal"} before reporting`;
        console.log(`RESULT: HARNESS ERROR (seed ${seed})\n${text}`);
        writeReport({ verdict: "harness-error", error: text, seed });
        code = 2;
      }
    } catch (error) {
      const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
      console.log(`RESULT: HARNESS ERROR (seed ${seed})\n${text}`);
      writeReport({ verdict: "harness-error", error: text, seed });
      code = 2;
    } finally {
      if (topology !== undefined) destroyTopology(topology);
    }
    process.exit(code);
  }
}
