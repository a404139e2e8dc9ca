/**
 * Cases the live fuzzer found (see docs/reliability.md), kept as tests: each
 * one stopped or starved a network-mode plugin, or held a connection to the
 * go-plugin endpoint for ever, before its fix.
 */
import * as http2 from "node:http2";
import * as net from "node:net";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { implement, serve, type ServeHandle } from "../src/index.js";
import { PluginServer } from "../src/plugin/plugin-server.js";
import { createFramedTransport } from "../src/transport/framed/client.js";
import { FrameType, encodeFrame, jsonPayload } from "../src/transport/framed/frames.js";
import { FramedServer } from "../src/transport/framed/server.js";
import { kvPlugin } from "../examples/kv/definition.js";
import { MemoryKV } from "../examples/kv/memory-kv.js";
import { KV, handshake } from "../examples/kv/shared.js";
import {
  GetRequestSchema,
  PutRequestSchema,
  WatchRequestSchema,
} from "../examples/kv/gen/example/kv/v1/kv_pb.js";
import { encode, tempDir, waitFor } from "./helpers.js";
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

// The framed fuzz target's heap grew 11 -> 54 MB over 100,000 cases: a fuzzed
// open frame reused the id of a Watch still open, the new call replaced the
// old one in the connection's table, and the old handler was never cancelled
// (not even when the connection closed), reading Put events for ever.
test("framed: an open frame that reuses the id of an open call cuts the peer off, and every handler's signal aborts", async () => {
  const kv = new MemoryKV();
  let watching = 0;
  let aborted = 0;
  const counted = implement(KV, {
    get: (req) => kv.get(req),
    put: (req) => kv.put(req),
    putMany: (reqs) => kv.putMany(reqs),
    exchange: (reqs) => kv.exchange(reqs),
    async *watch(req, ctx) {
      watching++;
      ctx.signal.addEventListener("abort", () => aborted++, { once: true });
      try {
        yield* kv.watch(req, ctx);
      } finally {
        watching--;
      }
    },
  });
  const plugin = new PluginServer({ handshake, plugins: { kv: counted } });
  const dir = tempDir("cp-fuzzreg-");
  const path = join(dir, "f.sock");
  const cutOff: string[] = [];
  const server = await FramedServer.listen(
    plugin.routes,
    { network: "unix", path },
    { onPeerCutOff: (why) => cutOff.push(why) },
  );
  try {
    const watch = (id: number): Buffer[] => [
      encodeFrame(FrameType.open, id, jsonPayload({ p: `/${KV.typeName}/Watch` })),
      encodeFrame(
        FrameType.message,
        id,
        toBinary(WatchRequestSchema, create(WatchRequestSchema, { key: "a" })),
      ),
      encodeFrame(FrameType.end, id),
    ];
    const put = (id: number): Buffer[] => [
      encodeFrame(FrameType.open, id, jsonPayload({ p: `/${KV.typeName}/Put` })),
      encodeFrame(
        FrameType.message,
        id,
        toBinary(PutRequestSchema, create(PutRequestSchema, { key: "late", value: encode("x") })),
      ),
      encodeFrame(FrameType.end, id),
    ];
    const socket = net.connect(path);
    await new Promise((r) => socket.once("connect", r));
    let closed = false;
    socket.once("close", () => (closed = true));
    socket.on("data", () => {});
    socket.on("error", () => {});
    socket.write(Buffer.concat(watch(1)));
    await waitFor("the first Watch to run", () => watching === 1);
    // The same id again, then a Put in the same write: the peer is cut off
    // at the reused id, and nothing after it in that write is run.
    socket.write(Buffer.concat([...watch(1), ...put(2)]));
    await waitFor("the plugin to close the connection", () => closed, 10_000);
    assert.deepEqual(cutOff, [
      "framed connection from a local peer cut off: call id 1 opened again while its call is open",
    ]);
    await waitFor("the Watch handler to end", () => watching === 0, 10_000);
    assert.equal(aborted, 1);
    assert.equal(kv.get(create(GetRequestSchema, { key: "late" })).found, false);
    // And the server serves the next connection.
    const client = createFramedTransport({ network: "unix", address: path });
    try {
      assert.equal((await createClient(KV, client.transport).get({ key: "a" })).found, false);
    } finally {
      client.close();
    }
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
