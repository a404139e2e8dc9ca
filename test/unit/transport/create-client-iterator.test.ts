/**
 * createStreamCancellingClient's plain iterator for streamed responses (its
 * cancelling is in create-client.test.ts). Each test runs the same calls through connect-es'
 * own createClient and ours, over connect-es' in-memory router transport
 * (real connect-es on both ends, no socket), and expects the same.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { createStreamCancellingClient } from "../../../src/transport/create-client.js";
import {
  Health,
  HealthCheckResponse_ServingStatus as Status,
} from "../../../src/gen/grpc/health/v1/health_pb.js";
import { GRPCBroker } from "../../../src/gen/plugin/grpc_broker_pb.js";

const transport = createRouterTransport(({ service }) => {
  service(Health, {
    check: () => ({ status: Status.SERVING }),
    async *watch(req, ctx) {
      ctx.responseHeader.set("x-head", "h");
      ctx.responseTrailer.set("x-tail", "t");
      if (req.service === "fail-first") throw new ConnectError("no", Code.NotFound);
      for (let i = 0; i < 3; i++) yield { status: i === 2 ? Status.NOT_SERVING : Status.SERVING };
      if (req.service === "fail-after") throw new ConnectError("broke", Code.DataLoss);
    },
  });
  service(GRPCBroker, {
    async *startStream(requests) {
      for await (const r of requests) yield { serviceId: r.serviceId + 1, network: r.network };
    },
  });
});

const clients = {
  "connect-es": createClient(Health, transport),
  ours: createStreamCancellingClient(Health, transport),
};

/** The statuses, the header and trailer seen, and the error, if any. */
async function watch(client: (typeof clients)["ours"], service: string) {
  const seen: {
    statuses: number[];
    header?: string | null;
    trailer?: string | null;
    error?: string;
  } = {
    statuses: [],
  };
  try {
    for await (const r of client.watch(
      { service },
      {
        onHeader: (h) => (seen.header = h.get("x-head")),
        onTrailer: (t) => (seen.trailer = t.get("x-tail")),
      },
    ))
      seen.statuses.push(r.status);
  } catch (error) {
    seen.error = `${ConnectError.from(error).code}: ${ConnectError.from(error).rawMessage}`;
  }
  return seen;
}

test("stream client: a server stream's messages, header, trailer and errors are connect-es' own", async () => {
  for (const service of ["", "fail-first", "fail-after"]) {
    const want = await watch(clients["connect-es"], service);
    const got = await watch(clients.ours, service);
    assert.deepEqual(got, want, service);
  }
  assert.deepEqual((await watch(clients.ours, "")).statuses, [
    Status.SERVING,
    Status.SERVING,
    Status.NOT_SERVING,
  ]);
  assert.equal((await watch(clients.ours, "fail-after")).error, `${Code.DataLoss}: broke`);
});

test("stream client: after the end or an error, next() answers done; unary calls are connect-es'", async () => {
  for (const service of ["", "fail-after"]) {
    const it = clients.ours.watch({ service })[Symbol.asyncIterator]();
    let r = await it.next();
    while (r.done !== true) {
      try {
        r = await it.next();
      } catch {
        break;
      }
    }
    assert.deepEqual(await it.next(), { done: true, value: undefined }, service);
  }
  assert.equal((await clients.ours.check({})).status, Status.SERVING);
});

test("stream client: next() called again before the last settled gets the messages in order", async () => {
  const it = clients.ours.watch({ service: "" })[Symbol.asyncIterator]();
  const all = await Promise.all([it.next(), it.next(), it.next(), it.next(), it.next()]);
  assert.deepEqual(
    all.map((r) => (r.done === true ? "done" : r.value.status)),
    [Status.SERVING, Status.SERVING, Status.NOT_SERVING, "done", "done"],
  );
});

test("stream client: a bidi stream's answers come through the plain iterator too", async () => {
  const broker = createStreamCancellingClient(GRPCBroker, transport);
  async function* requests() {
    for (let i = 1; i <= 3; i++) yield { serviceId: i * 10, network: "unix" };
  }
  const got: number[] = [];
  for await (const r of broker.startStream(requests())) got.push(r.serviceId);
  assert.deepEqual(got, [11, 21, 31]);
});
