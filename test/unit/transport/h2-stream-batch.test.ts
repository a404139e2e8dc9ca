/**
 * The shared batch (src/transport/stream-batch.ts) under streams that
 * interleave: what one stalled stream keeps alive of it. node:http2 keeps
 * a view of every chunk handed to write() until it is sent; a view pins
 * the whole 64 KiB buffer it is cut from, so a stalled stream whose small
 * writes landed in many batches must not pin all of them.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { after, before, test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { Int64ValueSchema } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";
import { Bench } from "../../../bench/service.js";
import { PluginHttpServer } from "../../../src/transport/http-server.js";
import { createNodeAdapter } from "../../../src/transport/node-adapter.js";
import { envelope } from "./command-routes.js";
import { gc } from "../../gc.js";

const PATH = "/bench.v1.BenchService/Stream";
/** Request values: a slow endless stream of 16-byte messages, and a burst of 15,000-byte ones. */
const SLOW = 1;
const CHURN = 2;

const seen = { produced: 0, finallies: 0 };

function routes(router: ConnectRouter): void {
  router.service(Bench, {
    echo: (req) => req,
    async *stream(req, ctx) {
      try {
        if (req.value === BigInt(SLOW)) {
          for (let i = 0; !ctx.signal.aborted; i++) {
            seen.produced++;
            yield { value: new Uint8Array(16).fill(i & 0xff) };
            // I/O between messages: each goes out in a write of its own.
            await new Promise((r) => setImmediate(r));
          }
          return;
        }
        for (let i = 0; i < 40; i++) yield { value: new Uint8Array(15_000).fill(i) };
      } finally {
        seen.finallies++;
      }
    },
  });
}

let server: PluginHttpServer;
let port: number;
before(async () => {
  const adapter = createNodeAdapter({ routes });
  server = await PluginHttpServer.listen(
    adapter,
    { network: "tcp", host: "127.0.0.1", port: 0 },
    { acceptHttp1: false, streams: adapter.claimStream },
  );
  const bound = server.bound;
  assert.equal(bound.network, "tcp");
  port = bound.port;
});
after(() => server.close());

function request(value: number): [http2.OutgoingHttpHeaders, Uint8Array] {
  return [
    { ":method": "POST", ":path": PATH, "content-type": "application/grpc", te: "trailers" },
    envelope(toBinary(Int64ValueSchema, create(Int64ValueSchema, { value: BigInt(value) }))),
  ];
}

function arrayBuffers(): number {
  gc();
  gc();
  return process.memoryUsage().arrayBuffers;
}

test("a stalled stream whose small writes landed in many batches does not pin them all", async (t) => {
  const stalled = http2.connect(`http://127.0.0.1:${port}`);
  const busy = http2.connect(`http://127.0.0.1:${port}`);
  stalled.on("error", () => {});
  try {
    const [headers, body] = request(SLOW);
    const slow = stalled.request(headers);
    slow.on("error", () => {});
    slow.pause();
    slow.end(body);
    // Another stream of the process keeps filling (and replacing) the batch meanwhile.
    let churning = true;
    const churn = (async () => {
      while (churning) {
        await new Promise<void>((resolve, reject) => {
          const [h, b] = request(CHURN);
          const req = busy.request(h);
          req.on("data", () => {});
          req.on("end", resolve);
          req.on("error", reject);
          req.end(b);
        });
      }
    })();
    // Until the slow stream's handler is no longer pulled: the count stays put over 20 checks.
    let last = -1;
    let still = 0;
    while (still < 20) {
      await new Promise((r) => setTimeout(r, 10));
      if (seen.produced === last && last > 0) still++;
      else still = 0;
      last = seen.produced;
    }
    churning = false;
    await churn;
    const withStalled = arrayBuffers();
    const finallies = seen.finallies;
    slow.close(http2.constants.NGHTTP2_CANCEL);
    while (seen.finallies === finallies) await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 20));
    const pinned = withStalled - arrayBuffers();
    t.diagnostic(`${seen.produced} messages produced; the stalled stream pinned ${pinned} bytes`);
    assert.ok(pinned < 2 * 1024 * 1024, `the stalled stream pinned ${pinned} bytes`);
  } finally {
    stalled.close();
    busy.close();
  }
});
