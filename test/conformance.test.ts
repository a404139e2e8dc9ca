/**
 * `connect-plugin conformance`: the Go plugins (connect-go), the Python
 * plugin (grpcio) and the TypeScript KV example pass it (the broken
 * fixture is in conformance-broken.test.ts).
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import type { ConformanceReport } from "../src/conformance/checks.js";
import { goBinaries, removeGoBinaries } from "./go-build.js";
import { cli } from "./oci-helpers.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const fixture = fileURLToPath(new URL("./fixtures/broken-plugin.js", import.meta.url));

async function conformance(cookie: string, command: string[], extra: string[] = []) {
  const run = await cli(["conformance", "--json", ...extra, "--cookie", cookie, "--", ...command]);
  const report = JSON.parse(run.stdout) as ConformanceReport;
  const status = Object.fromEntries(report.checks.map((c) => [c.id, c.status]));
  return { run, report, status };
}

const requiredIds = [
  "cookie",
  "handshake-line",
  "private-socket",
  "launch-token",
  "controller-handshake",
  "controller-health",
  "shutdown",
  "stdout-quiet",
  "version-negotiation",
  "parent-watch",
  "sigterm",
];

describe("connect-plugin conformance", () => {
  let bin: Record<"dbengine-sqlite" | "dialect-go", string>;
  const plugins = [
    [
      "Go (go/connectplugin, AutoMTLS)",
      "DBENGINE_PLUGIN=schemahero",
      () => [bin["dbengine-sqlite"]],
      [],
    ],
    ["Go dialect plugin", "SQLTRACEBENCH_PLUGIN=dialect", () => [bin["dialect-go"]], []],
    [
      "Python (grpcio)",
      "SQLTRACEBENCH_PLUGIN=dialect",
      () => [join(root, ".venv/bin/python"), join(root, "examples/dialect/python/plugin.py")],
      ["auto-mtls"],
    ],
    [
      "TypeScript KV example (serve())",
      "KV_PLUGIN=hello",
      () => [process.execPath, join(root, "dist/examples/kv/plugin.js")],
      [],
    ],
  ] as const;
  // The runs are independent and mostly wait (for exits, for timeouts), so
  // they all start at once; each test awaits its own.
  const runs = new Map<string, ReturnType<typeof conformance>>();
  before(async () => {
    bin = await goBinaries({
      "dbengine-sqlite": "./cmd/dbengine-sqlite",
      "dialect-go": "./cmd/dialect-go",
    });
    for (const [label, cookie, command] of plugins) runs.set(label, conformance(cookie, command()));
    // The text output, from a passing plugin (a failing one is formatted below).
    const text = cli([
      "conformance",
      "--cookie",
      "DBENGINE_PLUGIN=schemahero",
      "--",
      bin["dbengine-sqlite"],
    ]);
    runs.set(
      "text",
      text.then((run) => ({ run, report: undefined as never, status: {} })),
    );
    for (const r of runs.values()) r.catch(() => undefined);
  });
  after(() => removeGoBinaries());

  for (const [label, , command, expectWarn] of plugins) {
    test(`${label} passes`, async () => {
      const cmd = command();
      assert.ok(existsSync(cmd[0] ?? ""), `${cmd[0]} is missing (run scripts/setup-test-deps.sh)`);
      const { run, report, status } = await (runs.get(label) as ReturnType<typeof conformance>);
      assert.equal(run.code, 0, run.stdout);
      assert.equal(report.passed, true);
      for (const id of requiredIds)
        assert.equal(
          status[id],
          "pass",
          `${id}: ${JSON.stringify(report.checks.find((c) => c.id === id))}`,
        );
      const warned = report.checks.filter((c) => c.status === "warn").map((c) => c.id);
      assert.deepEqual(warned, [...expectWarn]);
    });
  }

  test("the text output: one line per check and a summary", async () => {
    const { run: passing } = await (runs.get("text") as ReturnType<typeof conformance>);
    assert.equal(passing.code, 0);
    assert.match(passing.stdout, /^PASS {2}cookie /m);
    assert.match(
      passing.stdout,
      /\nconformant: 16 passed, 0 failed, 0 recommended not met, 0 skipped/,
    );
  });

  test("usage errors are clear", async () => {
    const noCookie = await cli(["conformance", "--", process.execPath, fixture]);
    assert.equal(noCookie.code, 2);
    assert.match(noCookie.stderr, /required option '--cookie <KEY=VALUE>' not specified/);
    const bad = await cli(["conformance", "--cookie", "nokey", "--", process.execPath, fixture]);
    assert.equal(bad.code, 7);
    assert.match(bad.stderr, /--cookie must be KEY=VALUE/);
  });
});
