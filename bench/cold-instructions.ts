/**
 * Instructions a cold start executes, counted by valgrind's callgrind
 * (`npm run bench:cold -- --instructions`). Unlike wall or CPU time they do
 * not depend on what else the machine runs: two builds of the same plugin
 * counted in one run differed by 0.3%, `node -e 0` by 0.8% between runs,
 * so their ratio is the figure to judge a change by on a shared machine.
 * Callgrind runs a process a hundred times slower or more (20-60 s a
 * launch on a loaded 2-core machine), so each contender is counted once.
 *
 * A plugin is launched under callgrind by a connect-plugin host (framed),
 * and its counters are dumped (`callgrind_control --dump`) once its first
 * call has been answered: the count runs from the process's start to its
 * first answer, as the CPU figure of `npm run bench:cold` does. All of the
 * process's threads are counted (V8's compiler and GC helpers included).
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { snapshotBenchPlugin } from "./bundle.js";
import { startFloor } from "./cold-floor.js";
import { Bench, benchHandshake } from "./service.js";
import { PluginClient, silentLogger, subprocess } from "../src/index.js";

const run = promisify(execFile);

/** True when valgrind and callgrind_control are on PATH (scripts/setup-test-deps.sh installs them). */
export async function callgrindAvailable(): Promise<boolean> {
  try {
    await run("valgrind", ["--version"]);
    await run("callgrind_control", ["--version"]);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs `body` with callgrind's arguments; returns the instructions of the
 * first dump (callgrind_control --dump), or of the whole run when none was made.
 */
async function counted(body: (callgrindArgs: string[]) => Promise<void>): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "cold-callgrind-"));
  try {
    await body([
      "--tool=callgrind",
      // V8 writes and rewrites the machine code it runs.
      "--smc-check=all",
      `--callgrind-out-file=${join(dir, "out.%p")}`,
    ]);
    // out.PID.1 is the first dump; out.PID what was left at exit.
    const files = readdirSync(dir);
    const file = files.find((f) => f.endsWith(".1")) ?? files[0];
    if (file === undefined) throw new Error("callgrind wrote no output");
    const total = /^(?:totals|summary): (\d+)/m.exec(readFileSync(join(dir, file), "latin1"));
    if (total === null) throw new Error(`no instruction total in callgrind's ${file}`);
    return Number(total[1]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The bench plugin's startup snapshot built under valgrind (plugin-snapshot-valgrind/,
 * about 15 s): node refuses the ordinary blob there ("built with a different version
 * of V8 or with different V8 configurations"): the tag V8 checks covers its version,
 * its flags and the CPU features it detected, and valgrind's emulated CPU has fewer.
 */
export const valgrindSnapshot = (): Promise<string> =>
  snapshotBenchPlugin(["valgrind", "--tool=none"]);

/**
 * Instructions of the floor (bench/cold-floor.ts, a bare TLS echo server
 * with an AutoMTLS certificate), from its start to its echo.
 */
export async function floorInstructions(): Promise<number> {
  return counted(async (callgrind) => {
    const floor = await startFloor(["valgrind", ...callgrind]);
    try {
      await run("callgrind_control", ["--dump", String(floor.pid)]);
    } finally {
      await floor.close();
    }
  });
}

/** Instructions of `node -e 0`, start to exit. */
export async function nodeBootInstructions(): Promise<number> {
  return counted(async (callgrind) => {
    await run("valgrind", [...callgrind, process.execPath, "-e", "0"]);
  });
}

/**
 * Instructions of a plugin launched as `node ...args`, from its start to its
 * first answer (the Handshake RPC, then one call).
 */
export async function firstAnswerInstructions(
  args: readonly string[],
  autoMTLS: boolean,
): Promise<number> {
  return counted(async (callgrind) => {
    const client = new PluginClient({
      handshake: benchHandshake,
      plugins: { bench: Bench },
      source: subprocess("valgrind", [...callgrind, process.execPath, ...args], { autoMTLS }),
      logger: silentLogger,
      // Callgrind runs a plugin about 50 times slower, more on a loaded machine.
      startTimeoutMs: 600_000,
    });
    try {
      await client.start();
      await client.dispense("bench").echo({ value: new Uint8Array(1) });
      const pid = /^pid (\d+):/.exec(client.status().where)?.[1];
      if (pid === undefined) throw new Error("the plugin's process id is unknown");
      await run("callgrind_control", ["--dump", pid]);
    } finally {
      await client.close();
    }
  });
}
