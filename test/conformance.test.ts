/**
 * `connect-plugin conformance`: the Go plugins (connect-go), the Python
 * plugin (grpcio) and the TypeScript KV example pass it; a deliberately
 * broken plugin fails it, with a message per broken requirement.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import type { ConformanceReport } from "../src/conformance/checks.js";
import { formatReport } from "../src/conformance/report.js";
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
  const broken = () => [process.execPath, fixture];
  before(async () => {
    bin = await goBinaries({
      "dbengine-sqlite": "./cmd/dbengine-sqlite",
      "dialect-go": "./cmd/dialect-go",
    });
    for (const [label, cookie, command] of plugins) runs.set(label, conformance(cookie, command()));
    runs.set("broken", conformance("BROKEN_PLUGIN=yes", broken(), ["--timeout", "3000"]));
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

  test("a broken plugin fails, with a clear message per broken requirement (text and --json)", async () => {
    const { run, report, status } = await conformance("BROKEN_PLUGIN=yes", [
      process.execPath,
      fixture,
    ]);
    assert.equal(run.code, 9, "exit code 9: a required check failed");
    assert.equal(report.passed, false);
    const detail = (id: string) => report.checks.find((c) => c.id === id)?.detail ?? "";
    assert.equal(status.cookie, "fail");
    assert.match(
      detail("cookie"),
      /printed "1\|1\|unix\|.*" on stdout without the magic cookie BROKEN_PLUGIN; check the cookie before anything else/,
    );
    assert.equal(status["handshake-line"], "pass");
    assert.equal(status["private-socket"], "fail");
    assert.match(
      detail("private-socket"),
      /socket sits directly in PLUGIN_UNIX_SOCKET_DIR; make a fresh directory \(mode 0700\) in it/,
    );
    assert.equal(status["launch-token"], "fail");
    assert.match(
      detail("launch-token"),
      /Handshake with no token succeeded; with CONNECT_PLUGIN_LAUNCH_TOKEN=stdin, read the first stdin line/,
    );
    assert.equal(status.shutdown, "fail");
    assert.match(
      detail("shutdown"),
      /answered Shutdown but was still running 5 s later \(hosts kill after 2 s\)/,
    );
    assert.equal(status["stdout-quiet"], "fail");
    assert.match(
      detail("stdout-quiet"),
      /wrote 1 more line\(s\) on stdout after the handshake, e\.g\. "debug: listening"; log to stderr/,
    );
    assert.equal(status["parent-watch"], "fail");
    assert.match(detail("parent-watch"), /still running 5 s after its stdin closed/);
    assert.equal(status.sigterm, "pass");
    assert.equal(status["grpc-health"], "warn");
    assert.equal(status["network-mode"], "warn");
    const text = formatReport(report);
    assert.match(text, /^FAIL {2}launch-token {10}Refuse calls without the launch token/m);
    assert.match(text, /NOT conformant: \d+ passed, 7 failed, \d+ recommended not met/);
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
