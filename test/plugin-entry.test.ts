/**
 * The plugin-side entry (`connect-plugin/plugin`) has what a network-mode
 * plugin needs to protect itself: a plugin that imports serve() from it
 * gets requireBearer and rateLimit from it too, and a real host over
 * loopback sees them at work (the messages word for word).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { bearerAuth, remote } from "../src/index.js";
import { rateLimit, requireBearer, serve } from "../src/plugin.js";
import { kvPlugin } from "../examples/kv/definition.js";
import { kvClient } from "./helpers.js";

test("connect-plugin/plugin exports the plugin side's auth and rate-limit interceptors", async () => {
  const server = await serve(kvPlugin(), {
    listen: "127.0.0.1:0",
    exitProcess: false,
    interceptors: [requireBearer(["s3cret"]), rateLimit({ perSecond: 1, burst: 1 })],
  });
  try {
    const none = kvClient(remote(server.url), { startTimeoutMs: 5_000 });
    await assert.rejects(none.start(), (e: Error) => {
      assert.equal(
        e.message,
        `could not complete the handshake with ${server.url}/: [unauthenticated] missing ` +
          "credentials: this plugin requires an `authorization: Bearer <token>` header",
      );
      return true;
    });
    await none.close();

    const good = kvClient(remote(server.url), {
      startTimeoutMs: 5_000,
      interceptors: [bearerAuth("s3cret")],
    });
    await good.start();
    // Three calls at once against a burst of one: at least two are refused.
    const kv = good.dispense("kv");
    const results = await Promise.allSettled([1, 2, 3].map(() => kv.get({ key: "a" })));
    const refused = results.filter((r) => r.status === "rejected");
    assert.ok(refused.length >= 2, `${refused.length} of 3 calls refused`);
    for (const r of refused) {
      assert.match(
        String(r.reason),
        /^ConnectError: \[resource_exhausted\] rate limit exceeded: this client may make 1 call per second \(burst 1\); retry in \d+ ms$/,
      );
    }
    await good.close();
  } finally {
    await server.shutdown("test done");
  }
});
