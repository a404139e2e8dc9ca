/**
 * When the connection to the plugin is lost, the open calls fail in the
 * order they were opened, as they did while the framed client kept them in
 * a Map, also when there are more of them than the call table has slots
 * (256: the 256th call's id sits in slot 0, the 257th's and later ones' in
 * the overflow map). Over a real unix socket.
 */
import { join } from "node:path";
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient, type ConnectRouter } from "@connectrpc/connect";
import { KV } from "../examples/kv/gen/example/kv/v1/kv_pb.js";
import { createFramedTransport } from "../src/transport/framed/client.js";
import { FramedServer } from "../src/transport/framed/server.js";
import { tempDir } from "./helpers.js";

test("300 open calls fail in the order they were opened when the connection is closed", async () => {
  let started = 0;
  const routes = (router: ConnectRouter): void => {
    router.service(KV, {
      get: () => {
        started++;
        return new Promise(() => {}); // answered never: the connection goes first
      },
    });
  };
  const path = join(tempDir("cpflo-"), "f.sock");
  const server = await FramedServer.listen(routes, { network: "unix", path });
  const transport = createFramedTransport({ network: "unix", address: path });
  try {
    const kv = createClient(KV, transport.transport);
    const n = 300;
    const failed: number[] = [];
    const calls = Array.from({ length: n }, (_, i) =>
      kv.get({ key: String(i) }).then(
        () => assert.fail("answered"),
        () => failed.push(i),
      ),
    );
    // Every call is open on both sides (no timing: the handlers count).
    while (started < n) await new Promise((r) => setTimeout(r, 10));
    transport.close();
    await Promise.all(calls);
    assert.deepEqual(
      failed,
      Array.from({ length: n }, (_, i) => i),
    );
  } finally {
    transport.close();
    await server.close();
  }
});
