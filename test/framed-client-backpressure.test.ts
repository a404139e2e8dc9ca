/**
 * The framed client's request pump waits for 'drain' whenever the socket is
 * over its high-water mark. A long client stream waits many times: each wait
 * must leave no listener behind on the socket (a 'close' listener left per
 * wait grew without bound and set off MaxListenersExceededWarning).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import * as net from "node:net";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { KV } from "../examples/kv/gen/example/kv/v1/kv_pb.js";
import { createFramedTransport } from "../src/transport/framed/client.js";
import { tempDir } from "./helpers.js";

test("a long client stream over a framed socket waits for drain many times and leaves no listener behind", async (t) => {
  // A real peer that reads and discards every byte, and never answers: the call stays open.
  let received = 0;
  const server = net.createServer((s) => s.on("data", (c: Buffer) => (received += c.length)));
  const path = join(tempDir("framed-drain-"), "s.sock");
  server.listen(path);
  await once(server, "listening");
  t.after(() => server.close());
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(`${w.name}: ${w.message}`);
  process.on("warning", onWarning);
  t.after(() => process.off("warning", onWarning));
  const transport = createFramedTransport({ network: "unix", address: path });
  const MESSAGES = 60;
  const value = new Uint8Array(512 * 1024);
  let produced = 0;
  const call = createClient(KV, transport.transport).putMany(
    (async function* () {
      for (; produced < MESSAGES; produced++) yield { key: `k${produced}`, value };
    })(),
  );
  const outcome = call.then(
    () => "answered",
    (e: unknown) => String(e),
  );
  // Every message has been handed to the socket and read by the peer.
  while (received < MESSAGES * value.length) await new Promise((r) => setTimeout(r, 5));
  assert.equal(produced, MESSAGES);
  transport.close();
  assert.match(await outcome, /closed/);
  await new Promise(setImmediate);
  assert.deepEqual(warnings, []);
});
