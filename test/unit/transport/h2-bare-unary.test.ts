/**
 * The message-only ("bare") unary path: a client made by
 * createStreamCancellingClient, called without onHeader/onTrailer, asks
 * the CallRunner for the message alone (CallRunner.unaryMessage), and the
 * H2Target then makes no Headers for a success. Against every hand-made
 * wire answer of h2-wire-server.ts, that must give the same message, or
 * the same error (code, text, details, metadata), as the whole response
 * read through transport.unary; onHeader/onTrailer still get the real
 * metadata. Also the CallGuard run inline (its only interceptor) against
 * the same guard behind another interceptor (the chain).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Interceptor, Transport } from "@connectrpc/connect";
import { CallGuard } from "../../../src/host/call-guard.js";
import { createH2Transport } from "../../../src/transport/client-transport.js";
import { createStreamCancellingClient } from "../../../src/transport/create-client.js";
import { H2Target } from "../../../src/transport/h2-target.js";
import { Bench } from "../../../bench/service.js";
import { errorView } from "./call-views.js";
import { scenarios, startWireServer, type WireServer } from "./h2-wire-server.js";

const READ_MAX = 200;

/**
 * Per H2Target call, in order (spied on our own class), whether it was the
 * bare path: unaryTo (which the runner uses for a message-only call since
 * session 15), not unary.
 */
const bareSeen: boolean[] = [];
const original = Reflect.get(H2Target.prototype, "unary") as (...args: unknown[]) => unknown;
Reflect.set(H2Target.prototype, "unary", function (this: H2Target, ...args: unknown[]): unknown {
  bareSeen.push(false);
  return original.apply(this, args);
});
const originalTo = Reflect.get(H2Target.prototype, "unaryTo") as (...args: unknown[]) => unknown;
Reflect.set(H2Target.prototype, "unaryTo", function (this: H2Target, ...args: unknown[]): unknown {
  bareSeen.push(true);
  return originalTo.apply(this, args);
});

/** The message (as bytes) or the error of a call through transport.unary. */
async function whole(transport: Transport, scenario: string): Promise<unknown> {
  try {
    const res = await transport.unary(
      Bench.method.echo,
      undefined,
      undefined,
      {
        "x-scenario": scenario,
      },
      { value: new Uint8Array([1]) },
    );
    assert.ok(res.header instanceof Headers && res.trailer instanceof Headers);
    return { message: [...res.message.value] };
  } catch (e) {
    return errorView(e);
  }
}

/** The same through the client, no onHeader/onTrailer: the bare path. */
async function bare(transport: Transport, scenario: string): Promise<unknown> {
  const client = createStreamCancellingClient(Bench, transport);
  try {
    const res = await client.echo(
      { value: new Uint8Array([1]) },
      { headers: { "x-scenario": scenario } },
    );
    return { message: [...res.value] };
  } catch (e) {
    return errorView(e);
  }
}

describe("the bare unary path = the whole response's message or error", () => {
  let server: WireServer;
  before(async () => (server = await startWireServer()));
  after(() => server.close());

  for (const protocol of ["connect", "grpc"] as const) {
    for (const guarded of [false, true]) {
      const names = Object.keys(scenarios).filter(
        (n) => n.startsWith(`${protocol}-`) || n.startsWith("break-"),
      );
      test(`${protocol}${guarded ? ", behind CallGuard (inline)" : ""}: ${names.length} wire answers`, async () => {
        for (const name of names) {
          const guard = new CallGuard("p", () => t.isBroken());
          const t = createH2Transport(
            server.url,
            {},
            { protocol, readMaxBytes: READ_MAX, interceptors: guarded ? [guard.interceptor] : [] },
          );
          try {
            const expected = await whole(t.transport, name);
            bareSeen.length = 0;
            const got = await bare(t.transport, name);
            assert.deepEqual(got, expected, name);
            assert.deepEqual(bareSeen, [true], `${name}: the bare path ran`);
            if (name.endsWith("-ok")) assert.ok("message" in (got as object), `${name}: a success`);
          } finally {
            t.close();
          }
        }
      });
    }

    test(`${protocol}: onHeader and onTrailer still get the real metadata (not the bare path)`, async () => {
      const t = createH2Transport(server.url, {}, { protocol });
      try {
        const client = createStreamCancellingClient(Bench, t.transport);
        let header: Headers | undefined;
        let trailer: Headers | undefined;
        bareSeen.length = 0;
        await client.echo(
          { value: new Uint8Array([1]) },
          {
            headers: { "x-scenario": `${protocol}-ok` },
            onHeader: (h) => (header = h),
            onTrailer: (tr) => (trailer = tr),
          },
        );
        assert.deepEqual(bareSeen, [false]);
        assert.ok(header instanceof Headers && trailer instanceof Headers);
        assert.equal(header.get("x-head"), "h1");
        assert.equal(trailer.get("x-tail"), "t1");
      } finally {
        t.close();
      }
    });
  }
});

describe("CallGuard inline (its only interceptor) = CallGuard in a chain", () => {
  let server: WireServer;
  before(async () => (server = await startWireServer()));
  after(() => server.close());

  /** An interceptor that changes nothing: the guard behind it runs as an interceptor. */
  const passThrough: Interceptor = (next) => (req) => next(req);

  for (const protocol of ["connect", "grpc"] as const) {
    test(`${protocol}: errors, refusals after close() and the count in flight are the same`, async () => {
      const outcomes: unknown[][] = [];
      for (const outer of [[], [passThrough]]) {
        const guard = new CallGuard("p", () => t.isBroken());
        const t = createH2Transport(
          server.url,
          {},
          { protocol, interceptors: [...outer, guard.interceptor] },
        );
        const seen: unknown[] = [];
        try {
          for (const scenario of [`${protocol}-ok`, "break-mid-response", "break-refused"]) {
            seen.push(await bare(t.transport, scenario), await whole(t.transport, scenario));
          }
          // A call in flight when the guard closes, then one after.
          const hanging = bare(t.transport, "hang");
          await new Promise((r) => setTimeout(r, 50));
          guard.close();
          seen.push(await hanging, await bare(t.transport, `${protocol}-ok`));
          let drained = false;
          await Promise.race([
            guard.drain(5_000).then(() => (drained = true)),
            new Promise((r) => setTimeout(r, 0)),
          ]);
          seen.push({ drained });
        } finally {
          t.close();
        }
        outcomes.push(seen);
      }
      assert.deepEqual(outcomes[0], outcomes[1]);
      const [closedInFlight, refused] = (outcomes[0] ?? []).slice(-3) as {
        code: string;
        message: string;
      }[];
      assert.equal(closedInFlight?.code, "Unavailable");
      assert.equal(closedInFlight?.message, "[unavailable] plugin p was closed");
      assert.equal(refused?.message, "[unavailable] plugin p was closed");
    });
  }
});
