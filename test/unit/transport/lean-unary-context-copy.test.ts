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
import { after, before, test } from "node:test";
import { createContextValues, type HandlerContext } from "@connectrpc/connect";
import { Bench } from "../../../bench/service.js";
import { listenAdapter, rawExchange, request, type Protocol } from "./command-routes.js";

/** The delegate: sets a header and a trailer on the context it is given. */
function delegate(value: Uint8Array, ctx: HandlerContext): { value: Uint8Array } {
  ctx.responseHeader.set("x-copied", "h");
  ctx.responseTrailer.set("x-copied-trailer", "t");
  return { value };
}

function start(lean: boolean): Promise<{ server: http2.Http2Server; url: string }> {
  return listenAdapter({
    lean,
    routes: (router) =>
      router.service(Bench, {
        echo: (req, ctx) => delegate(req.value, { ...ctx, values: createContextValues() }),
        stream: async function* () {},
      }),
  });
}

interface Seen {
  status: unknown;
  header: unknown;
  trailer: unknown;
  grpcStatus: unknown;
}

async function call(url: string, protocol: Protocol): Promise<Seen> {
  const client = http2.connect(url);
  try {
    const x = await rawExchange(
      client,
      "/bench.v1.BenchService/Echo",
      ...request(protocol, new Uint8Array([7])),
    );
    return {
      status: x.status,
      header: x.headers["x-copied"],
      trailer:
        protocol === "connect"
          ? x.headers["trailer-x-copied-trailer"]
          : x.trailers?.["x-copied-trailer"],
      grpcStatus: x.trailers?.["grpc-status"] ?? x.headers["grpc-status"],
    };
  } finally {
    client.close();
  }
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
