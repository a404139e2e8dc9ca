/**
 * The framed client refuses a request message over its writeMaxBytes before
 * anything is sent: the call is rejected (never a throw at the caller), with
 * connect-node's wording, and the plugin's end of the socket gets no byte.
 */
import assert from "node:assert/strict";
import * as net from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { FramedConnection } from "../../../../src/transport/framed/client.js";
import { CallRunner } from "../../../../src/transport/run-call.js";
import { KV } from "../../../../examples/kv/shared.js";
import { tempDir } from "../../../helpers.js";

test("a request over writeMaxBytes is a rejection naming the limit, and nothing reaches the socket", async () => {
  const path = join(tempDir("cp-framed-limit-"), "plugin.sock");
  let received = 0;
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    socket.on("data", (chunk: Buffer) => (received += chunk.length));
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const connection = new FramedConnection({ network: "unix", address: path }, undefined, "test", {
    writeMaxBytes: 64,
  });
  const kv = createClient(KV, new CallRunner(connection));
  try {
    let call: Promise<unknown> | undefined;
    assert.doesNotThrow(() => {
      call = kv.put({ key: "big", value: new Uint8Array(100) });
    });
    await assert.rejects(call!, (e: unknown) => {
      const ce = ConnectError.from(e);
      assert.equal(ce.code, Code.ResourceExhausted);
      assert.match(ce.rawMessage, /^message size \d+ is larger than configured writeMaxBytes 64$/);
      return true;
    });
    // Nothing to wait for when nothing is sent: a moment for stray bytes to land.
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(received, 0, "bytes of the refused call reached the plugin");
    assert.equal(connections, 0, "the refused call opened the connection");
  } finally {
    connection.close();
    await new Promise((resolve) => server.close(resolve));
  }
});
