/**
 * `npm run bench:summary -- A.json B.json C.json`: issue 12's targets over
 * several `npm run bench --json` runs, side by side, with each ratio's lowest
 * and highest and the number of runs that met the target. The machine moves
 * the floors by tens of percent between back-to-back runs (docs/benchmarks),
 * so one run decides a close target by noise; the issue judges each over at
 * least three.
 */
import { readFileSync } from "node:fs";
import { markdownTargetRuns, type Row } from "./report.js";
import { targets } from "./targets.js";

const files = process.argv.slice(2);
if (files.length === 0) {
  process.stderr.write("usage: node dist/bench/summary.js RUN.json [RUN.json ...]\n");
  process.exit(2);
}
const runs = files.map((file) => {
  const rows: unknown = JSON.parse(readFileSync(file, "utf8"));
  if (!Array.isArray(rows)) throw new Error(`${file}: not the rows of npm run bench --json`);
  return targets(rows as Row[]);
});
console.log(files.map((f, i) => `run ${i + 1}: ${f}`).join("; "));
console.log(`\n${markdownTargetRuns(runs)}`);
