/**
 * The lean HTTP/2 stream handler (stream-handler.ts) ends a failed stream
 * with its error at once, whatever the implementation's `finally` does:
 * a message over writeMaxBytes makes it call the generator's return(),
 * and a `finally` that awaits forever must not hold back the trailers
 * (gRPC), the end-of-stream envelope (Connect) or the trailer envelope
 * (gRPC-web) the caller waits for. Real HTTP/2 over loopback TCP, server
 * and bidi streams, each protocol.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { BytesValueSchema, Int64ValueSchema } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";
import { Bench } from "../../../bench/service.js";
import type { PluginHttpServer } from "../../../src/transport/http-server.js";
import { createNodeAdapter } from "../../../src/transport/node-adapter.js";
import {
  envelope,
  exchangeOnce,
  grpcWebTrailerOf,
  listenCounting,
  type RawExchange,
} from "./command-routes.js";

const WRITE_MAX = 64;
/** Requests served through node's compatibility objects (none here), and finally blocks entered. */
const seen = { compat: 0, finallies: 0 };
const never = new Promise<never>(() => {});

/** One small message, then one over writeMaxBytes; the finally never ends. */
async function* tooBigThenHang(): AsyncGenerator<{ value: Uint8Array }> {
  try {
    yield { value: new Uint8Array(4) };
    yield { value: new Uint8Array(WRITE_MAX + 1) };
  } finally {
    seen.finallies++;
    await never;
  }
}

function routes(router: ConnectRouter): void {
  router.service(Bench, {
    echo: (req) => req,
    stream: () => tooBigThenHang(),
    echoStream: () => tooBigThenHang(),
  });
}

let server: { port: number; server: PluginHttpServer };
before(async () => {
  const adapter = createNodeAdapter({ routes, writeMaxBytes: WRITE_MAX, lean: true });
  server = await listenCounting(adapter, seen, true);
});
after(() => server.server.close());

const headers = {
  connect: { "content-type": "application/connect+proto", "connect-protocol-version": "1" },
  grpc: { "content-type": "application/grpc", te: "trailers" },
  "grpc-web": { "content-type": "application/grpc-web+proto" },
} as const;

/** The resource-exhausted error where each protocol puts it. */
function assertTooBig(protocol: keyof typeof headers, x: RawExchange): void {
  assert.equal(x.status, 200);
  if (protocol === "connect") {
    const body = Buffer.from(x.body, "hex").toString("latin1");
    assert.match(body, /"code":"resource_exhausted","message":"[^"]*writeMaxBytes/);
    return;
  }
  const trailers = protocol === "grpc" ? x.trailers : grpcWebTrailerOf(x.body);
  assert.equal(trailers?.["grpc-status"], "8", JSON.stringify(x));
  assert.match(String(trailers?.["grpc-message"]), /writeMaxBytes/);
}

for (const protocol of ["connect", "grpc", "grpc-web"] as const) {
  for (const [kind, method, request] of [
    [
      "server stream",
      "Stream",
      toBinary(Int64ValueSchema, create(Int64ValueSchema, { value: 1n })),
    ],
    ["bidi stream", "EchoStream", toBinary(BytesValueSchema, create(BytesValueSchema))],
  ] as const) {
    test(`${protocol} ${kind}: a message over writeMaxBytes ends the stream with its error though the implementation's finally never settles`, async () => {
      const finallies = seen.finallies;
      let bound: NodeJS.Timeout | undefined;
      const x = await Promise.race([
        exchangeOnce(
          server.port,
          `/bench.v1.BenchService/${method}`,
          headers[protocol],
          envelope(request),
        ),
        new Promise<never>((_, reject) => {
          bound = setTimeout(() => reject(new Error("no end of the response in 10 s")), 10_000);
        }),
      ]).finally(() => clearTimeout(bound));
      assertTooBig(protocol, x);
      assert.equal(seen.finallies, finallies + 1, "return() ran the finally");
      assert.equal(seen.compat, 0, "served by the lean path");
    });
  }
}
