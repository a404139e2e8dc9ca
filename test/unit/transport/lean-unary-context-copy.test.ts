/**
 * A handler that hands its context on as a copy (`{ ...ctx, values }`, a
 * common way to delegate with other context values) on a router without
 * interceptors: the response header and trailer the delegate sets through
 * the copy must reach the wire on the lean path as they do through
 * connect-es (whose context has them as own properties). Session 16 tried
 * making them on first read (prototype getters): the copy had none and the
 * delegate's `responseHeader.set()` threw, so the call failed as "internal
 * error" (found by review16-unary; the idea was dropped).
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { BytesValueSchema } from "@bufbuild/protobuf/wkt";
import { createContextValues, type HandlerContext } from "@connectrpc/connect";
import { createNodeAdapter } from "../../../src/transport/node-adapter.js";
import { Bench } from "../../../bench/service.js";

/** The delegate: sets a header and a trailer on the context it is given. */
function delegate(value: Uint8Array, ctx: HandlerContext): { value: Uint8Array } {
  ctx.responseHeader.set("x-copied", "h");
  ctx.responseTrailer.set("x-copied-trailer", "t");
  return { value };
}

async function start(lean: boolean): Promise<{ server: http2.Http2Server; url: string }> {
  const server = http2.createServer(
    createNodeAdapter({
      lean,
      routes: (router) =>
        router.service(Bench, {
          echo: (req, ctx) => delegate(req.value, { ...ctx, values: createContextValues() }),
          stream: async function* () {},
        }),
    }),
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

interface Seen {
  status: unknown;
  header: unknown;
  trailer: unknown;
  grpcStatus: unknown;
}

function call(url: string, protocol: "connect" | "grpc"): Promise<Seen> {
  return new Promise((resolve, reject) => {
    const client = http2.connect(url);
    const msg = toBinary(
      BytesValueSchema,
      create(BytesValueSchema, { value: new Uint8Array([7]) }),
    );
    const s = client.request({
      ":method": "POST",
      ":path": "/bench.v1.BenchService/Echo",
      ...(protocol === "connect"
        ? { "content-type": "application/proto", "connect-protocol-version": "1" }
        : { "content-type": "application/grpc", te: "trailers" }),
    });
    let head: http2.IncomingHttpHeaders = {};
    let tail: http2.IncomingHttpHeaders = {};
    s.on("response", (h) => (head = h));
    s.on("trailers", (h: http2.IncomingHttpHeaders) => (tail = h));
    s.on("data", () => {});
    s.on("error", reject);
    s.on("close", () => {
      client.close();
      resolve({
        status: head[":status"],
        header: head["x-copied"],
        trailer:
          protocol === "connect" ? head["trailer-x-copied-trailer"] : tail["x-copied-trailer"],
        grpcStatus: tail["grpc-status"] ?? head["grpc-status"],
      });
    });
    if (protocol === "connect") s.end(msg);
    else {
      const body = Buffer.alloc(5 + msg.length);
      body.writeUInt32BE(msg.length, 1);
      body.set(msg, 5);
      s.end(body);
    }
  });
}

let lean: { server: http2.Http2Server; url: string };
let reference: { server: http2.Http2Server; url: string };
before(async () => {
  [lean, reference] = await Promise.all([start(true), start(false)]);
});
after(() => {
  lean.server.close();
  reference.server.close();
});

for (const protocol of ["connect", "grpc"] as const) {
  test(`${protocol}, no interceptors: headers set through a copy of the context reach the wire on both paths`, async () => {
    const want = await call(reference.url, protocol);
    assert.equal(want.header, "h", "connect-es sends what the delegate set");
    assert.equal(want.trailer, "t");
    assert.deepEqual(await call(lean.url, protocol), want);
  });
}
