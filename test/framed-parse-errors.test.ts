/**
 * A message that does not parse fails the same way on every transport:
 * Internal, "parse binary: <protobuf-es' reason>", as connect-es words it
 * for Connect and gRPC over HTTP. The framed transport used to say
 * "failed to parse the request: Error: ..." with InvalidArgument on the
 * plugin's side and "failed to parse the response: Error: ..." on the
 * host's, so the same bad message failed differently by where the plugin ran.
 *
 * The plugin's side is a real network-mode plugin (the KV fixture) given the
 * same unparseable request by a raw framed client and by raw Connect and
 * gRPC requests over HTTP/2. The host's side needs a server that answers
 * with bytes that do not parse, which no real plugin does: a fake framed
 * server and a fake HTTP/2 server give the host the same bytes.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { KV } from "../examples/kv/gen/example/kv/v1/kv_pb.js";
import { createUrlTransport } from "../src/transport/client-transport.js";
import { FrameType, encodeFrame, jsonPayload } from "../src/transport/framed/frames.js";
import { createNetworkTransport } from "../src/transport/framed/network.js";
import { fakeFramedServer, rawFramed } from "./framed-raw.js";
import { startNetworkPlugin, waitFor } from "./helpers.js";

const cleanups: Array<() => Promise<unknown> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** Field 1 (GetRequest.key, a string) says 5 bytes follow; 1 does. */
const UNPARSEABLE = Buffer.from([0x0a, 0x05, 0x61]);
const GET = "/example.kv.v1.KV/Get";

/** Sends one raw HTTP/2 request; resolves with status, headers, body and trailers. */
function h2Request(
  url: string,
  headers: http2.OutgoingHttpHeaders,
  body: Buffer,
): Promise<{ status: number; body: string; trailers: http2.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    session.on("error", reject);
    const req = session.request({ ":method": "POST", ":path": GET, ...headers });
    let status = 0;
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    req.on("response", (h) => {
      status = Number(h[":status"]);
    });
    req.on("trailers", (t: http2.IncomingHttpHeaders) => {
      trailers = t;
    });
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("error", reject);
    req.on("end", () => {
      session.close();
      resolve({ status, body: Buffer.concat(chunks).toString(), trailers });
    });
    req.end(body);
  });
}

describe("a request that does not parse, at a real plugin", () => {
  test("framed, Connect and gRPC all answer Internal with connect-es' words: parse binary: ...", async () => {
    const plugin = await startNetworkPlugin("kv");
    cleanups.push(() => plugin.stop());
    const { port } = new URL(plugin.url);

    const raw = rawFramed(Number(port), (socket) => cleanups.push(() => void socket.destroy()));
    raw.socket.write(
      Buffer.concat([
        encodeFrame(FrameType.open, 1, jsonPayload({ p: GET })),
        encodeFrame(FrameType.message, 1, UNPARSEABLE),
        encodeFrame(FrameType.end, 1),
      ]),
    );
    await waitFor("the framed call's trailer", () => raw.trailer(1) !== undefined);
    const framed = raw.trailer(1)?.e;

    const connect = await h2Request(
      plugin.url,
      { "content-type": "application/proto" },
      UNPARSEABLE,
    );
    const connectError = JSON.parse(connect.body) as { code: string; message: string };

    const envelope = Buffer.concat([Buffer.from([0, 0, 0, 0, UNPARSEABLE.length]), UNPARSEABLE]);
    const grpc = await h2Request(
      plugin.url,
      { "content-type": "application/grpc", te: "trailers" },
      envelope,
    );

    assert.match(connectError.message, /^parse binary: ./);
    assert.equal(connectError.code, "internal");
    assert.deepEqual(framed, { c: Code.Internal, m: connectError.message });
    assert.equal(grpc.trailers["grpc-status"], String(Code.Internal));
    assert.equal(decodeURIComponent(String(grpc.trailers["grpc-message"])), connectError.message);
  });
});

describe("an answer that does not parse, at the host", () => {
  test("fake servers: the framed client fails Internal with the same message as the HTTP/2 client", async () => {
    // A fake framed server: answers every call with one message that does
    // not parse as a GetResponse, then a trailer without an error.
    const fake = await fakeFramedServer((socket, type, id) => {
      if (type !== FrameType.end) return;
      socket.write(
        Buffer.concat([
          encodeFrame(FrameType.message, id, UNPARSEABLE),
          encodeFrame(FrameType.trailer, id),
        ]),
      );
    });
    cleanups.push(() => fake.close());

    // A fake HTTP/2 server: a Connect unary answer of the same bytes.
    const h2Server = http2.createServer();
    h2Server.on("stream", (stream) => {
      stream.on("data", () => {});
      stream.on("end", () => {
        stream.respond({ ":status": 200, "content-type": "application/proto" });
        stream.end(UNPARSEABLE);
      });
    });
    await new Promise<void>((resolve) => h2Server.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => new Promise<void>((resolve) => h2Server.close(() => resolve())));

    const failure = async (call: Promise<unknown>): Promise<ConnectError> => {
      try {
        await call;
      } catch (e) {
        return ConnectError.from(e);
      }
      assert.fail("the call succeeded");
    };
    const framed = createNetworkTransport(new URL(`http://127.0.0.1:${fake.port}`), {
      transport: "framed",
    });
    cleanups.push(() => framed.close());
    const h2Port = (h2Server.address() as { port: number }).port;
    const h2 = createUrlTransport(new URL(`http://127.0.0.1:${h2Port}`), { protocol: "connect" });
    cleanups.push(() => h2.close());

    const overFramed = await failure(createClient(KV, framed.transport).get({ key: "a" }));
    const overH2 = await failure(createClient(KV, h2.transport).get({ key: "a" }));
    assert.match(overH2.rawMessage, /^parse binary: ./);
    assert.equal(overH2.code, Code.Internal);
    assert.equal(overFramed.code, Code.Internal);
    assert.equal(overFramed.rawMessage, overH2.rawMessage);
  });
});
