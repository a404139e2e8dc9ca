/**
 * bench/targets.ts and `npm run bench:summary`: issue 12's targets judged
 * from a run's rows, and set side by side over several runs with each
 * ratio's min and max and the number of runs that met it. Rows are made up
 * here (no timings are measured).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { CP_FRAMED_PLAIN, GO_PLUGIN, S } from "../bench/names.js";
import { markdownTargetRuns, type Row } from "../bench/report.js";
import { met, targets } from "../bench/targets.js";

const row = (scenario: string, contender: string, p50: number): Row => ({
  scenario,
  contender,
  p50_us: p50,
  p99_us: null,
  ops_per_s: null,
  rss_mb: null,
  spread: null,
});
/** A run where our 1 MiB call takes `ours` µs against go-plugin's 2,000. */
const run = (ours: number): Row[] => [
  row(S.big, GO_PLUGIN, 2_000),
  row(S.big, CP_FRAMED_PLAIN, ours),
];
const MIB = `${CP_FRAMED_PLAIN} vs ${GO_PLUGIN}: 1 MiB unary p50 ≤ 1.0×`;

test("a target is met only when its ratio is within the limit; a missing figure meets nothing", () => {
  const find = (rows: Row[]) => targets(rows).find((t) => t.name === MIB);
  assert.equal(met(find(run(2_000))!), true);
  assert.equal(met(find(run(2_100))!), false);
  assert.deepEqual(find(run(2_100))!.checks[0]?.value, 1.05);
  assert.equal(met(find([row(S.big, GO_PLUGIN, 2_000)])!), false);
});

test("runs side by side: each run's ratio, the min-max, and how many runs met it", () => {
  const table = markdownTargetRuns([run(1_800), run(2_200), run(2_000)].map(targets));
  const line = table.split("\n").find((l) => l.startsWith(`| ${MIB} |`));
  assert.equal(line, `| ${MIB} | 0.90× | 1.10× | 1.00× | 0.90×–1.10× | **2 of 3** |`);
  // A run without a target's figures (an older file) is left out of its count; here no run has any.
  const stream = table.split("\n").find((l) => l.includes("server stream ≥ 1.0×"));
  assert.match(stream ?? "", /\| – \| – \| – \| – \| – \|$/);
});

test("bench:summary says what it wants when given no file or a file that is not a run's rows", async () => {
  const summary = fileURLToPath(new URL("../bench/summary.js", import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), "bench-summary-"));
  try {
    const file = join(dir, "run.json");
    writeFileSync(file, JSON.stringify({ rows: [] }));
    const failure = (args: string[]) =>
      promisify(execFile)(process.execPath, [summary, ...args]).then(
        () => assert.fail("expected a failure"),
        (error: { code: number; stderr: string }) => error,
      );
    const none = await failure([]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /usage: node dist\/bench\/summary\.js RUN\.json/);
    const wrong = await failure([file]);
    assert.match(wrong.stderr, /run\.json: not the rows of npm run bench --json/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
