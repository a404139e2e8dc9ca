/**
 * The scaffold's command (create-connect-plugin/index.js), run as
 * `npm create` runs it, in a temporary folder: the next steps it prints
 * work when pasted into a shell, whatever the directory is called, and
 * what it says when the user gives a directory it will not write into or
 * an option it does not know.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { tempDir } from "./helpers.js";

const run = promisify(execFile);
const create = fileURLToPath(new URL("../../create-connect-plugin/index.js", import.meta.url));

/** Runs the command in `cwd`; its exit code and output, failure included. */
async function scaffold(
  cwd: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [create, ...args], { cwd });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

for (const dir of ["my-plugin", "My Plugin", "it's $HOME", "back\\slash"]) {
  test(`the printed cd line, pasted into sh, enters ${JSON.stringify(dir)}`, async () => {
    const work = tempDir("cp-create-");
    const out = await scaffold(work, [dir]);
    assert.equal(out.code, 0, out.stderr);
    assert.ok(existsSync(join(work, dir, "package.json")));
    const cd = /^ {2}(cd .+)$/m.exec(out.stdout)?.[1];
    assert.ok(cd !== undefined, out.stdout);
    const { stdout } = await run("sh", ["-c", `${cd} && pwd`], { cwd: work });
    assert.equal(stdout.trim(), join(work, dir));
  });
}

test("the quoting of the cd line", async () => {
  const work = tempDir("cp-create-");
  assert.match((await scaffold(work, ["My Plugin"])).stdout, /^ {2}cd "My Plugin"$/m);
  assert.match((await scaffold(work, ["plain-name"])).stdout, /^ {2}cd plain-name$/m);
});

test("a directory that is not empty, and an unknown option, are refused with what to do", async () => {
  const work = tempDir("cp-create-");
  mkdirSync(join(work, "taken"));
  writeFileSync(join(work, "taken", "notes.txt"), "mine\n");
  const taken = await scaffold(work, ["taken"]);
  assert.equal(taken.code, 1);
  assert.equal(
    taken.stderr,
    `create-connect-plugin: ${join(work, "taken")} exists and is not empty; choose a new directory\n`,
  );
  const option = await scaffold(work, ["--typescript", "x"]);
  assert.equal(option.code, 1);
  assert.equal(
    option.stderr,
    "create-connect-plugin: unexpected --typescript x\n" +
      "usage: npm create connect-plugin@latest [directory]\n",
  );
  assert.ok(!existsSync(join(work, "x")));
});
