/**
 * `npm run fuzz [-- --cases N] [--seed N] [--target framed|http2|goplugin]`:
 * the property tests with 100,000 cases each (FUZZ_RUNS), then the live
 * byte fuzzer with N cases (default 100,000) against each server. Exits 1 on
 * a hang, a server that stopped answering, or a failed property.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { TARGETS, fuzzTarget, stillGrowing } from "./live.js";

const { values } = parseArgs({
  options: {
    cases: { type: "string" },
    seed: { type: "string" },
    target: { type: "string", multiple: true },
    "skip-properties": { type: "boolean" },
  },
});
const cases = Number(values.cases ?? 100_000);
const seed = Number(values.seed ?? Math.floor(Math.random() * 2 ** 31));
let failed = false;

if (!values["skip-properties"]) {
  const file = fileURLToPath(new URL("../test/fuzz-properties.test.js", import.meta.url));
  console.log(`properties: ${cases} cases each (${file})`);
  const run = spawnSync(process.execPath, ["--test", "--test-timeout=3600000", file], {
    env: { ...process.env, FUZZ_RUNS: String(cases) },
    stdio: ["ignore", "pipe", "inherit"],
    encoding: "utf8",
  });
  const summary = run.stdout.split("\n").filter((l) => /^# (tests|pass|fail)/.test(l));
  console.log(summary.join("\n"));
  if (run.status !== 0) {
    failed = true;
    console.log(
      run.stdout
        .split("\n")
        .filter((l) => /not ok|Counterexample|error:/.test(l))
        .join("\n"),
    );
  }
}

const names = (values.target ?? Object.keys(TARGETS)) as Array<keyof typeof TARGETS>;
for (const name of names) {
  const target = await TARGETS[name]();
  try {
    const r = await fuzzTarget(target, {
      cases,
      seed,
      log: (l) => process.stderr.write(`[fuzz] ${l}\n`),
    });
    console.log(
      `${r.target}: ${r.cases} cases in ${Math.round(r.elapsedMs / 1000)} s (seed ${seed}), ` +
        `${r.hangs} hangs, ${r.deadChecks} failed liveness checks, ${r.memory} ${r.memoryBeforeMb} -> ${r.memoryMidMb} (half) -> ${r.memoryAfterMb} MB`,
    );
    for (const f of r.failures) console.log(`  ${f}`);
    const growing = stillGrowing(r);
    if (growing !== undefined) console.log(`  ${growing}`);
    if (r.hangs > 0 || r.deadChecks > 0 || growing !== undefined) failed = true;
  } finally {
    await target.close();
  }
}
console.log(failed ? "RESULT: FAIL" : "RESULT: PASS");
process.exit(failed ? 1 : 0);
