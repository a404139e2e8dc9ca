/**
 * runToEnd (the CLI's snapshot and code-cache builds) ends with the
 * process, not with its stderr pipe: a real subprocess that starts a
 * detached grandchild inheriting its stderr (as a plugin that starts a
 * daemon does) and exits, or is killed at the time limit, while the
 * grandchild keeps the pipe open.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { runToEnd } from "../../../src/cli/run-to-end.js";
import { isAlive, tempDir } from "../../helpers.js";

const dir = tempDir("run-to-end-");
const grandchildren: number[] = [];
after(() => {
  for (const pid of grandchildren) if (isAlive(pid)) process.kill(pid, "SIGKILL");
});

/** A script that starts the grandchild, writes `stderrBytes` to stderr, then runs `then`. */
function script(name: string, stderrBytes: number, then: string) {
  const path = join(dir, `${name}.cjs`);
  const pidFile = join(dir, `${name}.pid`);
  writeFileSync(
    path,
    `const { spawn } = require("node:child_process");
const g = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], {
  detached: true,
  stdio: ["ignore", "ignore", "inherit"],
});
require("node:fs").writeFileSync(${JSON.stringify(pidFile)}, String(g.pid));
g.unref();
process.stderr.write("x".repeat(${stderrBytes}) + "\\nlast line\\n");
${then}\n`,
  );
  return { path, pidFile };
}

/** runToEnd's answer, or a failure 15 s after it was asked (main waited for the pipe: forever). */
async function settled(run: ReturnType<typeof runToEnd>, pidFile: string) {
  let bound: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      run,
      new Promise<never>((_, reject) => {
        bound = setTimeout(() => reject(new Error("runToEnd still pending after 15 s")), 15_000);
      }),
    ]);
  } finally {
    clearTimeout(bound);
    grandchildren.push(Number(readFileSync(pidFile, "utf8")));
  }
}

test("runToEnd resolves when the process exits though a grandchild holds its stderr open, with all it wrote (200 KiB, more than a pipe holds)", async () => {
  const { path, pidFile } = script("exits", 200 * 1024, "process.exit(3);");
  const result = await settled(runToEnd(process.execPath, [path], 60_000), pidFile);
  assert.equal(result.code, 3);
  assert.equal(result.timedOut, false);
  assert.equal(result.stderr, `${"x".repeat(200 * 1024)}\nlast line\n`);
  assert.ok(
    isAlive(grandchildren.at(-1)!),
    "the grandchild was left running: it is not runToEnd's",
  );
});

test("runToEnd resolves after killing a process at its time limit though a grandchild holds its stderr open", async () => {
  const { path, pidFile } = script("hangs", 10, "setInterval(() => {}, 1000);");
  const result = await settled(runToEnd(process.execPath, [path], 3_000), pidFile);
  assert.equal(result.code, null);
  assert.equal(result.timedOut, true);
  assert.equal(result.stderr, `${"x".repeat(10)}\nlast line\n`);
});
