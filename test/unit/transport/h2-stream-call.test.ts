/**
 * The host's lean stream path (h2-stream-call.ts, taken by
 * createProtocolTransport over an H2Session for server, client and bidi
 * streams) against connect-es' own Connect, gRPC and gRPC-web transports (over
 * createH2Client), on the same real servers: every stream must come out
 * the same (messages, response header and trailer, or code, message text,
 * details and metadata), and each case checks that the lean path ran it.
 * Then backpressure over HTTP/2 both ways: a reader that stops reading
 * bounds how far the plugin gets, a plugin that stops reading bounds how
 * far the request iterable is pulled.
 */
import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { BytesValueSchema } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type Interceptor,
  type StreamResponse,
  type Transport,
} from "@connectrpc/connect";
import { createH2Client } from "../../../src/transport/h2-client.js";
import { StreamCall } from "../../../src/transport/stream-call.js";
import { H2Session } from "../../../src/transport/h2-session.js";
import { createNodeAdapter } from "../../../src/transport/node-adapter.js";
import { createProtocolTransport } from "../../../src/transport/protocol-transport.js";
import { createStreamCancellingClient } from "../../../src/transport/create-client.js";
import { Bench } from "../../../bench/service.js";
import { errorView, pairs } from "./call-views.js";

const READ_MAX = 4096;
/** Every protocol runs its streams on the lean path over an H2Session. */
const PROTOCOLS = ["connect", "grpc", "grpc-web"] as const;
/** Messages of the "answer-then-reset" answer: 80 KB of 8-byte envelopes. */
const ANSWERED = 10_000;
const DETAIL = create(BytesValueSchema, { value: new Uint8Array([9, 8]) });

/** What the real server's handlers saw. */
const seen = { finallies: 0, produced: 0, received: 0, aborted: [] as string[] };

const msg = (n: number, size = 16): ReturnType<typeof create<typeof BytesValueSchema>> =>
  create(BytesValueSchema, { value: new Uint8Array(size).fill(n & 0xff) });

const routes = (router: ConnectRouter): void => {
  router.service(Bench, {
    echo: (req) => req,
    async *echoStream(requests, ctx) {
      try {
        ctx.responseHeader.set("x-head", "h1");
        ctx.responseTrailer.set("x-tail", "t1");
        const how = ctx.requestHeader.get("x-real");
        if (how === "error-before") throw new ConnectError("refused", Code.PermissionDenied);
        let i = 0;
        for await (const req of requests) {
          seen.received++;
          if (how === "error-after" && i === 2)
            throw new ConnectError("late", Code.DataLoss, { "x-meta": "m2" });
          if (how === "stall") {
            // Reads one message, then no more until the client goes (or 5 s).
            await new Promise((r) => {
              setTimeout(r, 5_000).unref();
              ctx.signal.addEventListener("abort", r);
            });
            return;
          }
          yield req;
          i++;
        }
      } finally {
        if (ctx.signal.aborted) seen.aborted.push(String(ctx.signal.reason));
        seen.finallies++;
      }
    },
    async collect(requests, ctx) {
      try {
        ctx.responseHeader.set("x-head", "h1");
        ctx.responseTrailer.set("x-tail", "t1");
        const how = ctx.requestHeader.get("x-real");
        let n = 0n;
        for await (const _ of requests) {
          seen.received++;
          n++;
          if (how === "stall") {
            await new Promise((r) => {
              setTimeout(r, 5_000).unref();
              ctx.signal.addEventListener("abort", r);
            });
            break;
          }
        }
        if (how === "error-after")
          throw new ConnectError("counted", Code.OutOfRange, { "x-n": `${n}` });
        return { value: n };
      } finally {
        if (ctx.signal.aborted) seen.aborted.push(String(ctx.signal.reason));
        seen.finallies++;
      }
    },
    async *stream(req, ctx) {
      try {
        ctx.responseHeader.set("x-head", "h1");
        ctx.responseTrailer.set("x-tail", "t1");
        const n = Number(req.value);
        switch (ctx.requestHeader.get("x-real")) {
          case "error-before":
            throw new ConnectError("bad ✗ 100% a/b", Code.FailedPrecondition, { "x-meta": "m1" }, [
              { desc: BytesValueSchema, value: DETAIL },
            ]);
          case "error-after":
            yield msg(1);
            yield msg(2);
            throw new ConnectError("late", Code.DataLoss, { "x-meta": "m2" });
          case "plain-throw":
            yield msg(1);
            throw new Error("oops");
          case "slow":
            yield msg(1);
            yield msg(2);
            await new Promise((r) => {
              setTimeout(r, 5_000).unref();
              ctx.signal.addEventListener("abort", r);
            });
            return;
          case "big":
            yield msg(1);
            yield msg(2, READ_MAX + 1);
            return;
          case "compressed":
            // Over connect-es' compressMinBytes (1 KiB): gzipped when offered.
            for (let i = 0; i < n; i++) yield msg(i, 2000);
            return;
          case "endless":
            for (;;) {
              seen.produced++;
              yield msg(seen.produced);
            }
          default:
            for (let i = 0; i < n; i++) yield msg(i, 1 + (i % 40));
        }
      } finally {
        if (ctx.signal.aborted) seen.aborted.push(String(ctx.signal.reason));
        seen.finallies++;
      }
    },
  });
};

/** Hand-made answers for what a connect-es server never sends. */
function raw(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
  const type = String(headers["content-type"]);
  const web = type.startsWith("application/grpc-web");
  const grpc = !web && type.startsWith("application/grpc");
  const kind = web ? "application/grpc-web" : grpc ? "application/grpc" : "application/connect";
  const env = (flags: number, data: Uint8Array): Buffer => {
    const b = Buffer.alloc(5 + data.length);
    b[0] = flags;
    b.writeUInt32BE(data.length, 1);
    b.set(data, 5);
    return b;
  };
  const one = env(0, new Uint8Array([10, 1, 7]));
  /**
   * The body's end: Connect's end-of-stream JSON, gRPC-web's trailer
   * envelope (`fields`, CRLF-separated), none on gRPC (HTTP trailers).
   */
  const last = (json: string, fields: string): Buffer =>
    web ? env(0x80, Buffer.from(fields)) : grpc ? Buffer.alloc(0) : env(2, Buffer.from(json));
  /**
   * A binary answer's head; `trailers` follow its body on gRPC, and on
   * Connect and gRPC-web (which ignore them) too when `always`.
   */
  const binary = (trailers: http2.OutgoingHttpHeaders, always = false): void => {
    const waitForTrailers = grpc || always;
    stream.respond(
      { ":status": 200, "content-type": grpc ? "application/grpc" : `${kind}+proto` },
      { waitForTrailers },
    );
    if (waitForTrailers) stream.on("wantTrailers", () => stream.sendTrailers(trailers));
  };
  stream.on("data", () => {});
  stream.on("error", () => {});
  switch (headers["x-wire"]) {
    case "trailers-only":
      stream.respond(
        grpc || web
          ? {
              ":status": 200,
              "content-type": `${kind}+proto`,
              "grpc-status": "5",
              "grpc-message": "gone",
            }
          : { ":status": 404, "content-type": "application/json" },
        { endStream: true },
      );
      return;
    case "json":
      stream.respond({
        ":status": 200,
        "content-type": `${kind}+json`,
      });
      stream.end(env(0, Buffer.from("{}")));
      return;
    case "truncated":
      binary({ "grpc-status": "0" });
      stream.end(Buffer.concat([one, one.subarray(0, 4)]));
      return;
    case "no-end":
      // gRPC: trailers without a status; gRPC-web: no trailer envelope.
      binary({ "x-t": "1" });
      stream.end(one);
      return;
    case "answer-then-reset":
      // A whole answer, larger than the host's read pause (HIGH_WATER), then
      // RST_STREAM NO_ERROR while the request is still open, as Go's servers
      // do when a handler returns first (RFC 9113 §8.1).
      binary({ "grpc-status": "0" });
      stream.end(
        Buffer.concat([
          ...Array.from({ length: ANSWERED }, () => one),
          last("{}", "grpc-status: 0\r\n"),
        ]),
        () => setTimeout(() => stream.close(http2.constants.NGHTTP2_NO_ERROR), 20),
      );
      return;
    case "split":
      // Every byte its own DATA frame: envelopes (and their heads) span
      // chunks. HTTP trailers on Connect too, which it ignores.
      binary({ "grpc-status": "0", "x-t": "3" }, true);
      {
        const end = last('{"metadata":{"x-t":["2"]}}', "grpc-status: 0\r\nx-t: 2\r\n");
        const all = Buffer.concat([one, one, env(0, toBinary(BytesValueSchema, msg(3, 300))), end]);
        let i = 0;
        const next = (): void => {
          if (i >= all.length) {
            stream.end();
            return;
          }
          stream.write(all.subarray(i, i + 1), next);
          i++;
        };
        next();
      }
      return;
  }
}

/** Opens Bench's server stream on `transport` (request value 0). */
function openStream(
  transport: Transport,
  header: Record<string, string>,
  signal?: AbortSignal,
  timeoutMs?: number,
): Promise<StreamResponse<typeof Bench.method.stream.input, typeof BytesValueSchema>> {
  return transport.stream(
    Bench.method.stream,
    signal,
    timeoutMs,
    header,
    (async function* () {
      yield { value: 0n };
    })(),
  );
}

/** What a caller can observe of a server stream. */
async function observe(
  transport: Transport,
  header: Record<string, string>,
  options: { n?: number; timeoutMs?: number; signal?: AbortSignal; lean?: boolean } = {},
): Promise<unknown> {
  const messages: number[][] = [];
  try {
    const res = await transport.stream(
      Bench.method.stream,
      options.signal,
      options.timeoutMs,
      header,
      (async function* () {
        yield { value: BigInt(options.n ?? 3) };
      })(),
    );
    if (options.lean !== undefined) assert.equal(res.message instanceof StreamCall, options.lean);
    for await (const m of res.message) messages.push([m.value.length, m.value[0] ?? -1]);
    return { messages, header: pairs(res.header), trailer: pairs(res.trailer) };
  } catch (e) {
    return { messages, ...errorView(e) };
  }
}

interface Pair {
  readonly lean: Transport;
  readonly reference: Transport;
  close(): void;
}

function pair(
  url: string,
  protocol: (typeof PROTOCOLS)[number],
  readMaxBytes = READ_MAX,
  writeMaxBytes?: number,
): Pair {
  const session = new H2Session(url);
  const lean = createProtocolTransport(protocol, session, {
    baseUrl: url,
    readMaxBytes,
    writeMaxBytes,
  });
  const refSession = new H2Session(url);
  const reference = createProtocolTransport(protocol, createH2Client(refSession), {
    baseUrl: url,
    readMaxBytes,
    writeMaxBytes,
  });
  return {
    lean,
    reference,
    close: () => {
      session.close();
      refSession.close();
    },
  };
}

let server: http2.Http2Server;
let rawServer: http2.Http2Server;
let url: string;
let rawUrl: string;

async function listen(s: http2.Http2Server): Promise<string> {
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

before(async () => {
  server = http2.createServer(createNodeAdapter({ routes }));
  rawServer = http2.createServer();
  rawServer.on("stream", raw);
  // Our clients close their sessions with CANCEL: not this test's news.
  rawServer.on("session", (session) => session.on("error", () => {}));
  url = await listen(server);
  rawUrl = await listen(rawServer);
});
after(() => {
  server.close();
  rawServer.close();
});

describe("lean server stream = connect-es' transport", () => {
  for (const protocol of PROTOCOLS) {
    const cases: [string, Record<string, string>, { n?: number; timeoutMs?: number }][] = [
      ["empty", {}, { n: 0 }],
      ["one", {}, { n: 1 }],
      ["many (several DATA chunks)", {}, { n: 20_000 }],
      ["error before the first message", { "x-real": "error-before" }, {}],
      ["error after two messages", { "x-real": "error-after" }, {}],
      ["a plain exception", { "x-real": "plain-throw" }, {}],
      ["deadline mid-stream", { "x-real": "slow" }, { timeoutMs: 300 }],
      ["a message over readMaxBytes", { "x-real": "big" }, {}],
      ["compressed messages", { "x-real": "compressed" }, { n: 5 }],
      ["trailers-only / error status", { "x-wire": "trailers-only" }, {}],
      ["JSON content type", { "x-wire": "json" }, {}],
      ["truncated envelope", { "x-wire": "truncated" }, {}],
      ["no end of stream / no status", { "x-wire": "no-end" }, {}],
      ["envelopes split byte by byte", { "x-wire": "split" }, {}],
    ];
    for (const [name, header, options] of cases) {
      test(`${protocol}: ${name}`, async () => {
        const p = pair(header["x-wire"] === undefined ? url : rawUrl, protocol);
        try {
          const lean = await observe(p.lean, header, { ...options, lean: true });
          const reference = await observe(p.reference, header, options);
          assert.deepEqual(lean, reference);
          if (header["x-wire"] === "split")
            assert.equal((lean as { messages: [] }).messages.length, 3);
        } finally {
          p.close();
        }
      });
    }

    test(`${protocol}: the caller's signal aborts mid-stream`, async () => {
      const p = pair(url, protocol);
      try {
        const run = async (t: Transport): Promise<unknown> => {
          const ac = new AbortController();
          setTimeout(() => ac.abort(), 150);
          return observe(t, { "x-real": "slow" }, { signal: ac.signal });
        };
        const before = seen.aborted.length;
        const lean = await run(p.lean);
        const reference = await run(p.reference);
        assert.deepEqual(lean, reference);
        assert.equal((lean as { code: string }).code, "Canceled");
        // Both plugins' handlers were cancelled (RST_STREAM reached them).
        await waitFor(() => seen.aborted.length >= before + 2);
      } finally {
        p.close();
      }
    });

    test(`${protocol}: break out of for-await resets the stream; the plugin's handler ends`, async () => {
      const p = pair(url, protocol);
      try {
        const client = createStreamCancellingClient(Bench, p.lean);
        const before = seen.finallies;
        let got = 0;
        for await (const m of client.stream({ value: 1n }, { headers: { "x-real": "endless" } })) {
          assert.equal(m.value.length, 16);
          if (++got === 3) break;
        }
        await waitFor(() => seen.finallies > before);
        assert.match(seen.aborted.at(-1) ?? "", /Canceled|canceled/i);
      } finally {
        p.close();
      }
    });
  }
});

describe("lean server stream: a caller that never reads", () => {
  for (const protocol of PROTOCOLS) {
    test(`${protocol}: the deadline resets the stream and lets go of the caller's signal`, async () => {
      const p = pair(url, protocol);
      try {
        const before = seen.finallies;
        const caller = new AbortController();
        const res = await openStream(p.lean, { "x-real": "slow" }, caller.signal, 200);
        assert.equal(getEventListeners(caller.signal, "abort").length, 1);
        // Never read: the deadline alone ends the stream on both sides.
        await waitFor(() => seen.finallies > before);
        assert.equal(getEventListeners(caller.signal, "abort").length, 0);
        // A late reader still gets the messages, then the deadline.
        const got: number[] = [];
        await assert.rejects(
          (async () => {
            for await (const m of res.message) got.push(m.value[0] ?? -1);
          })(),
          (e: unknown) => e instanceof ConnectError && e.code === Code.DeadlineExceeded,
        );
        assert.deepEqual(got, [1, 2]);
      } finally {
        p.close();
      }
    });
  }
});

describe("lean server stream: return()", () => {
  for (const protocol of PROTOCOLS) {
    test(`${protocol}: a next() still waiting when return() is called is answered done, whatever signal the request has`, async () => {
      // An interceptor's own signal, which the call's abandon does not
      // reach: return() itself must answer the waiting next() (it hung).
      const own: Interceptor = (next) => (req) =>
        next({ ...req, signal: new AbortController().signal });
      for (const interceptors of [[], [own]]) {
        const session = new H2Session(url);
        const t = createProtocolTransport(protocol, session, { baseUrl: url, interceptors });
        try {
          const before = seen.finallies;
          const res = await openStream(t, { "x-real": "slow" });
          const it = res.message[Symbol.asyncIterator]();
          assert.equal((await it.next()).done, false);
          const waiting = it.next();
          assert.deepEqual(await it.return?.(), { done: true, value: undefined });
          const answer = await Promise.race([
            waiting,
            new Promise((resolve) => setTimeout(() => resolve("still waiting after 2 s"), 2_000)),
          ]);
          assert.deepEqual(answer, { done: true, value: undefined });
          // The stream was reset: the plugin's handler ended.
          await waitFor(() => seen.finallies > before);
        } finally {
          session.close();
        }
      }
    });
  }
});

describe("lean server stream: a reader a little slower than the plugin", () => {
  test("the queue's arrays stay bounded though the queue never empties", async () => {
    const p = pair(url, "connect");
    try {
      const res = await openStream(p.lean, { "x-real": "endless" });
      const it = res.message[Symbol.asyncIterator]();
      // The queue's own arrays (read, not changed): what it holds on to.
      const queue = res.message as unknown as { items: unknown[] };
      let longest = 0;
      for (let n = 1; n <= 40_000; n++) {
        await it.next();
        // A macrotask now and then: the plugin stays ahead, the queue never empties.
        if (n % 4 === 0) await new Promise((r) => setImmediate(r));
        longest = Math.max(longest, queue.items.length);
      }
      // 64 KiB of 21-byte envelopes queued at most (about 3,100), plus what the
      // chunk that crossed it brought.
      assert.ok(longest < 12_000, `the queue's array reached ${longest} slots`);
      await it.return?.();
    } finally {
      p.close();
    }
  });
});

describe("lean server stream: backpressure over HTTP/2", () => {
  for (const protocol of PROTOCOLS) {
    test(`${protocol}: a reader that stops reading bounds the plugin's progress`, async () => {
      const p = pair(url, protocol);
      try {
        seen.produced = 0;
        const res = await openStream(p.lean, { "x-real": "endless" });
        const it = res.message[Symbol.asyncIterator]();
        await it.next();
        // Stop reading: the plugin must stall.
        const stalled = await stalls(() => seen.produced, "the plugin stopped producing");
        // Reading resumes it.
        for (let i = 0; i < stalled + 5000; i++) await it.next();
        assert.ok(seen.produced > stalled + 5000);
        await it.return?.();
      } finally {
        p.close();
      }
    });
  }
});

type Message = ReturnType<typeof msg>;

/** `n` request messages of 1-40 bytes (the n-th starts with n), then the end; `fail`: throws after that many. */
function requests(n: number, fail?: number): () => AsyncIterable<Message> {
  return async function* () {
    for (let i = 0; i < n; i++) {
      if (i === fail) throw new Error("the request iterable broke");
      yield msg(i, 1 + (i % 40));
    }
    if (fail === n) throw new Error("the request iterable broke");
  };
}

/** One request message of `size` bytes, then none, ever. */
function oneThenWait(size = 16): () => AsyncIterable<Message> {
  return async function* () {
    yield msg(1, size);
    await new Promise(() => {});
  };
}

/**
 * A request message every `ms` until the iterable is told to stop, which
 * `stopped` counts (a generator sees return() only at a `yield`).
 */
function trickle(stopped: { n: number }, ms = 50): () => AsyncIterable<Message> {
  return async function* () {
    try {
      for (let i = 1; ; i++) {
        yield msg(i);
        await new Promise((r) => setTimeout(r, ms));
      }
    } finally {
      stopped.n++;
    }
  };
}

/** What a caller can observe of a client or bidi stream on `method`. */
async function observeDuplex(
  transport: Transport,
  method: typeof Bench.method.echoStream | typeof Bench.method.collect,
  header: Record<string, string>,
  input: () => AsyncIterable<Message>,
  options: { timeoutMs?: number; signal?: AbortSignal; lean?: boolean } = {},
): Promise<unknown> {
  const messages: unknown[] = [];
  try {
    const res = await transport.stream(
      method as typeof Bench.method.echoStream,
      options.signal,
      options.timeoutMs,
      header,
      input(),
    );
    if (options.lean !== undefined) assert.equal(res.message instanceof StreamCall, options.lean);
    for await (const m of res.message as AsyncIterable<{ value: Uint8Array | bigint }>) {
      messages.push(
        typeof m.value === "bigint" ? String(m.value) : [m.value.length, m.value[0] ?? -1],
      );
    }
    return { messages, header: pairs(res.header), trailer: pairs(res.trailer) };
  } catch (e) {
    return { messages, ...errorView(e) };
  }
}

describe("lean bidi stream: a whole answer, then RST_STREAM NO_ERROR (fake plugin)", () => {
  for (const protocol of PROTOCOLS) {
    test(`${protocol}: a caller that reads slowly gets every message and the end, not a cut`, async () => {
      const p = pair(rawUrl, protocol);
      try {
        const stopped = { n: 0 };
        const res = await p.lean.stream(
          Bench.method.echoStream,
          undefined,
          5_000,
          { "x-wire": "answer-then-reset" },
          trickle(stopped)(),
        );
        let got = 0;
        for await (const _ of res.message) {
          // Reading paused past HIGH_WATER: the reset comes before node's "end".
          if (got++ === 0) await new Promise((r) => setTimeout(r, 500));
        }
        assert.equal(got, ANSWERED);
        await waitFor(() => stopped.n === 1);
      } finally {
        p.close();
      }
    });
  }
});

describe("lean client and bidi streams = connect-es' transport", () => {
  for (const protocol of PROTOCOLS) {
    const cases: [
      string,
      typeof Bench.method.echoStream | typeof Bench.method.collect,
      Record<string, string>,
      () => AsyncIterable<Message>,
      { timeoutMs?: number; writeMaxBytes?: number },
    ][] = [
      ["bidi: no message", Bench.method.echoStream, {}, requests(0), {}],
      ["bidi: one", Bench.method.echoStream, {}, requests(1), {}],
      [
        "bidi: many (several DATA chunks both ways)",
        Bench.method.echoStream,
        {},
        requests(20_000),
        {},
      ],
      [
        "bidi: error before reading",
        Bench.method.echoStream,
        { "x-real": "error-before" },
        requests(3),
        {},
      ],
      [
        "bidi: error after two echoes",
        Bench.method.echoStream,
        { "x-real": "error-after" },
        requests(5),
        {},
      ],
      [
        "bidi: the request iterable throws at once",
        Bench.method.echoStream,
        {},
        requests(3, 0),
        {},
      ],
      [
        "bidi: the request iterable throws after two",
        Bench.method.echoStream,
        {},
        requests(3, 2),
        {},
      ],
      [
        "bidi: a request over writeMaxBytes",
        Bench.method.echoStream,
        {},
        requests(30),
        { writeMaxBytes: 20 },
      ],
      [
        "bidi: an echo over readMaxBytes",
        Bench.method.echoStream,
        {},
        oneThenWait(READ_MAX + 1),
        {},
      ],
      [
        "bidi: deadline while the request waits",
        Bench.method.echoStream,
        {},
        oneThenWait(),
        { timeoutMs: 300 },
      ],
      ["client: no message", Bench.method.collect, {}, requests(0), {}],
      ["client: many", Bench.method.collect, {}, requests(20_000), {}],
      [
        "client: an error after the request",
        Bench.method.collect,
        { "x-real": "error-after" },
        requests(4),
        {},
      ],
      ["client: the request iterable throws", Bench.method.collect, {}, requests(3, 3), {}],
      [
        "client: deadline while the request waits",
        Bench.method.collect,
        {},
        oneThenWait(),
        { timeoutMs: 300 },
      ],
    ];
    for (const [name, method, header, input, options] of cases) {
      test(`${protocol}: ${name}`, async () => {
        const p = pair(url, protocol, READ_MAX, options.writeMaxBytes);
        try {
          const lean = await observeDuplex(p.lean, method, header, input, {
            ...options,
            lean: true,
          });
          const reference = await observeDuplex(p.reference, method, header, input, options);
          assert.deepEqual(lean, reference);
        } finally {
          p.close();
        }
      });
    }

    test(`${protocol}: bidi, each request written after the previous answer was read`, async () => {
      const p = pair(url, protocol);
      try {
        for (const t of [p.lean, p.reference]) {
          const answers: number[] = [];
          let answered: () => void = () => {};
          const input = async function* (): AsyncIterable<Message> {
            for (let i = 1; i <= 5; i++) {
              const next = new Promise<void>((r) => (answered = r));
              yield msg(i);
              await next;
            }
          };
          const res = await t.stream(Bench.method.echoStream, undefined, 5_000, {}, input());
          for await (const m of res.message) {
            answers.push(m.value[0] ?? -1);
            answered();
          }
          assert.deepEqual(answers, [1, 2, 3, 4, 5]);
        }
      } finally {
        p.close();
      }
    });

    for (const method of [Bench.method.echoStream, Bench.method.collect]) {
      test(`${protocol}, ${method.name}: the caller's cancel ends the call with Canceled, reaches the plugin and stops the request iterable`, async () => {
        const p = pair(url, protocol);
        try {
          for (const t of [p.lean, p.reference]) {
            const before = seen.aborted.length;
            const stopped = { n: 0 };
            const controller = new AbortController();
            setTimeout(() => controller.abort(new Error("user pressed stop")), 150);
            const view = await observeDuplex(t, method, { "x-real": "stall" }, trickle(stopped), {
              signal: controller.signal,
            });
            assert.equal((view as { code: string }).code, "Canceled");
            await waitFor(() => seen.aborted.length > before && stopped.n === 1);
          }
        } finally {
          p.close();
        }
      });
    }

    test(`${protocol}: break out of a bidi stream's for-await resets it; the plugin's handler ends, the request iterable stops`, async () => {
      const p = pair(url, protocol);
      try {
        const before = seen.finallies;
        const stopped = { n: 0 };
        const res = await p.lean.stream(
          Bench.method.echoStream,
          undefined,
          undefined,
          {},
          trickle(stopped, 1)(),
        );
        assert.ok(res.message instanceof StreamCall);
        let got = 0;
        for await (const _ of res.message) if (++got === 3) break;
        await waitFor(() => seen.finallies > before && stopped.n === 1);
      } finally {
        p.close();
      }
    });

    const stalling: [string, typeof Bench.method.echoStream, Record<string, string>][] = [
      ["EchoStream, a plugin that stops reading", Bench.method.echoStream, { "x-real": "stall" }],
      [
        "Collect, a plugin that stops reading",
        Bench.method.collect as unknown as typeof Bench.method.echoStream,
        { "x-real": "stall" },
      ],
      ["EchoStream, a caller that stops reading the echoes", Bench.method.echoStream, {}],
    ];
    for (const [label, method, header] of stalling) {
      test(`${protocol}, ${label}: bounds how far the request iterable is pulled`, async () => {
        const p = pair(url, protocol);
        try {
          let pulls = 0;
          const endless = async function* (): AsyncIterable<Message> {
            for (;;) {
              pulls++;
              yield msg(pulls);
            }
          };
          const controller = new AbortController();
          // The first answer, then no more reading (a stalled plugin sends none).
          const reader = p.lean
            .stream(method, controller.signal, undefined, header, endless())
            .then(async (res) => {
              const it = res.message[Symbol.asyncIterator]();
              await it.next();
              return it;
            });
          const stalled = await stalls(() => pulls, "the request iterable is no longer pulled");
          if (header["x-real"] === undefined) {
            // Reading the echoes again resumes the pulling.
            const it = await reader;
            for (let i = 0; i < stalled + 5000; i++) await it.next();
            assert.ok(pulls > stalled + 5000);
            await it.return?.();
          } else {
            controller.abort();
            await assert.rejects(
              reader,
              (e: unknown) => e instanceof ConnectError && e.code === Code.Canceled,
            );
          }
        } finally {
          p.close();
        }
      });
    }
  }
});

/**
 * Waits until `count` has not changed for 400 ms (within 5 s), checks that
 * it stays so 300 ms more and that it stalled below 1 MiB of 21-byte
 * messages on the wire (HTTP/2's windows and the buffers); returns it.
 */
async function stalls(count: () => number, what: string): Promise<number> {
  let stalled = -1;
  for (let quiet = 0, i = 0; quiet < 4 && i < 50; i++) {
    await new Promise((r) => setTimeout(r, 100));
    quiet = count() === stalled ? quiet + 1 : 0;
    stalled = count();
  }
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(count(), stalled, what);
  assert.ok(stalled * 21 < 1024 * 1024, `${what}: stalled only at ${stalled} messages`);
  return stalled;
}

async function waitFor(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), "condition not met in 2 s");
}
