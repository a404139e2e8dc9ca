/**
 * Every way a plugin can fail to start, with the message a user sees.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  PluginClient,
  PluginError,
  silentLogger,
  subprocess,
  type PluginSource,
} from "../src/index.js";
import { KV, handshake } from "../examples/kv/shared.js";
import { fixture, isAlive, MemoryLogger, kvClient } from "./helpers.js";

function client(
  source: PluginSource,
  options: { startTimeoutMs?: number; cookie?: string; versions?: number[] } = {},
) {
  const versions = options.versions ?? [1];
  return new PluginClient({
    handshake: { ...handshake, magicCookieValue: options.cookie ?? handshake.magicCookieValue },
    versionedPlugins: Object.fromEntries(versions.map((v) => [v, { kv: KV }])),
    source,
    logger: silentLogger,
    ...(options.startTimeoutMs !== undefined && { startTimeoutMs: options.startTimeoutMs }),
  });
}

/** Starts a client that must fail, and returns its PluginError. */
async function startError(c: PluginClient): Promise<PluginError> {
  try {
    await c.start();
  } catch (error) {
    assert.ok(error instanceof PluginError, `expected a PluginError, got ${String(error)}`);
    return error;
  }
  await c.close();
  assert.fail("start() succeeded but should have failed");
}

test("a command that does not exist", async () => {
  const e = await startError(client(subprocess("/nonexistent/kv-plugin")));
  assert.equal(e.kind, "spawn-failed");
  assert.match(e.message, /could not start plugin "\/nonexistent\/kv-plugin": command not found/);
});

test("a plugin started with the wrong magic cookie", async () => {
  const e = await startError(client(fixture("kv"), { cookie: "not-hello" }));
  assert.equal(e.kind, "cookie-mismatch");
  assert.match(
    e.message,
    /refused to start: it is not a plugin for this host, or its magic cookie KV_PLUGIN does not match \(it exited with code 1\)/,
  );
  assert.match(
    e.message,
    /magic cookie mismatch: KV_PLUGIN has a value this plugin does not expect/,
  );
});

test("a command that is not a plugin and prints something else", async () => {
  const e = await startError(client(subprocess("sh", ["-c", "echo 'usage: tool [options]'"])));
  assert.equal(e.kind, "unexpected-output");
  assert.match(
    e.message,
    /^plugin "sh -c echo 'usage: tool \[options\]'": unexpected output on stdout before the handshake line: "usage: tool \[options\]"\. A plugin must print nothing on stdout before it; send logs to stderr\. It wrote nothing to stderr\.$/,
  );
});

test("a command that is not a plugin and exits quietly", async () => {
  const e = await startError(client(subprocess("true")));
  assert.equal(e.kind, "exited-before-handshake");
  assert.match(
    e.message,
    /"true" exited with code 0 before completing its handshake; is the command a plugin\? It wrote nothing to stderr\./,
  );
});

test("a plugin that prints to stdout before its handshake", async () => {
  const e = await startError(client(fixture("print-before-handshake")));
  assert.equal(e.kind, "unexpected-output");
  assert.match(
    e.message,
    /: unexpected output on stdout before the handshake line: "starting the plugin, please wait\.\.\."\./,
  );
  assert.match(e.message, /send logs to stderr/);
});

test("a malformed handshake line", async () => {
  const e = await startError(client(fixture("malformed")));
  assert.equal(e.kind, "malformed-handshake");
  assert.match(
    e.message,
    /fixture-plugin\.js malformed": malformed handshake line "1\|one\|unix\|\/tmp\/nowhere\.sock\|connect\|": protocol version "one" is not an integer\. It wrote nothing to stderr\.$/,
  );
});

test("a protocol version mismatch lists both sides' versions", async () => {
  const e = await startError(client(fixture("version-3"), { versions: [1, 2] }));
  assert.equal(e.kind, "version-mismatch");
  assert.match(
    e.message,
    /protocol version mismatch with plugin .*: the plugin speaks \[3\], this host speaks \[1, 2\]/,
  );
});

test("a plugin that exits before its handshake, with the tail of its stderr", async () => {
  const e = await startError(client(fixture("exit-early")));
  assert.equal(e.kind, "exited-before-handshake");
  assert.match(e.message, /exited with code 2 before completing its handshake/);
  assert.match(
    e.message,
    /--- plugin stderr \(last lines\) ---\nloading configuration\nfatal: config file \/etc\/kv\.conf not found/,
  );
  assert.match(e.stderrTail ?? "", /config file \/etc\/kv\.conf not found/);
});

test("a plugin that never completes its handshake is killed at the start timeout", async () => {
  const logger = new MemoryLogger();
  // A shell, not a Node fixture: it writes its stderr line within
  // milliseconds even on a loaded machine, where Node may need longer than
  // the start timeout just to boot (the message would then carry no stderr).
  const c = kvClient(hangingPlugin(), { logger, startTimeoutMs: 2_000 });
  const started = performance.now();
  const e = await startError(c);
  const took = performance.now() - started;
  assert.equal(e.kind, "handshake-timeout");
  assert.match(e.message, /did not complete its handshake within 2000 ms; it was killed/);
  assert.match(e.message, /warming up forever/);
  // Not before the timeout; the upper bound only catches a hang.
  assert.ok(took >= 1_950 && took < 60_000, `gave up after ${took.toFixed(0)} ms`);
});

test("a failed start leaves no process behind", async () => {
  const logger = new MemoryLogger();
  const c = kvClient(hangingPlugin(), { logger, startTimeoutMs: 2_000 });
  await startError(c);
  const pidLine = logger.records.find((r) => r.message === "warming up forever");
  assert.ok(pidLine, "the plugin's stderr reached the logger");
  // The fixture ran as the process group leader; the whole group is gone.
  const pids = await childPidsOf(process.pid);
  for (const pid of pids) assert.equal(isAlive(pid), false, `process ${pid} survived`);
});

/** A "plugin" that says it is starting and never prints a handshake line. */
function hangingPlugin(): PluginSource {
  return subprocess("/bin/sh", ["-c", "echo 'warming up forever' >&2; exec sleep 600"]);
}

async function childPidsOf(pid: number): Promise<number[]> {
  const { readFile, readdir } = await import("node:fs/promises");
  const out: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) === pid && fields[0] !== "Z") out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

test("dispense before start, and an unknown plugin name", async () => {
  const c = client(fixture("kv"));
  assert.throws(() => c.dispense("kv"), /is not started; await client\.start\(\) first/);
  await c.start();
  try {
    const loose = c as unknown as { dispense(name: string): unknown };
    assert.throws(
      () => loose.dispense("sql"),
      (e: unknown) =>
        e instanceof PluginError &&
        e.kind === "unknown-plugin" &&
        /this host has no plugin named "sql" at protocol version 1 \(it knows: "kv"\)/.test(
          e.message,
        ),
    );
  } finally {
    await c.close();
  }
  assert.throws(() => c.dispense("kv"), /is closed/);
});
