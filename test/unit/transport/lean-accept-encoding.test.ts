/**
 * The lean unary path keeps its last accept-encoding negotiation
 * (LeanUnary.responseCompression): each server in one process has its own
 * options, and a call's response encoding must be what connect-es gives
 * for that call's own header on that server, whatever the calls before it
 * (on this server or another, in either protocol) sent. Real sockets: two
 * lean servers with different acceptCompression, each with a twin without
 * the lean path, calls interleaved.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import type { Compression } from "@connectrpc/connect/protocol";
import { clean, commandRoutes, request, type HandlerSeen } from "./command-routes.js";
import { createNodeAdapter } from "../../../src/transport/node-adapter.js";

const PATH = "/bench.v1.BenchService/Echo";

interface Server {
  url: string;
  seen: HandlerSeen;
  server: http2.Http2Server;
  session?: http2.ClientHttp2Session;
}

async function start(lean: boolean, acceptCompression: Compression[]): Promise<Server> {
  const seen: HandlerSeen = { lean: 0, reference: 0, aborted: [] };
  const server = http2.createServer(
    createNodeAdapter({ routes: commandRoutes(seen, 1 << 20), acceptCompression, lean }),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, seen, server, session: http2.connect(url) };
}

const OPTIONS: Record<string, Compression[]> = {
  "gzip then br": [compressionGzip, compressionBrotli],
  "br only": [compressionBrotli],
  none: [],
};

const pairs: Record<string, [Server, Server]> = {};
before(async () => {
  for (const [name, options] of Object.entries(OPTIONS)) {
    pairs[name] = await Promise.all([start(true, options), start(false, options)]);
  }
});
after(async () => {
  for (const pair of Object.values(pairs)) {
    for (const s of pair) {
      s.session?.close();
      s.server.close();
      await new Promise<void>((resolve) => s.server.once("close", resolve));
    }
  }
});

async function call(
  s: Server,
  headers: http2.OutgoingHttpHeaders,
  body: Uint8Array,
): Promise<{ headers: Record<string, unknown>; body: string; trailers: unknown }> {
  return new Promise((resolve, reject) => {
    const req = (s.session as http2.ClientHttp2Session).request({
      ":method": "POST",
      ":path": PATH,
      ...headers,
    });
    const chunks: Buffer[] = [];
    let h: Record<string, unknown> = {};
    let trailers: unknown;
    req.on("response", (r) => (h = clean(r)));
    req.on("trailers", (t: http2.IncomingHttpHeaders) => (trailers = clean(t)));
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () =>
      resolve({ headers: h, body: Buffer.concat(chunks).toString("hex"), trailers }),
    );
    req.on("error", reject);
    req.end(body);
  });
}

const ACCEPTS = [
  undefined,
  "gzip",
  "br",
  "br, gzip",
  "gzip, br",
  "identity",
  "deflate",
  "",
  "GZIP",
  " gzip ",
];

test("each call's response encoding is negotiated from its own header on its own server (interleaved servers, protocols and values)", async () => {
  let seed = 7;
  const next = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const names = Object.keys(OPTIONS);
  for (let i = 0; i < 240; i++) {
    const name = names[next(names.length)] as string;
    const [withLean, without] = pairs[name] as [Server, Server];
    const protocol = next(2) === 0 ? "connect" : "grpc";
    const accept = ACCEPTS[next(ACCEPTS.length)];
    const header = protocol === "connect" ? "accept-encoding" : "grpc-accept-encoding";
    const [headers, body] = request(
      protocol,
      "big",
      accept === undefined ? {} : { [header]: accept },
    );
    const lean = withLean.seen.lean;
    const [a, b] = await Promise.all([call(withLean, headers, body), call(without, headers, body)]);
    assert.deepEqual(a, b, JSON.stringify({ i, name, protocol, accept }));
    assert.equal(withLean.seen.lean, lean + 1, "the lean path ran it");
  }
});
