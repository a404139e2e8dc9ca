/**
 * The soak harness (soak/): its leak checks catch a leak of each kind, and a
 * short pass through every transport and both start/stop cycles ends with
 * no failed call and every handle back to its baseline. Memory is judged
 * only by the long run (`npm run soak`): a short one cannot tell warm-up
 * from growth.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { handles, leaksAgainst } from "../soak/resources.js";
import { tempDir } from "./helpers.js";

test("the leak check names an open fd, a live child and a temp entry left behind, and passes once they are gone", async () => {
  const root = tempDir("cp-soak-check-");
  const baseline = handles(root);
  const fd = openSync(fileURLToPath(import.meta.url), "r");
  const child = spawn("sleep", ["30"]);
  mkdirSync(join(root, "cp-left"));
  try {
    const leaks = await leaksAgainst(baseline, root, 0);
    assert.equal(leaks.length, 3, leaks.join("; "));
    assert.match(leaks[0]!, /^\d+ more open fds$/);
    assert.equal(leaks[1], `child processes left: ${child.pid}`);
    assert.equal(leaks[2], "temp entries left: cp-left");
  } finally {
    closeSync(fd);
    child.kill("SIGKILL");
  }
  await new Promise((resolve) => child.once("exit", resolve));
  rmSync(join(root, "cp-left"), { recursive: true });
  assert.deepEqual(await leaksAgainst(baseline, root, 5_000), []);
});

test("a short soak through every transport and both cycles: no failed call, handles back to baseline", async () => {
  const out = join(tempDir("cp-soak-run-"), "soak.json");
  const main = fileURLToPath(new URL("../soak/main.js", import.meta.url));
  const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
    const child = execFile(
      process.execPath,
      [
        "--expose-gc",
        main,
        "--calls",
        "5000",
        "--cycles",
        "20",
        "--node-cycles",
        "3",
        "--no-memory-target",
        "--json",
        out,
      ],
      { maxBuffer: 16 << 20 },
      (_error, stdout) => resolve({ code: child.exitCode, stdout }),
    );
  });
  assert.equal(code, 0, stdout);
  const report = JSON.parse(readFileSync(out, "utf8")) as {
    memoryTarget: boolean;
    phases: { name: string; operations: number; failed: number; leaks: string[]; pass: boolean }[];
  };
  assert.equal(report.memoryTarget, false);
  assert.deepEqual(
    report.phases.map((p) => [p.name, p.operations, p.failed, p.leaks, p.pass]),
    [
      ["in-process", 5000, 0, [], true],
      ["framed", 5000, 0, [], true],
      ["http2", 5000, 0, [], true],
      ["go-plugin", 5000, 0, [], true],
      ["cycles:go", 20, 0, [], true],
      ["cycles:node", 3, 0, [], true],
    ],
  );
});
