/**
 * runToEnd (the CLI's snapshot and code-cache builds) ends with the
 * process, not with its stderr pipe: a real subprocess that starts a
 * detached grandchild inheriting its stderr (as a plugin that starts a
 * daemon does) and exits, or is killed at the time limit, while the
 * grandchild keeps the pipe open; and a grandchild left in the process's
 * group ends with it at the time limit, or when the CLI is interrupted.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { runToEnd } from "../../../src/cli/run-to-end.js";
import { isAlive, isRunning as running, tempDir, waitFor } from "../../helpers.js";

const dir = tempDir("run-to-end-");
const module = new URL("../../../src/cli/run-to-end.js", import.meta.url).href;
const grandchildren: number[] = [];
after(() => {
  for (const pid of grandchildren) if (isAlive(pid)) process.kill(pid, "SIGKILL");
});

/**
 * A script that starts the grandchild (detached: in a process group of its
 * own, as a daemon; or left in the script's group), writes `stderrBytes` to
 * stderr, then runs `then`. The grandchild's pid goes to `pidFile`, the
 * script's own to `selfFile`; `first` runs before anything else.
 */
function script(name: string, stderrBytes: number, then: string, detached = true, first = "") {
  const path = join(dir, `${name}.cjs`);
  const pidFile = join(dir, `${name}.pid`);
  const selfFile = join(dir, `${name}.self`);
  writeFileSync(
    path,
    `${first}
const { spawn } = require("node:child_process");
const g = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], {
  detached: ${detached},
  stdio: ["ignore", "ignore", "inherit"],
});
require("node:fs").writeFileSync(${JSON.stringify(selfFile)}, String(process.pid));
require("node:fs").writeFileSync(${JSON.stringify(pidFile)}, String(g.pid));
g.unref();
process.stderr.write("x".repeat(${stderrBytes}) + "\\nlast line\\n");
${then}\n`,
  );
  return { path, pidFile, selfFile };
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

test("runToEnd's time limit kills the process's own children too (its process group), not only the process", async () => {
  const { path, pidFile } = script("group", 10, "setInterval(() => {}, 1000);", false);
  const result = await settled(runToEnd(process.execPath, [path], 2_000), pidFile);
  assert.equal(result.timedOut, true);
  const grandchild = grandchildren.at(-1)!;
  await waitFor("the grandchild to be killed", () => !running(grandchild), 5_000);
});

for (const ignores of [false, true])
  test(`SIGINT to a process running runToEnd (a real CLI-like process) ends the command and its children, then that process dies of SIGINT${ignores ? "; a command that ignores SIGINT (as serve() does) is killed after SIGNAL_GRACE_MS" : ""}`, async () => {
    const name = ignores ? "ignores-sigint" : "interrupted";
    const { path, pidFile, selfFile } = script(
      name,
      10,
      "setInterval(() => {}, 1000);",
      false,
      ignores ? 'process.on("SIGINT", () => {});' : "",
    );
    const driver = join(dir, `${name}-driver.mjs`);
    writeFileSync(
      driver,
      `import { runToEnd } from ${JSON.stringify(module)};
await runToEnd(process.execPath, [${JSON.stringify(path)}], 60_000);
process.exit(0);\n`,
    );
    const cliLike = spawn(process.execPath, [driver], { stdio: "ignore" });
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) =>
      cliLike.once("exit", (code, signal) => r([code, signal])),
    );
    await waitFor(
      "the command and its child",
      () => existsSync(pidFile) && existsSync(selfFile),
      10_000,
    );
    const command = Number(readFileSync(selfFile, "utf8"));
    const grandchild = Number(readFileSync(pidFile, "utf8"));
    grandchildren.push(grandchild, command);
    // The command's listener is installed before it wrote its pid (script()'s `first`).
    cliLike.kill("SIGINT");
    assert.deepEqual(await exited, [null, "SIGINT"]);
    // At once: runToEnd waited for the command's end (or killed it) before dying.
    assert.ok(!running(command), "the command outlived the CLI");
    await waitFor("the command's child to end", () => !running(grandchild), 5_000);
  });

/**
 * A command that makes itself root's (real, effective and saved uid) and
 * sleeps, writing its pid to `pidFile` first: a setuid-root C program, run
 * by a driver whose uid is nobody's, so that its process group refuses the
 * driver's signals (EPERM). Needs root, cc and a mount that honours setuid
 * (tried once as nobody, without `pidFile`); undefined without them.
 */
function becomesRoot(): { bin: string; work: string } | undefined {
  if (process.platform === "win32" || process.getuid?.() !== 0) return undefined;
  const work = join(dir, "eperm");
  chmodSync(dir, 0o755); // for nobody to reach `work`
  mkdirSync(work);
  chownSync(work, 65534, 65534);
  writeFileSync(
    join(work, "root.c"),
    `#define _GNU_SOURCE
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
  if (setresuid(0, 0, 0) != 0) return 2;
  if (argc < 2) return 0;
  FILE *f = fopen(argv[1], "w");
  if (f == NULL) return 3;
  fprintf(f, "%d", getpid());
  fclose(f);
  sleep(30);
  return 0;
}\n`,
  );
  const bin = join(work, "root");
  try {
    execFileSync("cc", ["-o", bin, join(work, "root.c")], { stdio: "ignore" });
  } catch {
    return undefined;
  }
  chmodSync(bin, 0o4755);
  try {
    // On a nosuid mount it stays nobody's: there would be no EPERM to see.
    execFileSync(bin, [], { uid: 65534, gid: 65534, stdio: "ignore" });
  } catch {
    return undefined;
  }
  return { bin, work };
}
const eperm = becomesRoot();
const needsRoot =
  eperm === undefined ? "needs root, cc and setuid (a command that makes itself root's)" : false;

/** Runs `driver` (an ES module's text) as nobody; resolves with how it ended and its stdout and stderr. */
function asNobody(driver: string) {
  const path = join(eperm!.work, `driver-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(path, driver);
  const child = spawn(process.execPath, [path], {
    uid: 65534,
    gid: 65534,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
  child.stderr.setEncoding("utf8").on("data", (c: string) => (err += c));
  return new Promise<{ ended: [number | null, NodeJS.Signals | null]; out: string; err: string }>(
    (r) => child.once("close", (code, signal) => r({ ended: [code, signal], out, err })),
  );
}

test(
  "a command whose group refuses the kill at the time limit (EPERM): runToEnd rejects at once, naming it, and does not wait for it",
  { skip: needsRoot },
  async () => {
    const pidFile = join(eperm!.work, "limit.pid");
    const started = Date.now();
    const { ended, out, err } = await asNobody(
      `import { runToEnd } from ${JSON.stringify(module)};
try {
  await runToEnd(${JSON.stringify(eperm!.bin)}, [${JSON.stringify(pidFile)}], 1_000);
  console.log(JSON.stringify({ resolved: true }));
} catch (e) {
  console.log(JSON.stringify({ kind: e.kind, message: e.message }));
}\n`,
    );
    const command = Number(readFileSync(pidFile, "utf8"));
    grandchildren.push(command);
    assert.deepEqual(ended, [0, null], err);
    const { kind, message } = JSON.parse(out) as { kind: string; message: string };
    assert.equal(kind, "incompatible");
    assert.equal(
      message,
      `${eperm!.bin} did not end in 1000 ms (the time limit): could not send SIGKILL to the ` +
        `process group of ${eperm!.bin} (pid ${command}): EPERM; it may still be running`,
    );
    assert.ok(running(command), "it does run on");
    assert.ok(Date.now() - started < 20_000, "the driver did not wait for the command's 30 s");
  },
);

test(
  "SIGINT while a command whose group refuses signals (EPERM) runs: the CLI says so, runs interrupted, and dies of SIGINT at once",
  { skip: needsRoot },
  async () => {
    const pidFile = join(eperm!.work, "interrupt.pid");
    const marker = join(eperm!.work, "interrupted");
    const { ended, err } = await asNobody(
      `import { existsSync, writeFileSync } from "node:fs";
import { runToEnd } from ${JSON.stringify(module)};
const run = runToEnd(${JSON.stringify(eperm!.bin)}, [${JSON.stringify(pidFile)}], 60_000, process.env, () =>
  writeFileSync(${JSON.stringify(marker)}, ""),
);
const poll = setInterval(() => {
  if (existsSync(${JSON.stringify(pidFile)})) process.kill(process.pid, "SIGINT");
}, 20);
await run;
clearInterval(poll);\n`,
    );
    const command = Number(readFileSync(pidFile, "utf8"));
    grandchildren.push(command);
    assert.deepEqual(ended, [null, "SIGINT"], err);
    assert.equal(
      err,
      `connect-plugin: could not send SIGINT to the process group of ${eperm!.bin} (pid ${command}): EPERM; it may still be running\n`,
    );
    assert.ok(existsSync(marker), "interrupted ran");
    assert.ok(running(command), "it does run on");
  },
);
