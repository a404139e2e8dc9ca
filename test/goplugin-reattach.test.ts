/**
 * GoPluginClient attaching to a Go go-plugin plugin started by hand in debug
 * mode (go-plugin's ServeConfig.Test with a ReattachConfigCh, as Terraform's
 * provider debug mode), from the reattach config it prints: the host never
 * launches it, close() only detaches, and the plugin can be attached again.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { GoPluginClient, PluginError, parseReattach, silentLogger } from "../src/index.js";
import { KV, handshake } from "../examples/goplugin/shared.js";
import { goBinaries, removeGoBinaries } from "./go-build.js";
import {
  decode,
  encode,
  expectUnavailable,
  isAlive,
  tempDir,
  waitFor,
  firstStdoutLine,
} from "./helpers.js";

let bin: { plugin: string };
before(
  async () => {
    bin = await goBinaries({
      plugin: "github.com/connect-plugin/connect-plugin/go/cmd/kv-plugin-debug",
    });
  },
  { timeout: 600_000 },
);
after(removeGoBinaries);

const started: ChildProcess[] = [];
after(() => {
  for (const c of started) if (c.exitCode === null) c.kill("SIGKILL");
});

/** Starts the Go plugin by hand (no cookie, no host) and returns its reattach line. */
async function goDebugPlugin(): Promise<{ child: ChildProcess; line: string }> {
  const dir = tempDir("goreattach-");
  const child = spawn(bin.plugin, [], {
    env: { ...process.env, TMPDIR: dir, PLUGIN_UNIX_SOCKET_DIR: dir },
    stdio: ["ignore", "pipe", "ignore"],
  });
  started.push(child);
  const line = await firstStdoutLine(child, "Go debug plugin");
  return { child, line };
}

const attach = (reattach: string): GoPluginClient<{ kv: typeof KV }> =>
  new GoPluginClient({ handshake, plugins: { kv: KV }, reattach, logger: silentLogger });

test("GoPluginClient attaches to a Go plugin started by hand, close() detaches without stopping it, and it can be attached again", async () => {
  const { child, line } = await goDebugPlugin();
  const config = parseReattach(line);
  assert.equal(config.Protocol, "grpc");
  assert.equal(config.Test, true);
  assert.equal(config.Pid, child.pid);

  const first = attach(line);
  await first.start();
  assert.equal(first.version, 1);
  assert.deepEqual(first.address, { network: config.Addr.Network, address: config.Addr.String });
  assert.equal(first.pid, undefined, "the host owns no process");
  const kv = first.dispense("kv");
  await kv.put({ key: "k", value: encode("v1") });
  assert.equal(decode((await kv.get({ key: "k" })).value), "v1");
  await first.ping();
  await first.close();
  await assert.rejects(kv.get({ key: "k" }), expectUnavailable(/was closed|not running/));
  assert.equal(isAlive(config.Pid), true, "the Go plugin survives close()");
  assert.equal(child.exitCode, null);

  // Attached again: the same process, with the state the first host left.
  const second = attach(line);
  await second.start();
  const kv2 = second.dispense("kv");
  assert.equal(decode((await kv2.get({ key: "k" })).value), "v1");
  await kv2.put({ key: "k", value: encode("v2") });
  assert.equal(decode((await kv2.get({ key: "k" })).value), "v2");

  // Killed by its owner (the test): calls fail with Unavailable naming the plugin.
  child.kill("SIGKILL");
  await waitFor("the Go plugin to exit", () => !isAlive(config.Pid));
  await assert.rejects(
    kv2.get({ key: "k" }),
    expectUnavailable(new RegExp(`reattached pid ${config.Pid}`)),
  );
  await second.close();
});

test("bad reattach configs and an unreachable Go plugin are refused with clear errors", async () => {
  assert.throws(
    () => attach("not json"),
    (e: unknown) =>
      e instanceof PluginError && /reattach config is not JSON: "not json"/.test(e.message),
  );
  assert.throws(
    () =>
      attach(
        '{"Protocol":"netrpc","ProtocolVersion":1,"Pid":1,"Addr":{"Network":"unix","String":"/x"}}',
      ),
    /invalid reattach config: Protocol must be "grpc" or "connect", got "netrpc"/,
  );
  const live = (over: object): string =>
    JSON.stringify({
      Protocol: "grpc",
      ProtocolVersion: 1,
      Pid: process.pid,
      Test: true,
      Addr: { Network: "unix", String: join(tempDir("goreattach-none-"), "no.sock") },
      ...over,
    });
  await assert.rejects(attach(live({ Protocol: "connect" })).start(), {
    kind: "unsupported-protocol",
    message: /its config says protocol "connect", but a go-plugin host speaks only "grpc"/,
  });
  await assert.rejects(attach(live({ ProtocolVersion: 7 })).start(), {
    kind: "version-mismatch",
    message: /its reattach config says \[7\], this host speaks \[1\]/,
  });
  const nowhere = attach(live({}));
  await assert.rejects(nowhere.start(), {
    kind: "unreachable",
    message: /could not reach plugin "reattached pid \d+ at .*no\.sock" over gRPC/,
  });
  // A pid that is gone: refused before dialling.
  const { child, line } = await goDebugPlugin();
  const config = parseReattach(line);
  child.kill("SIGKILL");
  await waitFor("the Go plugin to exit", () => !isAlive(config.Pid));
  await assert.rejects(attach(line).start(), {
    kind: "unreachable",
    message: `cannot reattach to plugin pid ${config.Pid} at unix ${config.Addr.String}: no such process`,
  });
});
