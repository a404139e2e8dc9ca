/**
 * `connect-plugin conformance` interrupted (Ctrl-C, kill, a closed
 * terminal) by a real signal to a real CLI process: the plugin under test,
 * which runs in a process group and session of its own and so gets none of
 * the terminal's signals, is killed with its group, its socket directory is
 * removed, and the CLI still dies of the signal.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { isRunning, tempDir, waitFor } from "./helpers.js";
import { startCli } from "./oci-helpers.js";

test("conformance killed by SIGINT, SIGTERM or SIGHUP kills the plugin under test and removes its socket directory", async () => {
  const work = tempDir("cp-confsig-");
  const pidFile = join(work, "plugin.pid");
  // A plugin that never answers its handshake and outlives its stdin: only
  // a kill of its group ends it.
  const plugin = join(work, "stuck-plugin.cjs");
  writeFileSync(
    plugin,
    `require("node:fs").writeFileSync(${JSON.stringify(pidFile)}, String(process.pid));
process.stdin.on("data", () => {}).on("end", () => {}).on("error", () => {});
for (const s of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(s, () => {});
setInterval(() => {}, 1000);
`,
  );
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const tmp = tempDir("cp-conftmp-");
    const { child, exited, stderr } = startCli(
      ["conformance", "--cookie", "K=V", "--timeout", "60000", "--", process.execPath, plugin],
      { ...process.env, TMPDIR: tmp },
    );
    // Written, not only created: an empty file read as pid 0 (this group).
    await waitFor(
      "the plugin under test",
      () => existsSync(pidFile) && readFileSync(pidFile, "utf8") !== "",
      20_000,
    );
    const pid = Number(readFileSync(pidFile, "utf8"));
    assert.ok(isRunning(pid), "the plugin runs");
    assert.equal(readdirSync(tmp).filter((f) => f.startsWith("cpc-")).length, 1, "its socket dir");
    child.kill(signal);
    assert.deepEqual(await exited, [null, signal], stderr());
    assert.equal(isRunning(pid), false, `the plugin under test outlived the CLI's ${signal}`);
    assert.deepEqual(readdirSync(tmp), [], `after ${signal}`);
    // The next launch writes it anew.
    rmSync(pidFile);
  }
});
