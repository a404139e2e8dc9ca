/**
 * The negotiating network transport's HTTP fallback (framed/network.ts,
 * streamOverHttp), against a real node:http2 server that does not speak
 * the framed protocol.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { Code, ConnectError, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import {
  createNetworkTransport,
  negotiatedProtocol,
} from "../../../../src/transport/framed/network.js";
import { createNodeAdapter } from "../../../../src/transport/node-adapter.js";
import { Bench } from "../../../../bench/service.js";
import { GRPCBroker } from "../../../../src/gen/plugin/grpc_broker_pb.js";

test("over the HTTP fallback, an interceptor sees a stream's error before the call's signal fires (server and bidi streams)", async () => {
  // CallGuard reads a fired signal as the caller's own cancel or deadline:
  // settled above the interceptors, a plugin gone mid-stream came out as
  // Canceled instead of Unavailable "lost the connection" (as H2Target's
  // streams did before session 17, h2-target.test.ts).
  const failing = http2.createServer(
    createNodeAdapter({
      routes: (router: ConnectRouter) => {
        router.service(Bench, {
          echo: (req) => req,
          async *stream() {
            yield { value: new Uint8Array([1]) };
            throw new ConnectError("plugin failed", Code.Internal);
          },
        });
        router.service(GRPCBroker, {
          async *startStream() {
            yield { serviceId: 1 };
            throw new ConnectError("plugin failed", Code.Internal);
          },
        });
      },
    }),
  );
  await new Promise<void>((resolve) => failing.listen(0, "127.0.0.1", resolve));
  const url = new URL(`http://127.0.0.1:${(failing.address() as AddressInfo).port}`);
  const abortedWhenSeen: boolean[] = [];
  const watcher: Interceptor = (next) => async (req) => {
    const res = await next(req);
    if (!res.stream) return res;
    const messages = res.message;
    return {
      ...res,
      message: (async function* () {
        try {
          yield* messages;
        } catch (e) {
          abortedWhenSeen.push(req.signal.aborted);
          throw e;
        }
      })(),
    };
  };
  const drain = async (messages: AsyncIterable<unknown>): Promise<void> => {
    for await (const _ of messages) {
      // read to the error
    }
  };
  const internal = (e: unknown): boolean => {
    assert.ok(e instanceof ConnectError, String(e));
    assert.equal(Code[e.code], "Internal", e.message);
    assert.equal(e.rawMessage, "plugin failed");
    return true;
  };
  try {
    for (const protocol of ["connect", "grpc"] as const) {
      const t = createNetworkTransport(url, {
        transport: "auto",
        protocol,
        interceptors: [watcher],
      });
      try {
        const server = await t.transport.stream(
          Bench.method.stream,
          undefined,
          undefined,
          undefined,
          (async function* () {
            yield { value: 1n };
          })(),
        );
        assert.equal(negotiatedProtocol(t.transport), "http");
        await assert.rejects(drain(server.message), internal);
        const bidi = await t.transport.stream(
          GRPCBroker.method.startStream,
          undefined,
          undefined,
          undefined,
          (async function* () {
            yield { serviceId: 1 };
          })(),
        );
        await assert.rejects(drain(bidi.message), internal);
      } finally {
        t.close();
      }
    }
    assert.deepEqual(abortedWhenSeen, [false, false, false, false]);
  } finally {
    failing.close();
  }
});
