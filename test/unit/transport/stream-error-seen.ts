/**
 * Whether a call's signal had fired when an interceptor saw its stream's
 * error: a target that settles streams beneath the interceptors must leave
 * it unfired, or CallGuard reads the failure as the caller's own cancel or
 * deadline and passes a plugin's crash on as such (robustness.test.ts,
 * "dies mid-stream"). Shared by the H2Target and HTTP-fallback tests.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import type { ClientTransport } from "../../../src/transport/client-transport.js";
import { createNodeAdapter } from "../../../src/transport/node-adapter.js";
import { Bench } from "../../../bench/service.js";
import { GRPCBroker } from "../../../src/gen/plugin/grpc_broker_pb.js";

/**
 * Runs a server stream and a bidi stream, each yielding one message and
 * then failing with Internal "plugin failed", on a real node:http2 server,
 * through a transport `make` builds (Connect, then gRPC) with a watching
 * interceptor; `opened` is called after the first stream opened. Returns
 * the signal's state at each error, in order (four entries).
 */
export async function abortedWhenErrorSeen(
  make: (url: string, protocol: "connect" | "grpc", interceptors: Interceptor[]) => ClientTransport,
  opened: (t: ClientTransport) => void = () => {},
): Promise<boolean[]> {
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
  const url = `http://127.0.0.1:${(failing.address() as AddressInfo).port}`;
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
  const pluginFailed = (e: unknown): boolean => {
    assert.ok(e instanceof ConnectError, String(e));
    assert.equal(Code[e.code], "Internal", e.message);
    assert.equal(e.rawMessage, "plugin failed");
    return true;
  };
  try {
    for (const protocol of ["connect", "grpc"] as const) {
      const t = make(url, protocol, [watcher]);
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
        opened(t);
        await assert.rejects(drain(server.message), pluginFailed);
        const bidi = await t.transport.stream(
          GRPCBroker.method.startStream,
          undefined,
          undefined,
          undefined,
          (async function* () {
            yield { serviceId: 1 };
          })(),
        );
        await assert.rejects(drain(bidi.message), pluginFailed);
      } finally {
        t.close();
      }
    }
  } finally {
    failing.close();
  }
  return abortedWhenSeen;
}
