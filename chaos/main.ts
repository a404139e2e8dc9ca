/**
 * `npm run chaos [-- --json FILE] [--duration SECONDS] [--instances N]`:
 * the chaos suite (see suite.ts). Exits 1 when a target is missed.
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { formatReport, runChaos } from "./suite.js";

const { values } = parseArgs({
  options: {
    json: { type: "string" },
    duration: { type: "string" },
    instances: { type: "string" },
    concurrency: { type: "string" },
    quiet: { type: "boolean" },
  },
});
const report = await runChaos({
  ...(values.duration !== undefined && { durationMs: Number(values.duration) * 1000 }),
  ...(values.instances !== undefined && { instances: Number(values.instances) }),
  ...(values.concurrency !== undefined && { concurrency: Number(values.concurrency) }),
  log: values.quiet ? () => {} : (line) => process.stderr.write(`[chaos] ${line}\n`),
});
console.log(formatReport(report));
if (values.json !== undefined) {
  writeFileSync(values.json, JSON.stringify(report, null, 2) + "\n");
  console.log(`report written to ${values.json}`);
}
process.exit(report.pass ? 0 : 1);
