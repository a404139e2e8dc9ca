/**
 * The launch token on a subprocess's HTTP/2 (Connect) transport, cleartext
 * and AutoMTLS: every kind of call carries it whatever the caller sends
 * (no headers, headers, a deadline, an `authorization` of its own), and no
 * host interceptor ever sees it. Pins what the host sends wherever the
 * token is set (an interceptor, or the transport on the wire).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import { PutRequestSchema } from "../examples/kv/gen/example/kv/v1/kv_pb.js";
import { fixture, kvClient } from "./helpers.js";

for (const autoMTLS of [false, true]) {
  test(`connect over h2, autoMTLS ${autoMTLS}: every call carries the launch token, interceptors never see it`, async () => {
    const seen: Array<[string, string | null]> = [];
    const spy: Interceptor = (next) => (req) => {
      seen.push([req.method.name, req.header.get("authorization")]);
      return next(req);
    };
    for (const interceptors of [[], [spy]]) {
      const client = kvClient(fixture("kv", {}, { transports: ["connect"], autoMTLS }), {
        interceptors,
      });
      await client.start();
      try {
        const kv = client.dispense("kv");
        // A call the plugin refused for want of the token would reject
        // (Unauthenticated): each of these must succeed.
        await kv.put({ key: "a", value: new Uint8Array([1]) });
        assert.deepEqual((await kv.get({ key: "a" })).value, new Uint8Array([1]));
        assert.equal((await kv.get({ key: "a" }, { timeoutMs: 30_000 })).found, true);
        let echoed: string | null = null;
        await kv.get(
          { key: "headers" },
          {
            headers: { "x-echo": "mine", authorization: "Bearer not-the-token" },
            onHeader: (h) => (echoed = h.get("x-echo")),
          },
        );
        assert.equal(echoed, "mine", "the caller's own headers still go");
        const events = kv.watch({ key: "a" });
        for await (const event of events) {
          assert.deepEqual(event.value, new Uint8Array([1]));
          break;
        }
        async function* puts() {
          yield create(PutRequestSchema, { key: "b", value: new Uint8Array([2]) });
          yield create(PutRequestSchema, { key: "c", value: new Uint8Array([3]) });
        }
        assert.equal((await kv.putMany(puts())).count, 2);
      } finally {
        await client.close();
      }
    }
    // Handshake, Put, Get x3, Watch, PutMany and Shutdown, none with the token.
    assert.deepEqual(
      seen.map(([m]) => m),
      ["Handshake", "Put", "Get", "Get", "Get", "Watch", "PutMany", "Shutdown"],
    );
    assert.deepEqual(
      seen.map(([, auth]) => auth),
      [null, null, null, null, "Bearer not-the-token", null, null, null],
      "interceptors see the caller's own header only, never the launch token",
    );
  });
}
