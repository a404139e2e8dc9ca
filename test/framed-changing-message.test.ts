/**
 * A handler's message whose field is a getter giving a different value on
 * each read: the framed encoder measured one value and wrote another, so
 * the frame's length and its payload disagreed (a desynchronized frame
 * stream, or stale batch bytes sent). Each message must arrive whole, as
 * toBinary makes it. Real unix sockets.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { createClient, type ConnectRouter } from "@connectrpc/connect";
import { KV, PutRequestSchema, WatchEventSchema } from "../examples/kv/gen/example/kv/v1/kv_pb.js";
import { framedUnixTransport } from "./framed-unix.js";

test("a streamed message whose fields change on each read arrives whole, and the stream goes on", async (t) => {
  const routes = (router: ConnectRouter): void => {
    router.service(KV, {
      get: () => ({}),
      put: () => ({}),
      putMany: () => Promise.resolve({}),
      async *exchange() {},
      async *watch() {
        for (let i = 0; i < 3; i++) {
          const message = create(WatchEventSchema, { key: "plain" });
          let reads = 0;
          let bytes = 0;
          Object.defineProperty(message, "key", {
            enumerable: true,
            get: () => (reads++ % 2 === 0 ? "a-long-key-read-first" : "k"),
          });
          Object.defineProperty(message, "value", {
            enumerable: true,
            get: () => new Uint8Array(bytes++ % 2 === 0 ? 40 : 2).fill(7),
          });
          yield message;
        }
        yield create(WatchEventSchema, { key: "last" });
      },
    });
  };
  const client = createClient(KV, await framedUnixTransport(t, routes));
  const keys: string[] = [];
  for await (const event of client.watch({ key: "k" })) {
    assert.ok(["a-long-key-read-first", "k", "last"].includes(event.key), event.key);
    assert.ok([0, 2, 40].includes(event.value.length), `value of ${event.value.length} bytes`);
    assert.ok(event.value.every((b) => b === 7));
    keys.push(event.key);
  }
  assert.equal(keys.length, 4);
  assert.equal(keys[3], "last");
});

test("a request whose getter sends another request of the same type while it is measured: both arrive as sent", async (t) => {
  // FlatEncoder keeps the measured values per schema until write(): a
  // nested measure() overwrote the outer message's (the outer call failed,
  // or went out with the inner message's fields).
  const received: string[] = [];
  const routes = (router: ConnectRouter): void => {
    router.service(KV, {
      get: () => ({}),
      put: (req) => {
        received.push(`${req.key}=${[...req.value].join(",")}`);
        return {};
      },
      putMany: () => Promise.resolve({}),
      async *exchange() {},
      async *watch() {},
    });
  };
  const client = createClient(KV, await framedUnixTransport(t, routes));
  await client.put({ key: "warm", value: Uint8Array.of(0) });
  let inner: Promise<unknown> | undefined;
  const outer = create(PutRequestSchema, { key: "outer" });
  Object.defineProperty(outer, "value", {
    enumerable: true,
    get: () => {
      inner ??= client.put({ key: "inner-and-longer", value: Uint8Array.of(1, 2, 3, 4, 5) });
      return Uint8Array.of(9);
    },
  });
  await client.put(outer);
  await inner;
  assert.deepEqual([...received].sort(), ["inner-and-longer=1,2,3,4,5", "outer=9", "warm=0"]);
});
