/**
 * A plugin written in Go with connect-go, without go-plugin
 * (go/cmd/kv-plugin-connect): it serves connectplugin.v1 and the KV
 * example's service, and the TypeScript host uses it like any other
 * connect-plugin plugin, as a subprocess and as a remote service.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, test } from "node:test";
import { PluginClient, PluginError, remote, subprocess } from "../src/index.js";
import { KV, handshake } from "../examples/kv/shared.js";
import { goBinaries, removeGoBinaries } from "./go-build.js";
import { MemoryLogger, decode, encode } from "./helpers.js";

let bin: { kvConnect: string };
before(
  async () => {
    bin = await goBinaries({
      kvConnect: "github.com/connect-plugin/connect-plugin/go/cmd/kv-plugin-connect",
    });
  },
  { timeout: 600_000 },
);
after(removeGoBinaries);

test("the connect-go plugin as a subprocess: handshake, calls, health, graceful shutdown", async () => {
  const logger = new MemoryLogger();
  const client = new PluginClient({
    handshake,
    plugins: { kv: KV },
    source: subprocess(bin.kvConnect, []),
    logger,
  });
  try {
    await client.start();
    assert.deepEqual(client.availablePlugins, [
      {
        name: "kv",
        version: "1.0.0-go",
        capabilities: ["connect-go"],
        service: "example.kv.v1.KV",
      },
    ]);
    const kv = client.dispense("kv");
    await kv.put({ key: "a", value: encode("1") });
    const res = await kv.get({ key: "a" });
    assert.equal(decode(res.value), "go:1", "the Go implementation answered");
    assert.equal(res.found, true);
    assert.equal(await client.health(), "serving");
  } finally {
    await client.close();
  }
  assert.deepEqual([client.exit?.code, client.exit?.expected], [0, true]);
  const stopped = logger.records.find((r) => r.message === "plugin stopped");
  assert.equal(stopped?.fields.reason, "host closed the plugin client");
});

test("the connect-go plugin refuses a host with another protocol version", async () => {
  const client = new PluginClient({
    handshake: { ...handshake, protocolVersion: 2 },
    plugins: { kv: KV },
    source: subprocess(bin.kvConnect, []),
    logger: new MemoryLogger(),
  });
  await assert.rejects(client.start(), (e: unknown) => {
    assert.ok(e instanceof PluginError);
    assert.equal(e.kind, "version-mismatch");
    assert.equal(
      e.message,
      `protocol version mismatch with plugin "${bin.kvConnect}": the plugin speaks [1], this host speaks [2]`,
    );
    return true;
  });
});

test("the connect-go plugin as a remote service", async () => {
  const child = spawn(bin.kvConnect, [], {
    env: { ...process.env, CONNECT_PLUGIN_LISTEN: "127.0.0.1:0" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let buffered = "";
      child.stderr.on("data", (chunk: Buffer) => {
        buffered += chunk.toString();
        const match = /"url":"([^"]+)"/.exec(buffered);
        if (match?.[1] !== undefined) resolve(match[1]);
      });
      child.once("exit", (code) => reject(new Error(`plugin exited with ${code}: ${buffered}`)));
    });
    for (const httpVersion of ["2", "1.1"] as const) {
      const client = new PluginClient({
        handshake,
        plugins: { kv: KV },
        source: remote(url, { httpVersion }),
        logger: new MemoryLogger(),
      });
      try {
        await client.start();
        const kv = client.dispense("kv");
        await kv.put({ key: httpVersion, value: encode("remote") });
        assert.equal(decode((await kv.get({ key: httpVersion })).value), "go:remote");
      } finally {
        await client.close();
      }
    }
    // A remote plugin belongs to no single host: closing a client left it running.
    assert.equal(child.exitCode, null);
  } finally {
    child.kill("SIGKILL");
    await exited;
  }
});

test("autoMTLS: true refuses a plugin that does not support it, with the reason", async () => {
  const client = new PluginClient({
    handshake,
    plugins: { kv: KV },
    source: subprocess(bin.kvConnect, [], { autoMTLS: true }),
    logger: new MemoryLogger(),
  });
  await assert.rejects(client.start(), {
    name: "PluginError",
    kind: "malformed-handshake",
    message:
      `plugin "${bin.kvConnect}" sent no certificate in its handshake line, but autoMTLS is ` +
      `required; the plugin does not support go-plugin's AutoMTLS (PLUGIN_CLIENT_CERT)`,
  });
  assert.equal(client.exit?.signal, "SIGKILL", "the plugin was not left running");
});
