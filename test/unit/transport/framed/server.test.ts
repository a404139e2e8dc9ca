/**
 * src/transport/framed/server.ts: an answer the encoder writes other than
 * it measured (MeasuredMessage.write's check) reaches the host as an
 * Internal error in the call's trailer, and the connection goes on. No
 * real message can make FlatEncoder do it (it keeps the values it
 * measured), so a fake write, one byte short, forces it; real unix sockets.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { create, type DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type ConnectRouter } from "@connectrpc/connect";
import {
  GetResponseSchema,
  KV,
  WatchEventSchema,
} from "../../../../examples/kv/gen/example/kv/v1/kv_pb.js";
import { FlatEncoder } from "../../../../src/transport/codec/flat-encoder.js";
import { framedUnixTransport } from "../../../framed-unix.js";

const routes = (router: ConnectRouter): void => {
  router.service(KV, {
    get: (req) => ({ found: true, value: new TextEncoder().encode(req.key) }),
    put: () => ({}),
    putMany: () => Promise.resolve({}),
    async *exchange() {},
    async *watch(req) {
      yield create(WatchEventSchema, { key: req.key });
    },
  });
};

/** A KV client on a framed server over a unix socket. */
async function kvClient(t: TestContext): Promise<ReturnType<typeof createClient<typeof KV>>> {
  return createClient(KV, await framedUnixTransport(t, routes));
}

/**
 * Makes the next write() of `schema`'s FlatEncoder (the server's, for a
 * response type: the client's requests are of other types) report one
 * byte less than it wrote (fake).
 */
function shortNextWrite(t: TestContext, schema: DescMessage): void {
  const encoder = FlatEncoder.of(schema);
  assert.ok(encoder !== undefined, `${schema.typeName} is flat`);
  const restore = (): void => {
    delete (encoder as Partial<FlatEncoder>).write;
  };
  encoder.write = (...args) => {
    restore();
    return FlatEncoder.prototype.write.apply(encoder, args) - 1;
  };
  t.after(restore);
}

const wroteOtherThanMeasured = (e: unknown): boolean => {
  assert.ok(e instanceof ConnectError, String(e));
  assert.equal(e.code, Code.Internal);
  assert.match(e.rawMessage, /^serialize binary: wrote \d+ bytes of \d+ measured/);
  return true;
};

test("fake encoder: a unary answer written short of its measure fails with Internal, and the connection goes on", async (t) => {
  const client = await kvClient(t);
  assert.equal((await client.get({ key: "before" })).found, true);
  shortNextWrite(t, GetResponseSchema);
  // The timeout only bounds the test: before, the host waited for a trailer that never came.
  await assert.rejects(client.get({ key: "short" }, { timeoutMs: 5_000 }), wroteOtherThanMeasured);
  const after = await client.get({ key: "after" });
  assert.equal(new TextDecoder().decode(after.value), "after");
});

test("fake encoder: a streamed message written short of its measure fails the stream with Internal", async (t) => {
  const client = await kvClient(t);
  shortNextWrite(t, WatchEventSchema);
  const read = async (): Promise<void> => {
    for await (const _ of client.watch({ key: "short" }, { timeoutMs: 5_000 }));
  };
  await assert.rejects(read(), wroteOtherThanMeasured);
  assert.equal((await client.get({ key: "after" })).found, true);
});
