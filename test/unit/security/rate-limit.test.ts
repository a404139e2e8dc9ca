/**
 * rateLimit's refusal, as a client sees it, through connect-es' in-memory
 * router transport (the interceptor runs on the router's side, as in a
 * plugin). test/remote-security.test.ts covers buckets per client over a
 * real network plugin.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { KV } from "../../../examples/kv/gen/example/kv/v1/kv_pb.js";
import { rateLimit } from "../../../src/security/rate-limit.js";

/** Calls until the limit refuses one (a slow machine may refill a token between calls). */
async function firstRefusal(perSecond: number, burst: number): Promise<ConnectError> {
  const kv = createClient(
    KV,
    createRouterTransport((router) => router.service(KV, { get: () => ({ found: false }) }), {
      router: { interceptors: [rateLimit({ perSecond, burst, clientKey: () => "one" })] },
    }),
  );
  for (let i = 0; i < 1_000; i++) {
    try {
      await kv.get({ key: "x" });
    } catch (e) {
      return ConnectError.from(e);
    }
  }
  throw new Error("no call was refused");
}

test("a limit of one call per second says 'call', not 'calls'", async () => {
  const e = await firstRefusal(1, 1);
  assert.equal(e.code, Code.ResourceExhausted);
  assert.match(
    e.rawMessage,
    /^rate limit exceeded: this client may make 1 call per second \(burst 1\); retry in \d+ ms$/,
  );
});

test("other limits say 'calls'", async () => {
  const e = await firstRefusal(2, 1);
  assert.equal(e.code, Code.ResourceExhausted);
  assert.match(
    e.rawMessage,
    /^rate limit exceeded: this client may make 2 calls per second \(burst 1\); retry in \d+ ms$/,
  );
});
