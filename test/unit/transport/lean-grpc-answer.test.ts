/**
 * The lean gRPC unary answer is written from the serializer's own buffer:
 * the message is serialized after 5 bytes kept for its envelope's head
 * (UnaryWire.messagePrefix, unary-wire.ts), where it was serialized alone
 * and then copied into a second buffer behind the head (docs/http2-server.md,
 * session 26). The bytes on the wire stay the same, compressed answers
 * included.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { gunzipSync } from "node:zlib";
import { after, before, test } from "node:test";
import type { PluginHttpServer } from "../../../src/transport/http-server.js";
import { createNodeAdapter } from "../../../src/transport/node-adapter.js";
import {
  commandRoutes,
  envelope,
  listenCounting,
  message,
  rawExchange,
  request,
} from "./command-routes.js";

const PATH = "/bench.v1.BenchService/Echo";
const CALLS = 3;

let server: PluginHttpServer;
let session: http2.ClientHttp2Session;
const seen = { lean: 0, reference: 0, aborted: [], compat: 0 };
before(async () => {
  // The plugin's own server: unary calls taken from the bare stream, as serve() runs it.
  const adapter = createNodeAdapter({ routes: commandRoutes(seen, 1 << 20), lean: true });
  let port: number;
  ({ server, port } = await listenCounting(adapter, seen, true));
  session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
});
after(async () => {
  session.close();
  await server.close();
});

/** How many Buffer.allocUnsafe calls came from the lean server's code (dist/src/transport) while `run` ran. */
async function oursAllocated(run: () => Promise<void>): Promise<number> {
  const own = Object.getOwnPropertyDescriptor(Buffer, "allocUnsafe") as PropertyDescriptor;
  const real = Buffer.allocUnsafe.bind(Buffer);
  let made = 0;
  Buffer.allocUnsafe = (size) => {
    if (/[/\\]src[/\\]transport[/\\]/.test(new Error().stack ?? "")) made++;
    return real(size);
  };
  try {
    await run();
  } finally {
    Object.defineProperty(Buffer, "allocUnsafe", own);
  }
  return made;
}

test("grpc: a lean unary answer takes one buffer (the message serialized behind its envelope head), the same bytes", async () => {
  const lean = seen.lean;
  const made = await oursAllocated(async () => {
    for (let i = 0; i < CALLS; i++) {
      const x = await rawExchange(session, PATH, ...request("grpc", "echo me"));
      assert.equal(x.status, 200);
      assert.equal(x.body, Buffer.from(envelope(message("echo me"))).toString("hex"));
      assert.equal(x.trailers?.["grpc-status"], "0");
    }
  });
  assert.equal(seen.lean - lean, CALLS, "the lean path ran them");
  assert.equal(made, CALLS);
});

test("grpc: an answer over compressMinBytes is still compressed whole, flagged 1", async () => {
  const x = await rawExchange(
    session,
    PATH,
    ...request("grpc", "big", { "grpc-accept-encoding": "gzip" }),
  );
  assert.equal(x.status, 200);
  assert.equal(x.headers["grpc-encoding"], "gzip");
  const body = Buffer.from(x.body, "hex");
  assert.equal(body[0], 1);
  assert.equal(body.readUInt32BE(1), body.length - 5);
  const big = message(new Uint8Array(2000).fill(7));
  assert.deepEqual(gunzipSync(body.subarray(5)), Buffer.from(big));
  assert.equal(x.trailers?.["grpc-status"], "0");
});
