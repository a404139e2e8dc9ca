/**
 * Hardening of timeouts and of the framed protocol (issues 17 and 12), each
 * shown as a user sees it, with real servers and clients on loopback:
 *
 * - a timeout beyond setTimeout's 2^31-1 ms (a `grpc-timeout: 99999999H`)
 *   is no deadline, on every client and server path, where it used to fire
 *   after 1 ms and fail the call with DeadlineExceeded;
 * - a framed handler that never reads its request stream fails its own call
 *   with ResourceExhausted once maxQueuedRequestBytes is queued, and the
 *   connection's other calls go on;
 * - an idle network framed connection is closed by the server (goaway), the
 *   client's next call dials again without an error, and a call in flight
 *   is not cut;
 * - a peer that trickles its preface or TLS handshake is cut off at the
 *   preface timeout, counted from the connection's start.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import * as net from "node:net";
import * as tls from "node:tls";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  type Client,
  type ConnectRouter,
  type HandlerContext,
} from "@connectrpc/connect";
import {
  GetRequestSchema,
  GetResponseSchema,
  KV,
  PutRequestSchema,
  WatchEventSchema,
  WatchRequestSchema,
} from "../examples/kv/gen/example/kv/v1/kv_pb.js";
import { createUrlTransport, type ClientTransport } from "../src/transport/client-transport.js";
import { MAX_TIMER_MS } from "../src/transport/deadline.js";
import { FrameType, encodeFrame, jsonPayload } from "../src/transport/framed/frames.js";
import { createNetworkTransport, negotiatedProtocol } from "../src/transport/framed/network.js";
import { FRAMED_PREFACE } from "../src/transport/framed/preface.js";
import { FramedServer, type FramedServerOptions } from "../src/transport/framed/server.js";
import { PluginHttpServer, type FramedListener } from "../src/transport/http-server.js";
import { createNodeAdapter } from "../src/transport/node-adapter.js";
import { cluster, inProcess, staticEndpoints, type PluginSource } from "../src/index.js";
import { faultyKvDefinition } from "./fixtures/faulty-kv.js";
import { fakeFramedServer, rawFramed } from "./framed-raw.js";
import { decode, encode, kvClient, makeTestPki, startNetworkPlugin, waitFor } from "./helpers.js";

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** A timeout beyond setTimeout's reach: 10 × 2^31 ms, about 248 days. */
const HUGE_MS = MAX_TIMER_MS * 10;
/** How long each handler works: a deadline that fired after 1 ms would fail it. */
const WORK_MS = 30;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** What a handler saw of its deadline: "none" or the ms left. */
const deadlineSeen = (ctx: HandlerContext): string => {
  const left = ctx.timeoutMs();
  return left === undefined ? "none" : String(left);
};

/**
 * A KV whose Get works WORK_MS and answers the deadline it saw; Watch sends
 * two events WORK_MS apart; PutMany never reads its requests (it waits for
 * its call to end); Exchange reads and echoes.
 */
function routes(seen: Seen) {
  return (router: ConnectRouter): void => {
    router.service(KV, {
      async get(req, ctx) {
        await sleep(WORK_MS);
        return { found: true, value: encode(`${req.key}:${deadlineSeen(ctx)}`) };
      },
      async put() {
        seen.puts = (seen.puts ?? 0) + 1;
        return {};
      },
      async *watch(req, ctx) {
        for (let i = 0; i < 2; i++) {
          await sleep(WORK_MS);
          yield { key: req.key, value: encode(`${i}:${deadlineSeen(ctx)}`) };
        }
      },
      async putMany(requests, ctx) {
        await new Promise<void>((resolve) =>
          ctx.signal.addEventListener("abort", () => resolve(), { once: true }),
        );
        seen.aborted.push(String((ctx.signal.reason as ConnectError).code));
        // A handler that reads on after its call failed gets the error at
        // once: the requests queued for it were dropped with the call.
        let read = 0;
        try {
          for await (const _ of requests) read++;
        } catch {
          // the call's end
        }
        seen.readAfterAbort = read;
        return { count: 0 };
      },
      async *exchange(requests) {
        for await (const r of requests) yield { found: true, value: encode(r.key) };
      },
    });
  };
}

/** What the handlers saw: the codes their calls were aborted with, Puts run, requests read after an abort. */
interface Seen {
  aborted: string[];
  puts?: number;
  readAfterAbort?: number;
}

interface Port {
  readonly url: string;
  readonly port: number;
  readonly seen: Seen;
  /** Framed connections the port accepted, and how many have closed. */
  readonly framed: { accepted: number; closed: number };
}

/** One network-mode port (HTTP/1.1, h2c, framed), as serve() builds it, with a test's framed options. */
async function networkPort(
  framedOptions: FramedServerOptions = {},
  extra: { prefaceTimeoutMs?: number; onPeerCutOff?: (reason: string) => void } = {},
  custom?: (router: ConnectRouter) => void,
): Promise<Port> {
  const seen: Seen = { aborted: [] };
  const r = custom ?? routes(seen);
  const framedServer = FramedServer.detached(r, framedOptions);
  const framed = { accepted: 0, closed: 0 };
  const counting: FramedListener = {
    accept: (socket) => {
      framed.accepted++;
      socket.once("close", () => framed.closed++);
      framedServer.accept(socket);
    },
    close: (graceMs) => framedServer.close(graceMs),
  };
  const server = await PluginHttpServer.listen(
    createNodeAdapter({ routes: r }),
    { network: "tcp", host: "127.0.0.1", port: 0 },
    { acceptHttp1: true, framed: counting, ...extra },
  );
  cleanups.push(() => server.close());
  const port = (server.bound as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, port, seen, framed };
}

function track(t: ClientTransport): ClientTransport {
  cleanups.push(() => t.close());
  return t;
}

/** Every client path the project has to a network port. */
const clientPaths: Array<{ name: string; make: (url: string) => ClientTransport }> = [
  {
    name: "framed",
    make: (url) => createNetworkTransport(new URL(url), { transport: "framed" }),
  },
  {
    name: "Connect over HTTP/2",
    make: (url) => createUrlTransport(new URL(url), { protocol: "connect" }),
  },
  {
    name: "gRPC over HTTP/2",
    make: (url) => createUrlTransport(new URL(url), { protocol: "grpc" }),
  },
  {
    name: "gRPC-web over HTTP/2",
    make: (url) => createUrlTransport(new URL(url), { protocol: "grpc-web" }),
  },
  {
    name: "Connect over HTTP/1.1",
    make: (url) => createUrlTransport(new URL(url), { protocol: "connect", httpVersion: "1.1" }),
  },
];

describe("a timeout beyond setTimeout's 2^31-1 ms is no deadline", () => {
  for (const path of clientPaths) {
    test(`${path.name}: unary and server-streaming calls with a ${HUGE_MS} ms timeout succeed; real deadlines still apply`, async () => {
      const port = await networkPort();
      const t = track(path.make(port.url));
      const kv = createClient(KV, t.transport);
      const got = await kv.get({ key: "k" }, { timeoutMs: HUGE_MS });
      assert.equal(decode(got.value), "k:none", "the handler saw no deadline");
      const events: string[] = [];
      for await (const e of kv.watch({ key: "w" }, { timeoutMs: HUGE_MS })) {
        events.push(decode(e.value));
      }
      assert.deepEqual(events, ["0:none", "1:none"]);
      // A reachable timeout is still a deadline, seen by the handler and enforced.
      const normal = decode((await kv.get({ key: "k" }, { timeoutMs: 60_000 })).value);
      const left = Number(normal.split(":")[1]);
      assert.ok(left > 0 && left <= 60_000, `the handler saw ${normal}`);
      await assert.rejects(
        kv.get({ key: "k" }, { timeoutMs: 5 }),
        (e: unknown) => ConnectError.from(e).code === Code.DeadlineExceeded,
      );
    });
  }

  const sources: Array<[string, () => Promise<PluginSource>]> = [
    [
      "in process, serialized (connect-es' router transport)",
      () => Promise.resolve(inProcess(faultyKvDefinition(), { mode: "serialize" })),
    ],
    [
      "cluster (its attempt's hard deadline is not armed)",
      async () => {
        const plugin = await startNetworkPlugin();
        cleanups.push(async () => void (await plugin.stop()));
        return cluster({ discovery: staticEndpoints([plugin.url]) });
      },
    ],
  ];
  for (const [name, source] of sources) {
    test(`${name}: a call with a huge timeout succeeds`, async () => {
      const client = kvClient(await source());
      cleanups.push(() => client.close());
      await client.start();
      const kv = client.dispense("kv");
      await kv.put({ key: "slow:50", value: encode("later") });
      const got = await kv.get({ key: "slow:50" }, { timeoutMs: HUGE_MS });
      assert.equal(decode(got.value), "later");
      const left = await kv.get({ key: "deadline" }, { timeoutMs: HUGE_MS });
      assert.equal(decode(left.value), "-1", "the handler saw no deadline");
    });

    test(`${name}: a timeoutMs of 0, of -1 or NaN is no timeout (as connect-es reads it), not one already passed`, async () => {
      const client = kvClient(await source());
      cleanups.push(() => client.close());
      await client.start();
      const kv = client.dispense("kv");
      await kv.put({ key: "slow:30", value: encode("later") });
      for (const timeoutMs of [0, -1, Number.NaN]) {
        const got = await kv.get({ key: "slow:30" }, { timeoutMs });
        assert.equal(decode(got.value), "later", `timeoutMs ${timeoutMs}`);
      }
    });
  }

  /** A raw HTTP/2 request to `port`: the status, the response body and the trailers. */
  async function rawH2(
    port: Port,
    path: string,
    headers: http2.OutgoingHttpHeaders,
    body: Uint8Array,
  ): Promise<{ status: number; body: Buffer; trailers: http2.IncomingHttpHeaders }> {
    const session = http2.connect(port.url);
    cleanups.push(() => void session.close());
    const stream = session.request({ ":method": "POST", ":path": path, ...headers });
    const chunks: Buffer[] = [];
    let status = 0;
    let trailers: http2.IncomingHttpHeaders = {};
    stream.on("response", (h) => (status = Number(h[":status"])));
    stream.on("trailers", (h: http2.IncomingHttpHeaders) => (trailers = h));
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.end(body);
    await new Promise<void>((resolve, reject) => {
      stream.on("close", resolve);
      stream.on("error", reject);
    });
    session.close();
    return { status, body: Buffer.concat(chunks), trailers };
  }

  /** gRPC's (and Connect streaming's) envelope: flags, length, message. */
  const envelope = (message: Uint8Array, flags = 0): Buffer => {
    const head = Buffer.alloc(5);
    head.writeUInt8(flags, 0);
    head.writeUInt32BE(message.length, 1);
    return Buffer.concat([head, message]);
  };
  const unenvelope = (body: Buffer): Array<{ flags: number; data: Buffer }> => {
    const out: Array<{ flags: number; data: Buffer }> = [];
    for (let at = 0; at < body.length;) {
      const length = body.readUInt32BE(at + 1);
      out.push({ flags: body[at] as number, data: body.subarray(at + 5, at + 5 + length) });
      at += 5 + length;
    }
    return out;
  };
  const getRequest = toBinary(GetRequestSchema, create(GetRequestSchema, { key: "raw" }));
  const watchRequest = toBinary(WatchRequestSchema, create(WatchRequestSchema, { key: "raw" }));

  test("raw headers: Connect unary (connect-timeout-ms: 9999999999) and Connect streaming (connect-es' handler) succeed", async () => {
    const port = await networkPort();
    const unary = await rawH2(
      port,
      "/example.kv.v1.KV/Get",
      {
        "content-type": "application/proto",
        "connect-protocol-version": "1",
        "connect-timeout-ms": "9999999999",
      },
      getRequest,
    );
    assert.equal(unary.status, 200, unary.body.toString());
    assert.equal(decode(fromBinary(GetResponseSchema, unary.body).value), "raw:none");
    const stream = await rawH2(
      port,
      "/example.kv.v1.KV/Watch",
      {
        "content-type": "application/connect+proto",
        "connect-protocol-version": "1",
        "connect-timeout-ms": "9999999999",
      },
      envelope(watchRequest),
    );
    assert.equal(stream.status, 200);
    const frames = unenvelope(stream.body);
    const events = frames
      .filter((f) => f.flags === 0)
      .map((f) => decode(fromBinary(WatchEventSchema, f.data).value));
    assert.deepEqual(events, ["0:none", "1:none"]);
    const end = frames.find((f) => f.flags === 2);
    assert.deepEqual(JSON.parse(end?.data.toString() ?? "null"), {}, "end of stream without error");
  });

  test("raw headers: gRPC unary (the lean path) and server streaming (connect-es' handler) with grpc-timeout: 99999999H succeed", async () => {
    const port = await networkPort();
    const grpc = {
      "content-type": "application/grpc",
      te: "trailers",
      "grpc-timeout": "99999999H",
    };
    const unary = await rawH2(port, "/example.kv.v1.KV/Get", grpc, envelope(getRequest));
    assert.equal(unary.trailers["grpc-status"], "0", String(unary.trailers["grpc-message"]));
    const [answer] = unenvelope(unary.body);
    assert.equal(
      decode(fromBinary(GetResponseSchema, answer?.data ?? new Uint8Array()).value),
      "raw:none",
    );
    const stream = await rawH2(port, "/example.kv.v1.KV/Watch", grpc, envelope(watchRequest));
    assert.equal(stream.trailers["grpc-status"], "0", String(stream.trailers["grpc-message"]));
    assert.deepEqual(
      unenvelope(stream.body).map((f) => decode(fromBinary(WatchEventSchema, f.data).value)),
      ["0:none", "1:none"],
    );
  });

  test("raw frames: a framed open frame with t = 99999999 hours succeeds", async () => {
    const port = await networkPort();
    const raw = rawFramedKv(port.port);
    raw.socket.write(
      Buffer.concat([
        encodeFrame(
          FrameType.open,
          1,
          jsonPayload({ p: "/example.kv.v1.KV/Get", t: 99999999 * 3_600_000 }),
        ),
        encodeFrame(FrameType.message, 1, getRequest),
        encodeFrame(FrameType.end, 1),
      ]),
    );
    await waitFor("the call's trailer", () => raw.trailer(1) !== undefined);
    const message = raw.frames.find((f) => f.type === FrameType.message);
    assert.equal(
      decode(fromBinary(GetResponseSchema, message?.payload ?? Buffer.alloc(0)).value),
      "raw:none",
    );
    const end = raw.trailer(1) ?? {};
    assert.equal(end.e, undefined, "the trailer carries no error");
  });
});

describe("framed: request messages a handler leaves unread are capped per call", () => {
  test("a handler that never reads fails its own call with ResourceExhausted naming the cap; the connection's other calls go on", async () => {
    const cap = 64 * 1024;
    const port = await networkPort({ maxQueuedRequestBytes: cap });
    const t = track(createNetworkTransport(new URL(port.url), { transport: "framed" }));
    const kv = createClient(KV, t.transport);
    // A bidi stream on the same connection, open across the failure.
    const toExchange: string[] = [];
    let wake: (() => void) | undefined;
    const exchangeInput = (async function* () {
      for (let i = 0; ; i++) {
        while (toExchange.length === 0) await new Promise<void>((r) => (wake = r));
        const key = toExchange.shift() as string;
        if (key === "end") return;
        yield { key };
      }
    })();
    const exchange = kv.exchange(exchangeInput)[Symbol.asyncIterator]();
    const ask = async (key: string): Promise<string> => {
      toExchange.push(key);
      wake?.();
      const r = await exchange.next();
      return decode((r.value as { value: Uint8Array }).value);
    };
    assert.equal(await ask("before"), "before");
    let sent = 0;
    const value = new Uint8Array(1024);
    const error = await kv
      .putMany(
        (async function* () {
          // 100 times the cap: without it, all of it would be queued.
          for (; sent < (cap / 1024) * 100; sent++) yield { key: `k${sent}`, value };
        })(),
      )
      .then(
        () => assert.fail("the call succeeded"),
        (e: unknown) => ConnectError.from(e),
      );
    assert.equal(error.code, Code.ResourceExhausted);
    assert.equal(
      error.rawMessage,
      `request messages not yet read by the handler exceed maxQueuedRequestBytes ${cap} ` +
        "(the handler does not read its request stream as fast as it is sent)",
    );
    assert.ok(sent < (cap / 1024) * 100, `the client stopped sending (sent ${sent})`);
    await waitFor("the handler's call to be aborted", () => port.seen.aborted.length === 1);
    await waitFor("the handler to read on", () => port.seen.readAfterAbort !== undefined);
    assert.equal(
      port.seen.readAfterAbort,
      0,
      "the requests queued for the failed call were dropped",
    );
    // The connection and its other calls go on.
    assert.equal(await ask("after"), "after");
    assert.equal(decode((await kv.get({ key: "g" })).value), "g:none");
    assert.equal(port.framed.accepted, 1, "one connection throughout");
    assert.equal(negotiatedProtocol(t.transport), "framed");
    toExchange.push("end");
    wake?.();
  });

  test("a handler that stops reading early (break) and then answers is answered, however much the client sends after", async () => {
    const cap = 64 * 1024;
    let gotFirst: (() => void) | undefined;
    const first = new Promise<void>((resolve) => (gotFirst = resolve));
    let broke: (() => void) | undefined;
    const stopped = new Promise<void>((resolve) => (broke = resolve));
    const port = await networkPort({ maxQueuedRequestBytes: cap }, {}, (router) =>
      router.service(KV, {
        async putMany(requests) {
          let count = 0;
          for await (const _ of requests) {
            count++;
            gotFirst?.();
            // The requests sent meanwhile queue up unread, up to the cap.
            await sleep(300);
            break;
          }
          broke?.();
          await sleep(300);
          return { count };
        },
      }),
    );
    const t = track(createNetworkTransport(new URL(port.url), { transport: "framed" }));
    const kv = createClient(KV, t.transport);
    const value = new Uint8Array(1000);
    const size = toBinary(PutRequestSchema, create(PutRequestSchema, { key: "a00", value })).length;
    const res = await kv.putMany(
      (async function* () {
        yield { key: "a00", value };
        await first;
        // As many as fit under the cap, unread; then, once the handler has
        // stopped reading, 10 × the cap.
        for (let i = 0; i < Math.floor(cap / size); i++) yield { key: "a00", value };
        await stopped;
        for (let i = 0; i < Math.ceil((cap * 10) / size); i++) yield { key: "b00", value };
      })(),
    );
    assert.equal(res.count, 1);
  });

  test("only unread bytes count: a message larger than the cap, and many times the cap in all, reach a handler that reads", async () => {
    const cap = 64 * 1024;
    const port = await networkPort({ maxQueuedRequestBytes: cap });
    const t = track(createNetworkTransport(new URL(port.url), { transport: "framed" }));
    const kv = createClient(KV, t.transport);
    // Each request waits for the answer to the one before (a client that
    // does not run ahead of its handler): 4 × the cap in one message, then
    // 200 × 1 KiB.
    const keys = [
      "x".repeat(4 * cap),
      ...Array.from({ length: 200 }, (_, i) => `${i}`.padEnd(1024, ".")),
    ];
    assert.equal(await exchangeInStep(kv, keys), keys.length);
  });
});

/**
 * Sends `keys` through Exchange, each once the one before was answered (a
 * client that does not run ahead of its handler); checks each echo, and
 * returns how many were answered.
 */
async function exchangeInStep(kv: Client<typeof KV>, keys: string[]): Promise<number> {
  let answered = 0;
  let next: (() => void) | undefined;
  const answers = kv.exchange(
    (async function* () {
      for (const [i, key] of keys.entries()) {
        while (answered < i) await new Promise<void>((r) => (next = r));
        yield { key };
      }
    })(),
  );
  for await (const r of answers) {
    assert.equal(decode(r.value), keys[answered]);
    answered++;
    next?.();
  }
  return answered;
}

describe("framed: request messages left unread are capped per connection too", () => {
  test("calls that each stay under the per-call cap cannot together queue more than maxConnectionQueuedRequestBytes; bytes of ended calls stop counting", async () => {
    const perCall = 64 * 1024;
    const perConnection = 160 * 1024;
    const port = await networkPort({
      maxQueuedRequestBytes: perCall,
      maxConnectionQueuedRequestBytes: perConnection,
    });
    const t = track(createNetworkTransport(new URL(port.url), { transport: "framed" }));
    const kv = createClient(KV, t.transport);
    const value = new Uint8Array(1000);
    /** A PutMany the handler never reads: `count` messages (about 1 KiB each), then it waits to be cancelled. */
    const holding = async (count: number) => {
      const cancel = new AbortController();
      let sent!: () => void;
      const allSent = new Promise<void>((r) => (sent = r));
      const call = kv
        .putMany(
          (async function* () {
            for (let i = 0; i < count; i++) yield { key: `h${i}`, value };
            sent();
            await new Promise((r) => cancel.signal.addEventListener("abort", r));
          })(),
          { signal: cancel.signal },
        )
        .then(
          () => undefined,
          (e: unknown) => ConnectError.from(e),
        );
      await allSent;
      return { cancel: () => cancel.abort(), call };
    };
    const round = async (): Promise<void> => {
      const aborted = port.seen.aborted.length;
      // 2 × 60 messages, each call under its own 64 KiB.
      const held = [await holding(60), await holding(60)];
      // A third call, also under its own cap, crosses the connection's.
      const third = kv.putMany(
        (async function* () {
          for (let i = 0; i < 60; i++) yield { key: `t${i}`, value };
        })(),
        // Without the cap it would wait for ever (its handler never reads).
        { timeoutMs: 10_000 },
      );
      const error = await third.then(
        () => assert.fail("the call succeeded"),
        (e: unknown) => ConnectError.from(e),
      );
      assert.deepEqual(
        [error.code, error.rawMessage.slice(0, 40)],
        [Code.ResourceExhausted, "request messages not yet read by the han"],
      );
      assert.equal(
        error.rawMessage,
        `request messages not yet read by the handlers of this connection's calls exceed ` +
          `maxConnectionQueuedRequestBytes ${perConnection} (the handlers do not read their ` +
          "request streams as fast as they are sent)",
      );
      // The calls that filled the connection are still open: only the third failed.
      await waitFor(
        "the third call's handler to be aborted",
        () => port.seen.aborted.length === aborted + 1,
      );
      for (const h of held) h.cancel();
      for (const h of held) assert.equal((await h.call)?.code, Code.Canceled);
      await waitFor(
        "the held calls' handlers to be aborted",
        () => port.seen.aborted.length === aborted + 3,
      );
    };
    await round();
    // The same again: had the ended calls' bytes still counted, the first
    // held call would fail at once.
    await round();
    // Bytes a handler has read no longer count: twice the connection's cap,
    // 1 KiB at a time, to a handler that reads each message.
    const keys = Array.from({ length: (2 * perConnection) / 1024 }, (_, i) =>
      `${i}`.padEnd(1024, "."),
    );
    assert.equal(await exchangeInStep(kv, keys), keys.length);
    assert.equal(port.framed.accepted, 1, "one connection throughout");
  });

  test("a call that succeeds with requests still unread stops counting them: its connection takes more than maxConnectionQueuedRequestBytes afterwards", async () => {
    const perConnection = 160 * 1024;
    let release!: () => void;
    let released = new Promise<void>((r) => (release = r));
    let puts = 0;
    const port = await networkPort(
      { maxQueuedRequestBytes: 64 * 1024, maxConnectionQueuedRequestBytes: perConnection },
      {},
      (router) =>
        router.service(KV, {
          put() {
            puts++;
            return {};
          },
          // Reads one request, waits for the test, then answers, leaving the
          // others unread (no for-await, so the iterator is never returned).
          async putMany(requests) {
            await requests[Symbol.asyncIterator]().next();
            await released;
            return { count: 1 };
          },
          async *exchange(requests) {
            for await (const r of requests) yield { found: true, value: encode(r.key) };
          },
        }),
    );
    const t = track(createNetworkTransport(new URL(port.url), { transport: "framed" }));
    const kv = createClient(KV, t.transport);
    const value = new Uint8Array(1000);
    // Three calls that each leave 59 messages (about 60 KiB) unread: 180 KiB in all.
    for (let round = 0; round < 3; round++) {
      let sent!: () => void;
      const allSent = new Promise<void>((r) => (sent = r));
      let done!: () => void;
      const answered = new Promise<void>((r) => (done = r));
      const call = kv.putMany(
        (async function* () {
          for (let i = 0; i < 60; i++) yield { key: `l${i}`, value };
          sent();
          await answered;
        })(),
      );
      await allSent;
      // Frames are read in order on the one connection: once this Put is
      // answered, the server has queued every PutMany message before it.
      await kv.put({ key: "mark", value });
      release();
      assert.equal((await call).count, 1);
      done();
      released = new Promise<void>((r) => (release = r));
    }
    assert.equal(puts, 3);
    // Were the ended calls' 180 KiB still counted, the first message here
    // would cross the connection's 160 KiB and fail with ResourceExhausted.
    const keys = Array.from({ length: 8 }, (_, i) => `${i}`.padEnd(1024, "."));
    assert.equal(await exchangeInStep(kv, keys), keys.length);
    assert.equal(port.framed.accepted, 1, "one connection throughout");
  });
});

describe("framed: idle network connections", () => {
  test("the server closes an idle connection; the next call dials again without an error; a call in flight is not cut", async () => {
    const idleMs = 300;
    const port = await networkPort({ idleTimeoutMs: idleMs });
    const t = track(createNetworkTransport(new URL(port.url), { transport: "framed" }));
    const kv = createClient(KV, t.transport);
    assert.equal(decode((await kv.get({ key: "a" })).value), "a:none");
    await waitFor("the server to close the idle connection", () => port.framed.closed === 1);
    assert.equal(t.isBroken(), false, "a connection closed as idle is not a broken plugin");
    assert.equal(decode((await kv.get({ key: "b" })).value), "b:none");
    assert.equal(port.framed.accepted, 2, "the call after the close dialled a new connection");
    assert.equal(negotiatedProtocol(t.transport), "framed");
    // A stream open for several idle timeouts: its connection is not idle.
    const toExchange: string[] = [];
    const answers: string[] = [];
    let wake: (() => void) | undefined;
    const input = (async function* () {
      for (;;) {
        while (toExchange.length === 0) await new Promise<void>((r) => (wake = r));
        const key = toExchange.shift() as string;
        if (key === "end") return;
        yield { key };
      }
    })();
    const reading = (async () => {
      for await (const r of kv.exchange(input)) answers.push(decode(r.value));
    })();
    for (let i = 0; i < 4; i++) {
      toExchange.push(`s${i}`);
      wake?.();
      await waitFor(`answer ${i}`, () => answers.length === i + 1);
      // Longer than the idle timeout between two messages of the call.
      await sleep(idleMs);
    }
    toExchange.push("end");
    wake?.();
    await reading;
    assert.deepEqual(answers, ["s0", "s1", "s2", "s3"]);
    assert.equal(port.framed.closed, 1, "the connection with a call in flight stayed open");
    assert.equal(port.framed.accepted, 2);
  });

  test("protocol: the idle server sends goaway (type 7, call 0) and closes once the client ends", async () => {
    const port = await networkPort({ idleTimeoutMs: 200 });
    const socket = net.connect({ host: "127.0.0.1", port: port.port });
    cleanups.push(() => void socket.destroy());
    const got: Buffer[] = [];
    socket.on("data", (c: Buffer) => got.push(c));
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    socket.write(FRAMED_PREFACE);
    const goaway = encodeFrame(FrameType.goaway, 0);
    await waitFor("goaway", () =>
      Buffer.concat(got).subarray(FRAMED_PREFACE.length).equals(goaway),
    );
    socket.end();
    await closed;
    await waitFor("the server side to close", () => port.framed.closed === 1);
  });
});

/** A raw framed client (test/framed-raw.ts) that can also open a Put. */
function rawFramedKv(port: number) {
  const raw = rawFramed(port, (socket) => cleanups.push(() => void socket.destroy()));
  const putRequest = toBinary(PutRequestSchema, create(PutRequestSchema, { key: "k" }));
  return {
    ...raw,
    /** Opens call `id`: one Put (a call that is not idempotent). */
    put(id: number): void {
      raw.socket.write(
        Buffer.concat([
          encodeFrame(FrameType.open, id, jsonPayload({ p: "/example.kv.v1.KV/Put" })),
          encodeFrame(FrameType.message, id, putRequest),
          encodeFrame(FrameType.end, id),
        ]),
      );
    },
  };
}

describe("framed: a call that crosses the server's goaway", () => {
  test("an open frame the server reads after its goaway (the client had not read it yet) is served", async () => {
    const port = await networkPort({ idleTimeoutMs: 100 });
    const raw = rawFramedKv(port.port);
    await waitFor("goaway", () => raw.frames.some((f) => f.type === FrameType.goaway));
    raw.put(1);
    await waitFor("the call's trailer", () => raw.trailer(1) !== undefined);
    assert.equal(raw.trailer(1)?.e, undefined, "the call succeeded");
    assert.equal(port.seen.puts, 1);
  });

  test("an open frame that crosses the server's end (a client that ignores goaway) is not run: the client sees the connection close", async () => {
    const port = await networkPort({ idleTimeoutMs: 100 });
    const raw = rawFramedKv(port.port);
    // The grace after goaway (10 s), then the server ends its side.
    await waitFor("the server to end the connection", raw.ended, 20_000);
    raw.put(1);
    raw.socket.end();
    await waitFor("the connection to close", raw.closed);
    await waitFor("the server side to close", () => port.framed.closed === 1);
    await sleep(50);
    assert.equal(raw.trailer(1), undefined, "no answer can reach the client");
    assert.equal(port.seen.puts, undefined, "so the call was not run either");
  });

  test("calls made around the idle timeout, many times over, are each run exactly once and all succeed", async () => {
    const idleMs = 20;
    const port = await networkPort({ idleTimeoutMs: idleMs });
    const t = track(createNetworkTransport(new URL(port.url), { transport: "framed" }));
    const kv = createClient(KV, t.transport);
    const rounds = 150;
    let ok = 0;
    const failures: string[] = [];
    for (let i = 0; i < rounds; i++) {
      // Pauses spread across the idle timeout, so that goaways and new calls cross.
      await sleep(idleMs - 5 + (i % 11));
      const calls = i % 3 === 0 ? 2 : 1;
      const results = await Promise.allSettled(
        Array.from({ length: calls }, () => kv.put({ key: `k${i}` })),
      );
      for (const r of results) {
        if (r.status === "fulfilled") ok++;
        else failures.push(ConnectError.from(r.reason).message);
      }
    }
    const made = rounds + Math.ceil(rounds / 3);
    assert.deepEqual(failures, []);
    assert.equal(ok, made);
    assert.equal(port.seen.puts, made, "each call ran exactly once");
    assert.ok(
      port.framed.accepted > 1,
      `connections closed as idle and dialled again (${port.framed.accepted})`,
    );
    assert.equal(t.isBroken(), false);
  });
});

describe("framed client: a connection told goaway with a call still open", () => {
  test("fake server (goaway in answer to each call, which it never answers): the transport's close() fails the call on the drained connection too", async () => {
    // A fake: no real server sends goaway with a call open (only a call that
    // crossed it can be), and none leaves a call unanswered on purpose.
    const fake = await fakeFramedServer((socket, type) => {
      if (type === FrameType.open) socket.write(encodeFrame(FrameType.goaway, 0));
    });
    cleanups.push(() => fake.close());
    const { port, sockets } = fake;
    const t = createNetworkTransport(new URL(`http://127.0.0.1:${port}`), { transport: "framed" });
    const kv = createClient(KV, t.transport);
    const settled = (p: Promise<unknown>): Promise<ConnectError | "answered"> =>
      p.then(
        () => "answered" as const,
        (e: unknown) => ConnectError.from(e),
      );
    const calls = [settled(kv.get({ key: "a" }))];
    // Once the client has read the goaway, its next call dials a second
    // connection; a call made before that lands on the first one, which is
    // then draining as well.
    for (let i = 0; sockets.length < 2; i++) {
      assert.ok(i < 200, "a call after the goaway dialled a new connection");
      await sleep(20);
      if (sockets.length < 2) calls.push(settled(kv.get({ key: `b${i}` })));
    }
    t.close();
    const hung = sleep(5_000).then(() => "hung" as const);
    for (const [i, call] of calls.entries()) {
      const r = await Promise.race([call, hung]);
      assert.ok(r instanceof ConnectError, `call ${i}: ${String(r)}`);
      assert.equal(r.code, Code.Unavailable, `call ${i}: ${r.message}`);
    }
  });
});

describe("a peer that trickles its preface is cut off at the preface timeout from the connection's start", () => {
  const trickle = async (
    connect: () => net.Socket,
    bytes: Buffer,
  ): Promise<{ ms: number; sent: number }> => {
    const started = Date.now();
    const socket = connect();
    socket.on("error", () => {});
    cleanups.push(() => void socket.destroy());
    let sent = 0;
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    const timer = setInterval(() => {
      if (sent < bytes.length && !socket.destroyed) socket.write(bytes.subarray(sent, ++sent));
    }, 100);
    await closed;
    clearInterval(timer);
    return { ms: Date.now() - started, sent };
  };

  test("cleartext: the framed preface a byte every 100 ms (its 13 bytes take 1.3 s)", async () => {
    const cutOffs: string[] = [];
    const port = await networkPort(
      {},
      { prefaceTimeoutMs: 500, onPeerCutOff: (reason) => cutOffs.push(reason) },
    );
    const r = await trickle(
      () => net.connect({ host: "127.0.0.1", port: port.port }),
      FRAMED_PREFACE,
    );
    assert.ok(r.sent < FRAMED_PREFACE.length, `cut off after ${r.sent} bytes, ${r.ms} ms`);
    assert.equal(port.framed.accepted, 0);
    assert.equal(cutOffs.length, 1);
    assert.match(cutOffs[0] as string, /cut off: no protocol preface within 500 ms$/);
  });

  test("TLS: a ClientHello a byte every 100 ms", async () => {
    const pki = makeTestPki("framedhard-tls-");
    const f = (n: string): Buffer => readFileSync(join(pki, n));
    const seen: Seen = { aborted: [] };
    const r = routes(seen);
    const server = await PluginHttpServer.listen(
      createNodeAdapter({ routes: r }),
      { network: "tcp", host: "127.0.0.1", port: 0 },
      {
        acceptHttp1: true,
        tls: { cert: f("server.crt"), key: f("server.key") },
        framed: FramedServer.detached(r),
        prefaceTimeoutMs: 500,
      },
    );
    cleanups.push(() => server.close());
    const port = (server.bound as { port: number }).port;
    // A real ClientHello, captured from node's TLS client.
    const hello = await new Promise<Buffer>((resolve) => {
      const capture = net.createServer((s) =>
        s.once("data", (c: Buffer) => (resolve(c), s.destroy())),
      );
      capture.listen(0, "127.0.0.1", () => {
        const c = tls.connect({
          host: "127.0.0.1",
          port: (capture.address() as net.AddressInfo).port,
          rejectUnauthorized: false,
        });
        c.on("error", () => capture.close());
      });
    });
    const result = await trickle(() => net.connect({ host: "127.0.0.1", port }), hello);
    assert.ok(result.sent < hello.length, `cut off after ${result.sent} of ${hello.length} bytes`);
    assert.ok(result.ms < 5_000, `cut off after ${result.ms} ms`);
  });
});
