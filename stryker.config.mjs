// @ts-check
/**
 * `npm run mutation`: StrykerJS over the modules that decide security and
 * correctness, against the fast unit tests that test/unit-all.ts imports (the
 * one list of them: add a test there and the mutation run uses it).
 *
 * Why the tap runner and per-test coverage: each test file runs in its own
 * `node` process (node:test prints TAP), the dry run records which files
 * reach which mutant, and each mutant then runs only those files, with a hit
 * limit that stops a mutant looping forever in far less than a timeout. The
 * command runner ran every test for every mutant and waited out each endless
 * loop (86 min for 1,408 mutants, 2026-12-01).
 */
import { readFileSync } from "node:fs";
import { URL } from "node:url";

const unitAll = readFileSync(new URL("test/unit-all.ts", import.meta.url), "utf8");
const testFiles = [...unitAll.matchAll(/^import "\.\/(.+\.js)";$/gm)].map(
  (m) => `dist/test/${m[1]}`,
);
if (testFiles.length === 0) throw new Error("test/unit-all.ts imports no test file");

/** @type {import("@stryker-mutator/api/core").PartialStrykerOptions} */
export default {
  packageManager: "npm",
  testRunner: "tap",
  tap: { testFiles, forceBail: true },
  coverageAnalysis: "perTest",
  buildCommand: "npx tsc -p tsconfig.json --noCheck",
  concurrency: 2,
  // Added to the time the dry run measured for the tests a mutant runs.
  timeoutMS: 3000,
  reporters: ["clear-text", "progress", "json"],
  jsonReporter: { fileName: "reports/mutation/mutation.json" },
  ignorePatterns: ["dist", "reports", ".stryker-tmp", "go", "docs"],
  mutate: [
    "src/protocol/handshake-line.ts",
    "src/protocol/versions.ts",
    "src/security/canonical.ts",
    "src/security/plaintext.ts",
    "src/security/signing.ts",
    "src/resilience/retry.ts",
    "src/resilience/retry-decision.ts",
    "src/resilience/circuit-breaker.ts",
    "src/resilience/balancer.ts",
    "src/transport/framed/frames.ts",
    "src/manifest/manifest.ts",
    "src/host/sources.ts",
  ],
};
