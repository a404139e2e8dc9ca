/**
 * killGroup, on real processes: a detached child's group dies with the
 * grandchild it left in it; a group already gone, or a child that never
 * started, is no error; a group that refuses the signal (EPERM: here a
 * process run as nobody signalling root's group) returns the error, not
 * thrown, and the group runs on.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, test } from "node:test";
import { killGroup } from "../../../src/process/kill-group.js";
import { isRunning, tempDir, waitFor } from "../../helpers.js";

const dir = tempDir("kill-group-");
const left: number[] = [];
after(() => {
  for (const pid of left) if (isRunning(pid)) process.kill(pid, "SIGKILL");
});

/** A detached child (a group of its own) that starts a grandchild in its group; resolves once both run. */
async function childWithGrandchild(
  name: string,
): Promise<{ child: ChildProcess; grandchild: number }> {
  const pidFile = join(dir, `${name}.pid`);
  const script = join(dir, `${name}.cjs`);
  writeFileSync(
    script,
    `const g = require("node:child_process").spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
require("node:fs").writeFileSync(${JSON.stringify(pidFile)}, String(g.pid));
setInterval(() => {}, 1000);\n`,
  );
  const child = spawn(process.execPath, [script], { detached: true, stdio: "ignore" });
  left.push(child.pid!);
  let grandchild = 0;
  await waitFor(`the grandchild of ${name}`, () => {
    try {
      grandchild = Number(readFileSync(pidFile, "utf8"));
    } catch {
      return false;
    }
    return grandchild > 0;
  });
  left.push(grandchild);
  return { child, grandchild };
}

test("killGroup kills a detached child and the grandchild it left in its group", async () => {
  const { child, grandchild } = await childWithGrandchild("kills");
  const exited = new Promise((r) => child.once("exit", (_code, signal) => r(signal)));
  assert.equal(killGroup(child, "SIGKILL"), undefined);
  assert.equal(await exited, "SIGKILL");
  await waitFor("the grandchild to die with the group", () => !isRunning(grandchild));
});

test("a group already gone is no error (ESRCH), nor a child that never started", async () => {
  const child = spawn(process.execPath, ["-e", ""], { detached: true, stdio: "ignore" });
  await new Promise((r) => child.once("exit", r));
  assert.equal(killGroup(child, "SIGKILL"), undefined);

  const never = spawn(join(dir, "no-such-command"), [], { detached: true, stdio: "ignore" });
  const failed = new Promise<Error>((r) => never.once("error", r));
  assert.equal(killGroup(never, "SIGKILL"), undefined);
  assert.match((await failed).message, /ENOENT/);
});

test(
  "a group that refuses the signal (EPERM) returns the error, not thrown, and runs on",
  {
    skip:
      process.platform === "win32" || process.getuid?.() !== 0
        ? "needs root, to run the caller as nobody"
        : false,
  },
  async () => {
    const { child, grandchild } = await childWithGrandchild("refuses");
    const helper = fileURLToPath(new URL("../../../src/process/kill-group.js", import.meta.url));
    // As nobody, the number of root's group is a group that is not ours.
    const probe = spawn(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `const { killGroup } = await import(${JSON.stringify(helper)});
let thrown = "none";
let error;
try { error = killGroup({ pid: ${child.pid}, kill: () => false }, "SIGKILL"); } catch (e) { thrown = e.code; }
process.stdout.write(JSON.stringify({ thrown, code: error?.code }));`,
      ],
      { uid: 65534, gid: 65534, stdio: ["ignore", "pipe", "inherit"] },
    );
    let out = "";
    probe.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
    const code = await new Promise((r) => probe.once("exit", r));
    assert.equal(code, 0);
    assert.deepEqual(JSON.parse(out), { thrown: "none", code: "EPERM" });
    assert.ok(isRunning(child.pid!) && isRunning(grandchild), "the group runs on");
    assert.equal(killGroup(child, "SIGKILL"), undefined);
  },
);
