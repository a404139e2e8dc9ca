/**
 * onEndingSignal when the process cannot kill itself with the signal it got:
 * on Windows process.kill(pid, "SIGHUP") throws ENOSYS (libuv's uv_kill
 * knows only SIGINT, SIGTERM, SIGKILL and SIGQUIT there), and a closed
 * console emits SIGHUP. The process still ends, as a shell would report
 * that signal (128 + its number), not with an uncaught exception.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { tempDir } from "../../helpers.js";

test("a signal the process cannot re-raise on itself (fake process.kill failing with ENOSYS, as on Windows): cleanup runs, the process exits 128 + the signal's number, nothing uncaught", async () => {
  const module = new URL("../../../src/cli/ending-signal.js", import.meta.url).href;
  const script = join(tempDir("ending-signal-"), "driver.mjs");
  writeFileSync(
    script,
    `import { onEndingSignal } from ${JSON.stringify(module)};
const kill = process.kill.bind(process);
process.kill = (pid, signal) => {
  if (pid === process.pid) throw Object.assign(new Error("kill ENOSYS"), { code: "ENOSYS" });
  return kill(pid, signal);
};
onEndingSignal((signal) => {
  process.stdout.write("cleaned up after " + signal);
});
process.emit("SIGHUP", "SIGHUP");
setTimeout(() => process.stdout.write(" and still running"), 1000);
`,
  );
  const outcome = await promisify(execFile)(process.execPath, [script]).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );
  assert.deepEqual(
    [outcome.code, outcome.stdout, outcome.stderr],
    [129, "cleaned up after SIGHUP", ""],
  );
});
