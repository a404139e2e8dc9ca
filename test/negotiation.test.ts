/**
 * Choosing the local wire protocol: the host lists what it accepts in
 * CONNECT_PLUGIN_TRANSPORTS, the plugin announces its pick in the handshake
 * line, and the host can force Connect over HTTP/2.
 */
import { spawn } from "node:child_process";
import { test } from "node:test";
import assert from "node:assert/strict";
import { subprocess } from "../src/index.js";
import { chooseWireProtocol } from "../src/plugin/serve.js";
import { parseHandshakeLine } from "../src/protocol/handshake-line.js";
import { decode, encode, kvClient, kvPluginMain, tempDir } from "./helpers.js";

test("the plugin picks the first protocol of the host's list that it speaks", () => {
  assert.equal(chooseWireProtocol("framed,connect"), "framed");
  assert.equal(chooseWireProtocol("connect,framed"), "connect");
  assert.equal(chooseWireProtocol("quic,connect"), "connect");
  assert.equal(chooseWireProtocol("connect"), "connect");
  // go-plugin hosts send no list: they get go-plugin's protocol.
  assert.equal(chooseWireProtocol(undefined), "grpc");
  assert.equal(chooseWireProtocol(""), "grpc");
});

/** Starts the KV plugin as a host would, and returns its handshake line. */
async function handshakeLineFor(transports: string): Promise<string> {
  const child = spawn(process.execPath, [kvPluginMain], {
    env: {
      ...process.env,
      KV_PLUGIN: "hello",
      PLUGIN_PROTOCOL_VERSIONS: "1",
      PLUGIN_UNIX_SOCKET_DIR: tempDir("cpn-"),
      CONNECT_PLUGIN_TRANSPORTS: transports,
    },
    stdio: ["pipe", "pipe", "ignore"],
  });
  try {
    return await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (c: Buffer) => {
        out += c.toString();
        const nl = out.indexOf("\n");
        if (nl >= 0) resolve(out.slice(0, nl));
      });
      child.once("exit", (code) =>
        reject(new Error(`plugin exited with ${code} before its handshake`)),
      );
    });
  } finally {
    child.kill("SIGKILL");
  }
}

test("a launched plugin announces framed, or connect when the host lists only that", async () => {
  assert.equal(parseHandshakeLine(await handshakeLineFor("framed,connect")).protocol, "framed");
  assert.equal(parseHandshakeLine(await handshakeLineFor("connect")).protocol, "connect");
});

test("a host can force Connect over HTTP/2, and every call kind still works", async () => {
  const client = kvClient(
    subprocess(process.execPath, [kvPluginMain], { transports: ["connect"] }),
  );
  await client.start();
  try {
    const kv = client.dispense("kv");
    await kv.put({ key: "a", value: encode("1") });
    assert.equal(decode((await kv.get({ key: "a" })).value), "1");
    const res = await kv.putMany(
      (async function* () {
        yield { key: "b", value: encode("2") };
      })(),
    );
    assert.equal(res.count, 1);
  } finally {
    await client.close();
  }
});
