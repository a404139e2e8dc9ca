/**
 * Cases the live fuzzer found (see docs/reliability.md), kept as tests: each
 * one stopped or starved a network-mode plugin, or held a connection to the
 * go-plugin endpoint for ever, before its fix.
 */
import * as http2 from "node:http2";
import * as net from "node:net";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { serve, type ServeHandle } from "../src/index.js";
import { kvPlugin } from "../examples/kv/definition.js";
import { KV } from "../examples/kv/shared.js";
import { waitFor } from "./helpers.js";
import { h2Frame, h2Raw, requestHeaders } from "./h2-raw.js";
import { goPluginTarget } from "../fuzz/live.js";

let handle: ServeHandle;
let port: number;
before(async () => {
  // The Host check (cors.test.ts) would answer a malformed :authority with 403
  // before the request is parsed; these cases are about the parser, so it is off.
  handle = await serve(kvPlugin(), {
    listen: "127.0.0.1:0",
    exitProcess: false,
    allowedHosts: ["*"],
  });
  port = Number(new URL(handle.url).port);
});
after(() => handle.shutdown("test done"));

const stillServes = async (): Promise<void> => {
  const kv = createClient(KV, createConnectTransport({ baseUrl: handle.url, httpVersion: "2" }));
  assert.equal((await kv.get({ key: "nothing" })).found, false);
};

test("an HTTP/2 :authority that is not a host gets 400, and the plugin lives on", async () => {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  try {
    const req = session.request({
      ":method": "POST",
      ":path": "/example.kv.v1.KV/Get",
      ":authority": "127.0f0.1:80",
      "content-type": "application/proto",
    });
    req.end();
    const [status, body] = await new Promise<[number, string]>((resolve, reject) => {
      let text = "";
      let code = 0;
      req.on("response", (h) => (code = Number(h[":status"])));
      req.on("data", (c: Buffer) => (text += c.toString()));
      req.on("end", () => resolve([code, text]));
      req.on("error", reject);
    });
    assert.equal(status, 400);
    assert.match(body, /^malformed request: /);
  } finally {
    session.close();
  }
  await stillServes();
});

test("an HTTP/2 peer that hangs up with a request half sent is cut off, not waited for", async () => {
  const socket = net.connect(port, "127.0.0.1");
  await new Promise((r) => socket.once("connect", r));
  let closed = false;
  socket.once("close", () => (closed = true));
  socket.on("error", () => {});
  const session = http2.connect(`http://127.0.0.1:${port}`, { createConnection: () => socket });
  session.on("error", () => {});
  // A client stream that is never finished: the handler waits for its body.
  const req = session.request({
    ":method": "POST",
    ":path": "/example.kv.v1.KV/PutMany",
    "content-type": "application/connect+proto",
  });
  req.on("error", () => {});
  req.write(Buffer.from([0, 0, 0, 0, 0]));
  await new Promise((r) => setImmediate(r));
  // The peer ends its input without GOAWAY and without ending the stream.
  socket.end();
  await waitFor("the plugin to close the connection", () => closed, 30_000);
  session.destroy();
  await stillServes();
});

/** The error codes of the GOAWAY frames in what a server sent. */
function goawayCodes(bytes: Buffer): number[] {
  const codes: number[] = [];
  for (let at = 0; at + 9 <= bytes.length;) {
    const length = bytes.readUIntBE(at, 3);
    if (bytes[at + 3] === 7 && at + 17 <= bytes.length) codes.push(bytes.readUInt32BE(at + 13));
    at += 9 + length;
  }
  return codes;
}

for (const hangUp of [true, false]) {
  test(`go-plugin endpoint: a peer that breaks HTTP/2 with a call open ${hangUp ? "and hangs up" : "and stays"} is cut off at once`, async () => {
    // The KV example launched as a go-plugin host launches it: h2c on a private unix socket.
    const target = await goPluginTarget();
    try {
      const socket = await h2Raw(target.address);
      const received: Buffer[] = [];
      socket.on("data", (c: Buffer) => received.push(c));
      let closed = false;
      socket.once("close", () => (closed = true));
      // A call whose body never comes: its stream stays open...
      const headers = requestHeaders("/grpc.health.v1.Health/Check", "application/grpc");
      socket.write(h2Frame(1, 0x4, 1, headers));
      // ...then DATA on a stream never opened, a connection error: node:http2
      // answers GOAWAY(PROTOCOL_ERROR), stops reading the connection, and
      // keeps the session and the call. Before the fix the plugin held them
      // for ever, whether the peer then half-closed (as the fuzzer does) or not.
      const broken = h2Frame(0, 0x1, 3, Buffer.alloc(5));
      if (hangUp) socket.end(broken);
      else socket.write(broken);
      await waitFor("the plugin to close the connection", () => closed, 10_000);
      assert.deepEqual(goawayCodes(Buffer.concat(received)), [1]);
      await target.alive();
    } finally {
      await target.close();
    }
  });
}
