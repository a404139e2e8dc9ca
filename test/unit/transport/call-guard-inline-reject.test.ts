/**
 * The CallGuard run inline (a client's only interceptor) must settle the
 * call as the same guard in an interceptor chain does, even when the
 * guard's own judgement of an error fails (here its connectionBroken
 * check throws, so translate() rejects): the chain's runner then settled
 * the call with that failure (a ConnectError), while the inline path let
 * the raw rejection through and never settled the call state, leaving its
 * deadline timer and its listener on the caller's signal behind.
 */
import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { after, before, describe, test } from "node:test";
import { ConnectError, type Interceptor } from "@connectrpc/connect";
import { CallGuard } from "../../../src/host/call-guard.js";
import { createH2Transport } from "../../../src/transport/client-transport.js";
import { createStreamCancellingClient } from "../../../src/transport/create-client.js";
import { Bench } from "../../../bench/service.js";
import { startWireServer, type WireServer } from "./h2-wire-server.js";

const passThrough: Interceptor = (next) => (req) => next(req);

const timers = (): number =>
  process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length;

describe("CallGuard inline = in a chain when its judgement of an error fails", () => {
  let server: WireServer;
  before(async () => (server = await startWireServer()));
  after(() => server.close());

  for (const protocol of ["connect", "grpc"] as const) {
    test(`${protocol}: the same error, the call settled`, async () => {
      const outcomes: unknown[] = [];
      for (const outer of [[], [passThrough]]) {
        const guard = new CallGuard("p", () => {
          throw new Error("cannot tell");
        });
        const t = createH2Transport(
          server.url,
          {},
          { protocol, interceptors: [...outer, guard.interceptor] },
        );
        try {
          const client = createStreamCancellingClient(Bench, t.transport);
          const signal = new AbortController().signal;
          const before = timers();
          const seen: unknown[] = [];
          for (const read of ["message", "whole"]) {
            try {
              await client.echo(
                { value: new Uint8Array([1]) },
                {
                  signal,
                  timeoutMs: 60_000,
                  headers: { "x-scenario": "break-refused" },
                  ...(read === "whole" ? { onHeader: () => {} } : {}),
                },
              );
              seen.push("resolved");
            } catch (e) {
              seen.push({
                connectError: e instanceof ConnectError,
                message: e instanceof Error ? e.message : String(e),
              });
            }
          }
          seen.push({
            listeners: getEventListeners(signal, "abort").length,
            timersLeft: timers() - before,
          });
          outcomes.push(seen);
        } finally {
          t.close();
        }
      }
      assert.deepEqual(outcomes[0], outcomes[1]);
      assert.deepEqual((outcomes[0] as unknown[]).at(-1), { listeners: 0, timersLeft: 0 });
    });
  }
});
