/**
 * CallGuard over real HTTP/2 sockets (review16-unary): many calls in
 * flight on one long-lived caller signal, some answered, some hanging,
 * some cancelled, then close(): every call settles, close() fails the
 * hanging ones with Unavailable, drain() returns, and no listener is left
 * on the caller's signal.
 */
import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { CallGuard } from "../../../src/host/call-guard.js";
import { createH2Transport } from "../../../src/transport/client-transport.js";
import { createStreamCancellingClient } from "../../../src/transport/create-client.js";
import { Bench } from "../../../bench/service.js";
import { startWireServer, type WireServer } from "../transport/h2-wire-server.js";

const passThrough: Interceptor = (next) => (req) => next(req);

describe("CallGuard live: calls in flight on a long-lived signal, then close()", () => {
  let server: WireServer;
  before(async () => (server = await startWireServer()));
  after(() => server.close());

  for (const protocol of ["connect", "grpc"] as const) {
    for (const outer of [[], [passThrough]] as Interceptor[][]) {
      test(`${protocol}, ${outer.length === 0 ? "inline" : "in a chain"}`, async () => {
        const guard = new CallGuard("p", () => false);
        const t = createH2Transport(
          server.url,
          {},
          { protocol, interceptors: [...outer, guard.interceptor] },
        );
        try {
          const client = createStreamCancellingClient(Bench, t.transport);
          const longLived = new AbortController().signal;
          const ok = `${protocol}-ok`;
          const outcomes: Promise<string>[] = [];
          const cancels: AbortController[] = [];
          for (let i = 0; i < 96; i++) {
            const kind = i % 3;
            let signal = longLived;
            if (kind === 2) {
              const c = new AbortController();
              cancels.push(c);
              signal = AbortSignal.any([longLived, c.signal]);
            }
            const call = client.echo(
              { value: new Uint8Array([i & 255]) },
              {
                signal,
                headers: { "x-scenario": kind === 0 ? ok : "headers-hang" },
                ...(i % 2 === 0 ? { onHeader: () => {} } : {}),
              },
            );
            outcomes.push(
              call.then(
                () => "ok",
                (e: unknown) => `${Code[ConnectError.from(e).code]}`,
              ),
            );
          }
          // Let the answered ones finish, cancel a third, close on the rest.
          await new Promise((r) => setTimeout(r, 200));
          for (const c of cancels) c.abort();
          guard.close();
          const seen = await Promise.all(outcomes);
          for (let i = 0; i < seen.length; i++) {
            const want = i % 3 === 0 ? "ok" : i % 3 === 2 ? "Canceled" : "Unavailable";
            if (i % 3 === 0)
              assert.ok(seen[i] === "ok" || seen[i] === "Unavailable", `${i}: ${seen[i]}`);
            else assert.equal(seen[i], want, `call ${i}`);
          }
          await guard.drain(5000);
          assert.equal(getEventListeners(longLived, "abort").length, 0, "no listener left");
        } finally {
          t.close?.();
        }
      });
    }
  }
});
