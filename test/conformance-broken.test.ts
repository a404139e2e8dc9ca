/**
 * `connect-plugin conformance` against a deliberately broken plugin
 * (test/fixtures/broken-plugin.ts): it fails, with a message per broken
 * requirement, in --json and in text.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { describe, test } from "node:test";
import type { ConformanceReport } from "../src/conformance/checks.js";
import { formatReport } from "../src/conformance/report.js";
import { cli } from "./oci-helpers.js";

const fixture = fileURLToPath(new URL("./fixtures/broken-plugin.js", import.meta.url));

async function conformance(cookie: string, command: string[], extra: string[] = []) {
  const run = await cli(["conformance", "--json", ...extra, "--cookie", cookie, "--", ...command]);
  const report = JSON.parse(run.stdout) as ConformanceReport;
  const status = Object.fromEntries(report.checks.map((c) => [c.id, c.status]));
  return { run, report, status };
}

describe("connect-plugin conformance: a broken plugin", () => {
  test("a broken plugin fails, with a clear message per broken requirement (text and --json)", async () => {
    const { run, report, status } = await conformance(
      "BROKEN_PLUGIN=yes",
      [process.execPath, fixture],
      ["--timeout", "3000"],
    );
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
      /answered Shutdown but was still running 3000 ms later \(hosts kill after 2 s\)/,
    );
    assert.equal(status["stdout-quiet"], "fail");
    assert.match(
      detail("stdout-quiet"),
      /wrote 1 more line\(s\) on stdout after the handshake, e\.g\. "debug: listening"; log to stderr/,
    );
    assert.equal(status["parent-watch"], "fail");
    assert.match(detail("parent-watch"), /still running 3000 ms after its stdin closed/);
    assert.equal(status.sigterm, "pass");
    assert.equal(status["grpc-health"], "warn");
    assert.equal(status["network-mode"], "warn");
    assert.equal(status["controller-handshake"], "fail");
    assert.match(
      detail("controller-handshake"),
      /claimed protocol version 1001, which it does not speak/,
    );
    const text = formatReport(report);
    assert.match(text, /^FAIL {2}launch-token {10}Refuse calls without the launch token/m);
    assert.match(text, /NOT conformant: \d+ passed, 7 failed, \d+ recommended not met/);
  });
});
