/**
 * Every stream of an H2Session has the same own properties, in the same
 * order, whether the lean unary path or connect-es' streaming path uses it,
 * from creation to close: the lean path keeps its call state in a slot
 * every stream gets at creation (STREAM_SLOT). When only unary streams got
 * a property, V8 gave them another hidden class than server streams, and
 * the first server stream made it deoptimize some forty functions of
 * node's streams ("wrong map"): unary calls then cost about twice the host
 * CPU for thousands of calls (docs/http2-client.md, 2026-12-02).
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { createClient, type ConnectRouter } from "@connectrpc/connect";
import { H2Session, STREAM_SLOT, type SlottedStream } from "../../../src/transport/h2-session.js";
import { createNodeAdapter } from "../../../src/transport/node-adapter.js";
import { createProtocolTransport } from "../../../src/transport/protocol-transport.js";
import { Bench } from "../../../bench/service.js";

const routes = (router: ConnectRouter): void => {
  router.service(Bench, {
    echo: (req) => req,
    async *stream() {
      yield { value: new Uint8Array([1]) };
    },
  });
};

for (const protocol of ["connect", "grpc"] as const) {
  test(`${protocol}: unary and server-stream calls leave node's streams with the same own properties`, async () => {
    const server = http2.createServer(createNodeAdapter({ routes }));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const session = new H2Session(url);
    const streams: http2.ClientHttp2Stream[] = [];
    const atCreation: string[] = [];
    const request = session.request.bind(session);
    session.request = (headers, onClose) => {
      const stream = request(headers, onClose);
      streams.push(stream);
      atCreation.push(keys(stream));
      return stream;
    };
    try {
      const client = createClient(
        Bench,
        createProtocolTransport(protocol, session, { baseUrl: url }),
      );
      // The first stream is made while the session connects (node adds
      // its id and handle later, whoever made it): the others are compared.
      await client.echo({ value: new Uint8Array([1]) });
      await client.echo({ value: new Uint8Array([1]) });
      for await (const m of client.stream({ value: 1n }))
        assert.deepEqual(m.value, new Uint8Array([1]));
      await client.echo({ value: new Uint8Array([2]) });
      assert.equal(streams.length, 4);
      // Node adds one (`timeout`) as it destroys a stream: compared once all are done.
      const created = atCreation.slice(1);
      await Promise.all(
        streams.map((st) => (st.destroyed ? Promise.resolve() : once(st, "close"))),
      );
      await new Promise((resolve) => setImmediate(resolve));
      const ended = streams.slice(1).map(keys);
      assert.match(created[0] ?? "", /h2-stream-slot/);
      for (const k of created) assert.equal(k, created[0]);
      for (const k of ended) assert.equal(k, ended[0]);
    } finally {
      session.close();
      server.close();
    }
  });
}

for (const protocol of ["connect", "grpc"] as const) {
  test(`${protocol}: a unary call's stream lets go of the call's state once closed`, async () => {
    // A closed stream outlived young-generation GCs, and whatever it held
    // was copied and promoted with it: about half the scavenge time of a
    // host with 64 callers (docs/http2-client.md, session 12).
    const server = http2.createServer(createNodeAdapter({ routes }));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const session = new H2Session(url);
    const held: unknown[] = [];
    const streams: SlottedStream[] = [];
    const request = session.request.bind(session);
    session.request = (headers, onClose) => {
      const stream = request(headers, onClose) as SlottedStream;
      streams.push(stream);
      // The call's state is put in the slot right after the stream is made.
      queueMicrotask(() => held.push(stream[STREAM_SLOT]));
      return stream;
    };
    try {
      const client = createClient(
        Bench,
        createProtocolTransport(protocol, session, { baseUrl: url }),
      );
      await Promise.all([1, 2, 3].map((v) => client.echo({ value: new Uint8Array([v]) })));
      await Promise.all(
        streams.map((st) => (st.destroyed ? Promise.resolve() : once(st, "close"))),
      );
      assert.equal(streams.length, 3);
      assert.equal(held.filter((c) => c !== undefined).length, 3, "each call was in its slot");
      for (const st of streams) assert.equal(st[STREAM_SLOT], undefined);
    } finally {
      session.close();
      server.close();
    }
  });
}

/** A stream's own property names and symbols, in order. */
function keys(stream: object): string {
  return Reflect.ownKeys(stream)
    .map((k) => String(k))
    .join(",");
}
