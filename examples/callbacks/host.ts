/**
 * A host that offers a Progress service to its plugin and runs a job on it:
 * the plugin reads the job's settings from the host and reports each step,
 * and the host draws a progress bar and stops the job after step 4 of 6.
 * The same host code runs the plugin as a subprocess and in process.
 *
 *   npm run demo:callbacks
 */
import { fileURLToPath } from "node:url";
import {
  PluginClient,
  implement,
  inProcess,
  silentLogger,
  subprocess,
  type PluginSource,
} from "../../src/index.js";
import { jobsDefinition } from "./jobs.js";
import { Jobs, Progress, handshake } from "./shared.js";

const progress = implement(Progress, {
  report(req) {
    const bar = "#".repeat(req.step).padEnd(req.steps, ".");
    process.stdout.write(`  [${bar}] ${req.name} step ${req.step}/${req.steps}\n`);
    return { keepGoing: req.step < 4 };
  },
  async *settings(req) {
    yield { key: "owner", value: "demo host" };
    yield { key: "job", value: req.name };
  },
});

const plugin = fileURLToPath(new URL("./plugin.js", import.meta.url));
const sources: Array<[string, PluginSource]> = [
  ["subprocess", subprocess(process.execPath, [plugin])],
  ["in process", inProcess(jobsDefinition())],
];

for (const [where, source] of sources) {
  console.log(`plugin ${where}:`);
  const client = new PluginClient({
    handshake,
    plugins: { jobs: Jobs },
    source,
    hostServices: [progress],
    logger: silentLogger,
  });
  await client.start();
  const result = await client.dispense("jobs").run({ name: "resize", steps: 6, stepDelayMs: 50 });
  console.log(`  done: ${result.stepsDone} steps; ${result.notes.join("; ")}`);
  await client.close();
}
