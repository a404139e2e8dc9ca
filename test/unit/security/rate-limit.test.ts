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

for (const [perSecond, unit] of [
  [1, "call"],
  [2, "calls"],
] as const) {
  test(`a limit of ${perSecond} per second says "${perSecond} ${unit} per second"`, async () => {
    const e = await firstRefusal(perSecond, 1);
    assert.equal(e.code, Code.ResourceExhausted);
    assert.match(
      e.rawMessage,
      new RegExp(
        `^rate limit exceeded: this client may make ${perSecond} ${unit} per second \\(burst 1\\); retry in \\d+ ms$`,
      ),
    );
  });
}
