/**
 * Operating-system limits on a plugin subprocess: a plugin that allocates
 * without end, one that spins, and one that opens files without end are each
 * stopped by the kernel, and the exit (and the calls that follow) name the
 * limit. The limits are rlimits set by a /bin/sh wrapper (resource-limits.ts).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ConnectError } from "@connectrpc/connect";
import { GoPluginClient, subprocess, type PluginExit, type ResourceLimits } from "../src/index.js";
import { KV as GoKV, handshake as goHandshake } from "../examples/goplugin/shared.js";
import type { SupervisorEvent } from "../src/manager/supervisor.js";
import { generationPluginDir, setupGeneration } from "./generation-helpers.js";
import { execFileSync } from "node:child_process";
import { exceededLimit, limitedCommand } from "../src/host/resource-limits.js";
import { MemoryLogger, encode, kvClient, waitFor } from "./helpers.js";
import { fileURLToPath } from "node:url";

const main = fileURLToPath(new URL("./fixtures/fixture-plugin.js", import.meta.url));

async function runUntilStopped(
  mode: string,
  limits: ResourceLimits,
): Promise<{ exit: PluginExit; callError: string; ms: number }> {
  const client = kvClient(subprocess(process.execPath, [main, mode], { limits }));
  await client.start();
  const started = performance.now();
  try {
    const exit = await new Promise<PluginExit>((resolve) => client.onExit(resolve));
    const ms = performance.now() - started;
    const callError = await client
      .dispense("kv")
      .get({ key: "k" })
      .then(
        () => "the call succeeded",
        (e: unknown) => ConnectError.from(e).rawMessage,
      );
    return { exit, callError, ms };
  } finally {
    await client.close();
  }
}

test("a plugin that allocates without end is stopped at its memory limit, which its exit names", async () => {
  const { exit, callError, ms } = await runUntilStopped("allocate-forever", {
    memoryBytes: 256 * 1024 * 1024,
  });
  assert.equal(exit.expected, false, "counted as a crash");
  assert.equal(exit.exceeded, "its memory limit of 256 MiB");
  assert.match(
    exit.description,
    /^exceeded its memory limit of 256 MiB \((killed by SIG[A-Z]+|exited with code \d+)\)$/,
  );
  assert.match(callError, /exceeded its memory limit of 256 MiB/);
  assert.ok(ms < 30_000, `stopped after ${ms.toFixed(0)} ms`);
});

test("a plugin that spins is stopped at its CPU time limit (SIGXCPU)", async () => {
  const { exit, callError } = await runUntilStopped("spin-forever", { cpuSeconds: 2 });
  assert.equal(exit.expected, false);
  assert.equal(exit.signal, "SIGXCPU");
  assert.equal(exit.description, "exceeded its CPU time limit of 2 s (killed by SIGXCPU)");
  assert.match(callError, /exceeded its CPU time limit of 2 s/);
});

test("a plugin that opens files without end fails at its open-files limit, which its exit names", async () => {
  const { exit, callError } = await runUntilStopped("open-files-forever", { openFiles: 256 });
  assert.equal(exit.expected, false);
  assert.equal(exit.exceeded, "its open-files limit of 256");
  assert.match(exit.description, /^exceeded its open-files limit of 256 \(exited with code \d+\)$/);
  assert.match(callError, /exceeded its open-files limit of 256/);
});

test("limits are checked when the source is made, and none leaves the command as it is", () => {
  assert.throws(
    () => subprocess("plugin", [], { limits: { cpuSeconds: 0 } }),
    /^Error: resource limit cpuSeconds must be a whole number ≥ 1, got 0$/,
  );
  assert.throws(
    () => subprocess("plugin", [], { limits: { memoryBytes: 1.5 } }),
    /resource limit memoryBytes must be a whole number ≥ 1, got 1\.5/,
  );
  assert.deepEqual(limitedCommand("plugin", ["a b"], undefined), {
    command: "plugin",
    args: ["a b"],
  });
  assert.deepEqual(limitedCommand("plugin", ["a b"], { openFiles: 10, memoryBytes: 1024 * 1024 }), {
    command: "/bin/sh",
    args: ["-c", 'ulimit -d 1024 && ulimit -n 10 && exec "$0" "$@"', "plugin", "a b"],
  });
});

test("a plugin that exits with 0 ran into no limit, whatever its last stderr lines say", () => {
  const limits = { memoryBytes: 1024 * 1024, openFiles: 64 };
  const tail = "cache out of memory, evicting\nEMFILE on a probe, retrying\n";
  assert.equal(exceededLimit(limits, 0, null, tail), undefined);
  assert.equal(exceededLimit(limits, 1, null, tail), "its memory limit of 1 MiB");
  assert.equal(exceededLimit(limits, null, "SIGABRT", tail), "its memory limit of 1 MiB");
});

test("the ulimit wrapper passes the command and its arguments through untouched (spaces, quotes, $, globs)", () => {
  const args = [
    "a b",
    "it's",
    '"q"',
    "$HOME",
    "$(touch /tmp/x)",
    "`id`",
    "*",
    "",
    "-n",
    "; exit 3",
  ];
  const run = limitedCommand(
    process.execPath,
    ["-e", "process.stdout.write(JSON.stringify(process.argv.slice(1)))", ...args],
    { openFiles: 64 },
  );
  const out = execFileSync(run.command, run.args, { encoding: "utf8" });
  assert.deepEqual(JSON.parse(out), args);
});

test("GoPluginClient applies limits too: a go-plugin plugin past its memory limit exits naming it", async () => {
  const client = new GoPluginClient({
    handshake: goHandshake,
    plugins: { kv: GoKV },
    command: process.execPath,
    args: [fileURLToPath(new URL("./fixtures/goplugin-fixture.js", import.meta.url))],
    limits: { memoryBytes: 256 * 1024 * 1024 },
    logger: new MemoryLogger(),
  });
  try {
    await client.start();
    const exited = new Promise<PluginExit>((resolve) => client.onExit(resolve));
    await client.dispense("kv").put({ key: "allocate", value: new Uint8Array() });
    const exit = await exited;
    assert.equal(exit.expected, false);
    assert.equal(exit.exceeded, "its memory limit of 256 MiB");
  } finally {
    await client.close();
  }
});

test("a managed plugin's manifest limits are enforced, and the supervisor counts the stop as a crash and restarts it", async () => {
  // Version 1.0.0 of the generation fixture, spinning a second after it serves.
  const dir = await generationPluginDir(
    "1.0.0",
    `process.env.FIXTURE_VERSION = "1.0.0";\n` +
      `await import("./generation-plugin.mjs");\n` +
      `setTimeout(() => { for (;;); }, 1_000);\n`,
    { limits: { cpuSeconds: 2 } },
  );
  const { manager, handle, events, kv } = await setupGeneration(
    { restart: { maxRestarts: 5, windowMs: 60_000, initialBackoffMs: 50 } },
    dir,
  );
  try {
    await kv.put({ key: "a", value: encode("1") });
    const crash = () =>
      events.find((e): e is Extract<SupervisorEvent, { type: "crashed" }> => e.type === "crashed");
    await waitFor("the crash at the CPU limit", () => crash() !== undefined, 30_000);
    assert.equal(crash()?.exit.exceeded, "its CPU time limit of 2 s");
    assert.equal(
      crash()?.exit.description,
      "exceeded its CPU time limit of 2 s (killed by SIGXCPU)",
    );
    assert.equal(crash()?.restartInMs, 50);
    await waitFor(
      "the restart",
      () => events.some((e) => e.type === "started" && e.restarts === 1),
      30_000,
    );
    // The restarted process serves (until its own limit), under the same limit.
    await kv.put({ key: "b", value: encode("2") });
    assert.equal(handle.restarts, 1);
  } finally {
    await manager.close();
  }
});
