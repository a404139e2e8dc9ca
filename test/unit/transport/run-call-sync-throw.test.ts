/**
 * A call whose request cannot even be built (a header name `Headers`
 * refuses, so a synchronous TypeError) must leave nothing behind: no abort
 * listener on the caller's signal (a caller reusing one signal for every
 * call would otherwise collect one per call, as getEventListeners shows)
 * and no deadline timer (which would hold the process open). The
 * CallRunner made its call state before building the request, and never
 * settled it when that threw: on the lean path (leanUnary, with and
 * without the inline CallGuard), the chain path and streams alike.
 */
import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { after, before, describe, test } from "node:test";
import type { Interceptor } from "@connectrpc/connect";
import { CallGuard } from "../../../src/host/call-guard.js";
import { createH2Transport } from "../../../src/transport/client-transport.js";
import { createStreamCancellingClient } from "../../../src/transport/create-client.js";
import { Bench } from "../../../bench/service.js";
import { startWireServer, type WireServer } from "./h2-wire-server.js";

const timers = (): number =>
  process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length;

const passThrough: Interceptor = (next) => (req) => next(req);

describe("a request that cannot be built settles its call state", () => {
  let server: WireServer;
  before(async () => (server = await startWireServer()));
  after(() => server.close());

  for (const protocol of ["connect", "grpc"] as const) {
    for (const chain of ["none", "guard inline", "guard in a chain"] as const) {
      test(`${protocol}, interceptors: ${chain}`, async () => {
        const guard = new CallGuard("p", () => t.isBroken());
        const interceptors =
          chain === "none"
            ? []
            : chain === "guard inline"
              ? [guard.interceptor]
              : [passThrough, guard.interceptor];
        const t = createH2Transport(server.url, {}, { protocol, interceptors });
        try {
          const client = createStreamCancellingClient(Bench, t.transport);
          const signal = new AbortController().signal;
          const before = timers();
          const bad = { "bad name": "x" };
          const refusals: unknown[] = [];
          for (let i = 0; i < 3; i++) {
            const opts = { signal, timeoutMs: 60_000, headers: bad };
            await client.echo({ value: new Uint8Array([1]) }, opts).catch((e: unknown) => {
              refusals.push(e);
            });
            await client
              .echo({ value: new Uint8Array([1]) }, { ...opts, onHeader: () => {} })
              .catch((e: unknown) => refusals.push(e));
            try {
              for await (const _ of client.stream({ value: 1n }, opts)) break;
            } catch (e) {
              refusals.push(e);
            }
          }
          assert.equal(refusals.length, 9);
          for (const e of refusals) assert.ok(e instanceof TypeError, String(e));
          assert.equal(getEventListeners(signal, "abort").length, 0, "abort listeners left");
          assert.equal(timers(), before, "deadline timers left");
          let drained = false;
          await guard.drain(1_000).then(() => (drained = true));
          assert.ok(drained);
        } finally {
          t.close();
        }
      });
    }
  }
});
