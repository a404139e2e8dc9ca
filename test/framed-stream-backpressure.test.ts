/**
 * A framed server stream to a host that stops reading: the plugin stops
 * pulling the handler's messages once its socket is full, so what it
 * buffers stays bounded (checked in bytes: the socket's queue and the
 * messages produced, not by timing). A cancel sent meanwhile ends the
 * handler once the host reads again. Real unix sockets, a raw framed peer.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import * as net from "node:net";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { KV, WatchRequestSchema } from "../examples/kv/gen/example/kv/v1/kv_pb.js";
import { serveFramedStream } from "../src/transport/framed/server.js";
import { encodeFrame, FrameType, jsonPayload } from "../src/transport/framed/frames.js";
import { tempDir } from "./helpers.js";

const VALUE_BYTES = 1024;

test("a server stream to a host that stops reading: the plugin's buffered bytes stay bounded; a cancel ends the handler once the host reads again", async (t) => {
  let produced = 0;
  let handlerEnded: (reason: unknown) => void = () => {};
  const ended = new Promise<unknown>((resolve) => (handlerEnded = resolve));
  const value = new Uint8Array(VALUE_BYTES).fill(1);
  const routes = (router: ConnectRouter): void => {
    router.service(KV, {
      get: () => ({}),
      put: () => ({}),
      putMany: () => Promise.resolve({}),
      exchange: async function* () {},
      async *watch(req, ctx) {
        try {
          for (;;) {
            produced++;
            yield { key: req.key, value };
          }
        } finally {
          handlerEnded(ctx.signal.reason);
        }
      },
    });
  };
  let plugin: net.Socket | undefined;
  const server = net.createServer((socket) => {
    plugin = socket;
    serveFramedStream(routes, socket);
  });
  const path = join(tempDir("framed-bp-"), "s.sock");
  server.listen(path);
  await once(server, "listening");
  t.after(() => server.close());

  // The host: opens a Watch and reads nothing.
  const host = net.connect(path);
  t.after(() => host.destroy());
  await once(host, "connect");
  host.write(
    Buffer.concat([
      encodeFrame(FrameType.open, 1, jsonPayload({ p: "/example.kv.v1.KV/Watch" })),
      encodeFrame(
        FrameType.message,
        1,
        toBinary(WatchRequestSchema, create(WatchRequestSchema, { key: "k" })),
      ),
      encodeFrame(FrameType.end, 1),
    ]),
  );

  // Wait until the handler is no longer pulled: the count stays put over 20 checks.
  let last = -1;
  let still = 0;
  while (still < 20) {
    await new Promise((r) => setTimeout(r, 10));
    if (produced === last && produced > 0) still++;
    else still = 0;
    last = produced;
  }
  const socket = plugin as net.Socket;
  // What the plugin holds in JavaScript: at most one 64 KiB batch and the frame after it.
  assert.ok(
    socket.writableLength <= 128 * 1024,
    `plugin socket queue ${socket.writableLength} bytes`,
  );
  // What it produced fits the socket queue and the kernel's buffers (a few
  // hundred KiB on Linux), far from the unbounded stream the handler offers.
  const producedBytes = produced * (VALUE_BYTES + 16);
  assert.ok(
    producedBytes < 8 * 1024 * 1024,
    `produced ${produced} messages (${producedBytes} bytes)`,
  );

  // Cancel, then read again: the plugin's write drains, it sees the call is
  // over, and the handler's generator is ended with the cancel as its reason.
  host.write(encodeFrame(FrameType.cancel, 1));
  let received = 0;
  host.on("data", (chunk: Buffer) => (received += chunk.length));
  const reason = await ended;
  assert.ok(reason instanceof ConnectError);
  assert.equal(reason.code, Code.Canceled);
  assert.match(reason.message, /cancelled the call/);
  const atEnd = produced;
  // Nothing more is produced after the end (the handler returned).
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(produced, atEnd);
  assert.ok(received > 0, "the host got the queued messages once it read");
});
