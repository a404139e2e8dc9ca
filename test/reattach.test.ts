/**
 * Reattach: a plugin started by hand in debug mode (CONNECT_PLUGIN_DEBUG=1)
 * prints go-plugin's ReattachConfig; a connect-plugin host attaches with
 * reattach(...) and a go-plugin host (go-plugin's own examples/grpc host
 * code, with ClientConfig.Reattach) attaches from the same line. Neither
 * launches it, and neither stops it: close() and go-plugin's Kill() in
 * Test mode detach. The plugin is examples/goplugin/kv-plugin.ts, which
 * serves go-plugin's proto.KV.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { PluginClient, PluginError, parseReattach, reattach, silentLogger } from "../src/index.js";
import { KV, handshake } from "../examples/goplugin/shared.js";
import { goBinaries, removeGoBinaries } from "./go-build.js";
import { decode, encode, isAlive, firstStdoutLine } from "./helpers.js";

const run = promisify(execFile);
const kvPlugin = fileURLToPath(new URL("../examples/goplugin/kv-plugin.js", import.meta.url));
let bin: { host: string };
before(
  async () => {
    bin = await goBinaries({
      host: "github.com/connect-plugin/connect-plugin/go/cmd/kv-host-reattach",
    });
  },
  { timeout: 600_000 },
);
after(removeGoBinaries);

const started: ChildProcess[] = [];
after(() => {
  for (const c of started) if (c.exitCode === null) c.kill("SIGKILL");
});

/** Starts the plugin by hand in debug mode (no cookie) and returns its reattach line. */
async function debugPlugin(): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn(process.execPath, [kvPlugin], {
    env: { ...process.env, CONNECT_PLUGIN_DEBUG: "1", BASIC_PLUGIN: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  started.push(child);
  const line = await firstStdoutLine(child, "debug plugin");
  return { child, line };
}

const client = (line: string): PluginClient<{ kv: typeof KV }> =>
  new PluginClient({
    handshake,
    plugins: { kv: KV },
    logger: silentLogger,
    source: reattach(line),
  });

test("a debug-mode plugin prints go-plugin's ReattachConfig; a connect-plugin host attaches, and close() detaches without stopping it", async () => {
  const { child, line } = await debugPlugin();
  assert.match(
    line,
    /^CONNECT_PLUGIN_REATTACH=\{"Protocol":"grpc","ProtocolVersion":1,"Pid":\d+,"Test":true,"Addr":\{"Network":"unix","String":"\/[^"]+"\}\}$/,
  );
  const config = parseReattach(line);
  assert.equal(config.Pid, child.pid);

  const first = client(line);
  await first.start();
  assert.equal(first.pid, undefined, "the host owns no process");
  assert.match(first.status().where, new RegExp(`^pid ${child.pid} at .* \\(attached\\)$`));
  await first.dispense("kv").put({ key: "a", value: encode("1") });
  await first.close();
  assert.ok(isAlive(child.pid!), "close() stopped a plugin the host did not start");

  // Attach again: the same process, with its state.
  const second = client(line);
  await second.start();
  assert.equal(
    decode((await second.dispense("kv").get({ key: "a" })).value),
    "1\n\nWritten from plugin-ts",
  );
  await second.close();
  assert.ok(isAlive(child.pid!));

  // Ctrl-C stops it, gracefully: exit 0 and its socket directory removed.
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  child.kill("SIGINT");
  assert.equal(await exited, 0);
  assert.equal(existsSync(dirname(config.Addr.String)), false);
});

test("go-plugin's host code attaches to the debug-mode plugin with ClientConfig.Reattach, and detaches", async () => {
  const { child, line } = await debugPlugin();
  const env = {
    ...process.env,
    CONNECT_PLUGIN_REATTACH: line.slice("CONNECT_PLUGIN_REATTACH=".length),
  };
  await run(bin.host, ["put", "greeting", "hello from go"], { env });
  const { stdout } = await run(bin.host, ["get", "greeting"], { env });
  assert.equal(stdout.trim(), "hello from go\n\nWritten from plugin-ts");
  assert.ok(isAlive(child.pid!), "go-plugin's Kill() in Test mode stopped the plugin");
  // And a connect-plugin host sees what the Go host wrote: one process.
  const c = client(line);
  await c.start();
  assert.equal(
    decode((await c.dispense("kv").get({ key: "greeting" })).value),
    "hello from go\n\nWritten from plugin-ts",
  );
  await c.close();
  child.kill("SIGTERM");
});

test("bad reattach configs and a plugin that is gone are refused with clear errors", async () => {
  assert.throws(() => reattach("not json"), /reattach config is not JSON: "not json"/);
  assert.throws(
    () =>
      reattach(
        '{"Protocol":"netrpc","ProtocolVersion":1,"Pid":1,"Addr":{"Network":"udp","String":"x"}}',
      ),
    (e: unknown) =>
      e instanceof PluginError &&
      e.message ===
        'invalid reattach config: Protocol must be "grpc" or "connect", got "netrpc"; ' +
          'Addr.Network must be "unix" or "tcp" (net/rpc and other networks are not supported)',
  );
  const { child, line } = await debugPlugin();
  const config = parseReattach(line);
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGKILL");
  await exited;
  const gone = client(line);
  await assert.rejects(gone.start(), (e: unknown) => {
    assert.ok(e instanceof PluginError);
    assert.equal(
      e.message,
      `cannot reattach to plugin pid ${config.Pid} at ${config.Addr.String}: no such process`,
    );
    return true;
  });
  await gone.close();
});
