/**
 * A response over the plugin's writeMaxBytes fails its call; the plugin must
 * not keep that message (or its encoding) alive afterwards: the connection's
 * MessageEncoder held the last prepared message until the next one. Real
 * unix sockets, a framed client; garbage collection checked with a WeakRef.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type ConnectRouter } from "@connectrpc/connect";
import { GetResponseSchema, KV, WatchEventSchema } from "../examples/kv/gen/example/kv/v1/kv_pb.js";
import { framedUnixTransport } from "./framed-unix.js";
import { collected } from "./gc.js";

for (const kind of ["unary", "server stream"] as const) {
  test(`a ${kind} response over writeMaxBytes fails its call, and the plugin does not keep the message`, async (t) => {
    let ref: WeakRef<object> | undefined;
    const respond = <T extends object>(message: T): T => {
      ref = new WeakRef(message);
      return message;
    };
    const value = (): Uint8Array => new Uint8Array(64 * 1024).fill(1);
    const routes = (router: ConnectRouter): void => {
      router.service(KV, {
        get: () => respond(create(GetResponseSchema, { value: value() })),
        put: () => ({}),
        putMany: () => Promise.resolve({}),
        async *exchange() {},
        async *watch() {
          yield respond(create(WatchEventSchema, { key: "k", value: value() }));
        },
      });
    };
    const client = createClient(KV, await framedUnixTransport(t, routes, { writeMaxBytes: 1024 }));
    const call = async (): Promise<unknown> => {
      if (kind === "unary") return client.get({ key: "k" });
      for await (const m of client.watch({ key: "k" })) void m;
      return undefined;
    };
    await assert.rejects(call(), (e: unknown) => {
      assert.ok(e instanceof ConnectError);
      assert.equal(e.code, Code.ResourceExhausted);
      return true;
    });
    assert.ok(await collected(ref as WeakRef<object>), "the oversized message was collected");
  });
}
