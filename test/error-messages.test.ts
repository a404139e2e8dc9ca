/**
 * The launch errors of the README's table, compared whole: kind and the
 * entire message, advice sentences included, so that no part of what a user
 * reads can change without a test noticing.
 */
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import assert from "node:assert/strict";
import { PluginClient, PluginError, remote, silentLogger, subprocess } from "../src/index.js";
import type { PluginSource } from "../src/index.js";
import { KV, handshake } from "../examples/kv/shared.js";

const fixtureMain = fileURLToPath(new URL("./fixtures/fixture-plugin.js", import.meta.url));
const fixture = (mode: string): PluginSource => subprocess(process.execPath, [fixtureMain, mode]);
const label = (mode: string): string =>
  JSON.stringify(`${process.execPath} ${fixtureMain} ${mode}`);

async function startError(
  source: PluginSource,
  options: { startTimeoutMs?: number; versions?: number[] } = {},
): Promise<PluginError> {
  const c = new PluginClient({
    handshake,
    versionedPlugins: Object.fromEntries((options.versions ?? [1]).map((v) => [v, { kv: KV }])),
    source,
    logger: silentLogger,
    ...(options.startTimeoutMs !== undefined && { startTimeoutMs: options.startTimeoutMs }),
  });
  try {
    await c.start();
  } catch (error) {
    assert.ok(error instanceof PluginError, `expected a PluginError, got ${String(error)}`);
    return error;
  }
  await c.close();
  assert.fail("start() succeeded but should have failed");
}

test("spawn-failed", async () => {
  const e = await startError(subprocess("/nonexistent/kv-plugin"));
  assert.equal(e.kind, "spawn-failed");
  assert.equal(e.message, 'could not start plugin "/nonexistent/kv-plugin": command not found');
});

test("unexpected-output", async () => {
  const e = await startError(fixture("print-before-handshake"));
  assert.equal(e.kind, "unexpected-output");
  assert.equal(
    e.message,
    `plugin ${label("print-before-handshake")}: unexpected output on stdout before the handshake ` +
      `line: "starting the plugin, please wait...". A plugin must print nothing on stdout before ` +
      `it; send logs to stderr. It wrote nothing to stderr.`,
  );
});

test("malformed-handshake", async () => {
  const e = await startError(fixture("malformed"));
  assert.equal(e.kind, "malformed-handshake");
  assert.equal(
    e.message,
    `plugin ${label("malformed")}: malformed handshake line "1|one|unix|/tmp/nowhere.sock|connect|": ` +
      `protocol version "one" is not an integer. It wrote nothing to stderr.`,
  );
});

test("version-mismatch", async () => {
  const e = await startError(fixture("version-3"), { versions: [1, 2] });
  assert.equal(e.kind, "version-mismatch");
  assert.equal(
    e.message,
    `protocol version mismatch with plugin ${label("version-3")}: the plugin speaks [3], ` +
      `this host speaks [1, 2]`,
  );
});

test("exited-before-handshake, with the stderr tail", async () => {
  const e = await startError(fixture("exit-early"));
  assert.equal(e.kind, "exited-before-handshake");
  assert.equal(
    e.message,
    `plugin ${label("exit-early")} exited with code 2 before completing its handshake; ` +
      `is the command a plugin?\n--- plugin stderr (last lines) ---\n` +
      `loading configuration\nfatal: config file /etc/kv.conf not found`,
  );
});

test("exited-before-handshake, quietly", async () => {
  const e = await startError(subprocess("true"));
  assert.equal(
    e.message,
    `plugin "true" exited with code 0 before completing its handshake; is the command a plugin? ` +
      `It wrote nothing to stderr.`,
  );
});

test("handshake-timeout, with the advice and the stderr tail", async () => {
  // sh writes its line at once; the host waits for it (as the stderr tail)
  // only by giving the plugin a start timeout it cannot miss on a busy machine.
  const command = "echo warming up forever >&2; exec sleep 60";
  const e = await startError(subprocess("sh", ["-c", command]), { startTimeoutMs: 3_000 });
  assert.equal(e.kind, "handshake-timeout");
  assert.equal(
    e.message,
    `plugin ${JSON.stringify(`sh -c ${command}`)} did not complete its handshake within 3000 ms; ` +
      `it was killed. A plugin must print its handshake line on stdout once it listens.\n` +
      `--- plugin stderr (last lines) ---\nwarming up forever`,
  );
});

test("unsupported-protocol", async () => {
  const e = await startError(fixture("netrpc"));
  assert.equal(e.kind, "unsupported-protocol");
  assert.equal(
    e.message,
    `plugin ${label("netrpc")} speaks the unsupported protocol "netrpc"; connect-plugin hosts ` +
      `speak "connect" and "grpc" (go-plugin's net/rpc is not supported)`,
  );
});

test("unreachable", async () => {
  // A port that was free a moment ago: nothing listens on it.
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const e = await startError(remote(`http://127.0.0.1:${port}`));
  assert.equal(e.kind, "unreachable");
  assert.equal(
    e.message,
    `could not complete the handshake with http://127.0.0.1:${port}/: ` +
      `[unavailable] connect ECONNREFUSED 127.0.0.1:${port}`,
  );
});
