/**
 * The negotiating network transport's HTTP fallback (framed/network.ts,
 * streamOverHttp), against a real node:http2 server that does not speak
 * the framed protocol.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  createNetworkTransport,
  negotiatedProtocol,
} from "../../../../src/transport/framed/network.js";
import { abortedWhenErrorSeen } from "../stream-error-seen.js";

test("over the HTTP fallback, an interceptor sees a stream's error before the call's signal fires (server and bidi streams)", async () => {
  // Settled above the interceptors, a plugin gone mid-stream came out as
  // Canceled instead of Unavailable "lost the connection" (as H2Target's
  // streams did before session 17).
  const seen = await abortedWhenErrorSeen(
    (url, protocol, interceptors) =>
      createNetworkTransport(new URL(url), { transport: "auto", protocol, interceptors }),
    (t) => assert.equal(negotiatedProtocol(t.transport), "http"),
  );
  assert.deepEqual(seen, [false, false, false, false]);
});
