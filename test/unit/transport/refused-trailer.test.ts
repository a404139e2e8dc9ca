/**
 * A trailer node:http2 refuses to send (a connection-specific field such as
 * `keep-alive`, which `Headers` accepts): node's compatibility response
 * throws ERR_HTTP2_INVALID_CONNECTION_HEADERS from its trailer callback,
 * where nothing catches it, and the process ended (found by
 * review16-stream). Both paths now reset the call's stream instead, and
 * the server keeps answering.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { commandRoutes, exchange, request, type HandlerSeen } from "./command-routes.js";
import { createNodeAdapter } from "../../../src/transport/node-adapter.js";
import { refusedAsTrailers } from "../../../src/transport/node-headers.js";

const PATH = "/bench.v1.BenchService/Echo";

interface Server {
  url: string;
  seen: HandlerSeen;
  server: http2.Http2Server;
}

async function start(lean: boolean): Promise<Server> {
  const seen: HandlerSeen = { lean: 0, reference: 0, aborted: [] };
  const server = http2.createServer(createNodeAdapter({ routes: commandRoutes(seen, 4096), lean }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
}

let lean: Server;
let reference: Server;
before(async () => {
  [lean, reference] = await Promise.all([start(true), start(false)]);
});
after(async () => {
  for (const s of [lean, reference]) {
    s.server.close();
    await new Promise<void>((resolve) => s.server.once("close", resolve));
  }
});

const outcome = (url: string, command: string): Promise<unknown> =>
  exchange(url, PATH, ...request("grpc", command)).catch((e: NodeJS.ErrnoException) => ({
    error: e.code,
  }));

test("gRPC: a trailer node:http2 refuses resets the stream on both paths, and the server lives on", async () => {
  const before = { lean: lean.seen.lean, reference: reference.seen.reference };
  const a = await outcome(lean.url, "bad-trailer");
  const b = await outcome(reference.url, "bad-trailer");
  assert.deepEqual(a, { error: "ERR_HTTP2_STREAM_ERROR" });
  assert.deepEqual(b, a);
  assert.equal(lean.seen.lean, before.lean + 1, "the lean path ran it");
  assert.equal(reference.seen.reference, before.reference + 1, "connect-es ran it");
  // The process is still here, and both servers still answer.
  for (const url of [lean.url, reference.url]) {
    const ok = (await outcome(url, "ok")) as { trailers?: Record<string, unknown> };
    assert.equal(ok.trailers?.["grpc-status"], "0");
  }
});

test("Connect: the same trailer travels as a trailer- header, which node sends", async () => {
  const [headers, body] = request("connect", "bad-trailer");
  const a = await exchange(lean.url, PATH, headers, body);
  const b = await exchange(reference.url, PATH, headers, body);
  assert.equal(a.status, 200);
  assert.equal(a.headers["trailer-keep-alive"], "timeout=5");
  assert.equal(b.headers["trailer-keep-alive"], "timeout=5");
});

test("refusedAsTrailers names node's connection-specific fields, and te other than trailers", () => {
  for (const name of [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "host",
    "http2-settings",
  ]) {
    assert.equal(refusedAsTrailers({ [name]: "x", "grpc-status": "0" }), true, name);
  }
  assert.equal(refusedAsTrailers({ te: "gzip" }), true);
  assert.equal(refusedAsTrailers({ te: "trailers" }), false);
  assert.equal(refusedAsTrailers({ "grpc-status": "0", "x-keep": "alive" }), false);
});
