/**
 * Client and bidi streams on the plugin's lean HTTP/2 path (LeanStream in
 * src/transport/stream-handler.ts, its request read by RequestStream in
 * request-stream.ts) against connect-es' streaming handlers
 * (`leanStreams: false`): the same requests, sent by a real node:http2
 * client, must get the same status, headers (but `date`), body bytes,
 * trailers and reset codes, and each case checks which path ran it. Then
 * a hostile host that announces 1 GiB (to calls of every kind), and flow
 * control.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { BytesValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Bench } from "../../../bench/service.js";
import { CALL_ABORT } from "../../../src/transport/lazy-abort.js";
import { H2Session } from "../../../src/transport/h2-session.js";
import { createProtocolTransport } from "../../../src/transport/protocol-transport.js";
import type { PluginHttpServer } from "../../../src/transport/http-server.js";
import { createNodeAdapter } from "../../../src/transport/node-adapter.js";
import {
  abortReason,
  envelope,
  exchangeOnce,
  grpcWebTrailerOf,
  listenCounting,
  openRequest,
  rejecting,
  type RawExchange,
} from "./command-routes.js";
import { gc } from "../../gc.js";

const READ_MAX = 1024;
const COLLECT = "/bench.v1.BenchService/Collect";
const ECHO_STREAM = "/bench.v1.BenchService/EchoStream";
const STREAM = "/bench.v1.BenchService/Stream";
const ECHO = "/bench.v1.BenchService/Echo";

/** What one server's handlers saw. */
interface Seen {
  /** HTTP/2 requests that reached the adapter through node's compatibility objects. */
  compat: number;
  /** Handler runs in connect-es' own context (not the lean path's, which carries CALL_ABORT). */
  reference: number;
  /** The reason each aborted handler's signal gave. */
  aborted: Array<{ code: Code; message: string }>;
  /** What each handler's request iterator ended with: "end", or its error. */
  inputs: string[];
  started?: () => void;
  /** Resolved by the flow-control test to let the slow reader go on. */
  release?: Promise<void>;
  /** Bytes the slow reader has read. */
  read: number;
}

/** The request header that picks a handler's behaviour. */
const MODE = "x-mode";

/** Reads every message (recording how the input ended); `each` runs per message. */
async function readAll(
  seen: Seen,
  requests: AsyncIterable<{ value: Uint8Array }>,
  each: (value: Uint8Array) => void,
): Promise<void> {
  try {
    for await (const req of requests) each(req.value);
    seen.inputs.push("end");
  } catch (e) {
    const ce = ConnectError.from(e);
    seen.inputs.push(`${Code[ce.code]}: ${ce.rawMessage}`);
    throw e;
  }
}

/** Waits for the handler's signal and records its reason. */
async function hang(seen: Seen, signal: AbortSignal): Promise<never> {
  seen.started?.();
  throw await abortReason(signal, seen.aborted);
}

function routes(seen: Seen): (router: ConnectRouter) => void {
  return (router) =>
    router.service(Bench, {
      echo: (req) => req,
      async *stream() {},
      async *echoStream(requests, ctx) {
        if (!(CALL_ABORT in ctx)) seen.reference++;
        const mode = ctx.requestHeader.get(MODE);
        ctx.responseHeader.append("set-cookie", "a=1");
        ctx.responseHeader.append("set-cookie", "b=2");
        ctx.responseTrailer.set("x-trailer", "t");
        if (mode === "hang") {
          const it = requests[Symbol.asyncIterator]();
          yield (await it.next()).value as { value: Uint8Array };
          await hang(seen, ctx.signal);
        }
        if (mode === "early") {
          for await (const req of requests) {
            yield req;
            return;
          }
        }
        const out: Uint8Array[] = [];
        const pending: Array<{ value: Uint8Array }> = [];
        // Echo as they come: read one, answer one.
        const it = requests[Symbol.asyncIterator]();
        try {
          for (;;) {
            const r = await it.next();
            if (r.done === true) break;
            out.push(r.value.value);
            pending.push(r.value);
            yield pending.shift() as { value: Uint8Array };
          }
          seen.inputs.push("end");
        } catch (e) {
          const ce = ConnectError.from(e);
          seen.inputs.push(`${Code[ce.code]}: ${ce.rawMessage}`);
          throw e;
        }
        if (mode === "fail") {
          throw new ConnectError("it broke: 100% ünicode", Code.FailedPrecondition, {
            "x-meta": "m",
          });
        }
      },
      async collect(requests, ctx) {
        if (!(CALL_ABORT in ctx)) seen.reference++;
        const mode = ctx.requestHeader.get(MODE);
        ctx.responseHeader.set("x-answer", "yes");
        ctx.responseTrailer.set("x-trailer", "t");
        if (mode === "hang") {
          await requests[Symbol.asyncIterator]().next();
          await hang(seen, ctx.signal);
        }
        if (mode === "early") {
          for await (const _ of requests) return { value: -1n };
        }
        if (mode === "slow") {
          seen.started?.();
          await seen.release;
          let n = 0n;
          await readAll(seen, requests, (v) => {
            seen.read += v.length;
            n++;
          });
          return { value: n };
        }
        let sum = 0n;
        await readAll(seen, requests, (v) => {
          seen.started?.();
          for (const b of v) sum = sum * 31n + BigInt(b);
        });
        if (mode === "fail") {
          throw new ConnectError("it broke", Code.FailedPrecondition, { "x-meta": "m" });
        }
        return { value: sum };
      },
    });
}

interface Server {
  port: number;
  seen: Seen;
  server: PluginHttpServer;
}

async function start(leanStreams: boolean, readMaxBytes = READ_MAX): Promise<Server> {
  const seen: Seen = { compat: 0, reference: 0, aborted: [], inputs: [], read: 0 };
  const adapter = createNodeAdapter({
    routes: routes(seen),
    interceptors: [rejecting],
    readMaxBytes,
    leanStreams,
  });
  return listenCounting(adapter, seen, true);
}

/** A lean plugin for the tests of the describe() this is called in: started before them, closed after. */
function leanPlugin(readMaxBytes = READ_MAX): () => Server {
  let plugin: Server | undefined;
  before(async () => {
    plugin = await start(true, readMaxBytes);
  });
  after(() => plugin?.server.close());
  return () => plugin as Server;
}

type Protocol = "connect" | "grpc" | "grpc-web";
const PROTOCOLS = ["connect", "grpc", "grpc-web"] as const;

function headersOf(
  protocol: Protocol,
  extra: http2.OutgoingHttpHeaders = {},
): http2.OutgoingHttpHeaders {
  const headers: http2.OutgoingHttpHeaders =
    protocol === "connect"
      ? { "content-type": "application/connect+proto", "connect-protocol-version": "1" }
      : protocol === "grpc"
        ? { "content-type": "application/grpc", te: "trailers" }
        : { "content-type": "application/grpc-web+proto" };
  return { ...headers, ...extra };
}

/** The envelope of one BytesValue request message. */
function message(bytes: number[] | Uint8Array, flags = 0): Buffer {
  const value = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  return Buffer.from(
    envelope(toBinary(BytesValueSchema, create(BytesValueSchema, { value })), flags),
  );
}

/** A compressed (gzip, flag 1 with `flags`) request envelope. */
function gzipped(bytes: number[] | Uint8Array, flags = 0): Buffer {
  const value = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  return Buffer.from(
    envelope(gzipSync(toBinary(BytesValueSchema, create(BytesValueSchema, { value }))), flags | 1),
  );
}

/** The error (or OK) a response carries: Connect's end-of-stream JSON, gRPC's trailers, gRPC-web's trailer envelope. */
function statusOf(protocol: Protocol, x: RawExchange): string {
  if (protocol === "connect") {
    const bytes = Buffer.from(x.body, "hex");
    let at = 0;
    let last = "";
    while (at < bytes.length) {
      const n = bytes.readUInt32BE(at + 1);
      if (bytes[at] === 2) last = bytes.subarray(at + 5, at + 5 + n).toString();
      at += 5 + n;
    }
    const end = JSON.parse(last) as { error?: { code: string; message: string } };
    return end.error === undefined ? "ok" : `${end.error.code}: ${end.error.message}`;
  }
  const trailers = protocol === "grpc" ? x.trailers : grpcWebTrailerOf(x.body);
  const status = Number(trailers?.["grpc-status"]);
  if (status === 0) return "ok";
  return `${Code[status]}: ${decodeURIComponent(String(trailers?.["grpc-message"]))}`;
}

describe("client and bidi streams: lean against connect-es", () => {
  let lean: Server;
  let reference: Server;
  before(async () => {
    lean = await start(true);
    reference = await start(false);
  });
  after(async () => {
    await lean.server.close();
    await reference.server.close();
  });

  /** The same request to both servers: the same answer, and what each handler's input ended with. */
  async function same(
    path: string,
    headers: http2.OutgoingHttpHeaders,
    body: Uint8Array | Uint8Array[],
  ): Promise<RawExchange> {
    const before = [lean.seen.compat, lean.seen.reference, reference.seen.compat];
    const inputs = [lean.seen.inputs.length, reference.seen.inputs.length];
    const a = await exchangeOnce(lean.port, path, headers, body);
    const b = await exchangeOnce(reference.port, path, headers, body);
    assert.deepEqual(a, b);
    assert.deepEqual(
      [lean.seen.compat, lean.seen.reference, reference.seen.compat],
      [before[0], before[1], (before[2] as number) + 1],
      "the lean path served the call (from the bare stream), connect-es the reference's",
    );
    assert.deepEqual(
      lean.seen.inputs.slice(inputs[0]),
      reference.seen.inputs.slice(inputs[1]),
      "the handlers' inputs ended alike",
    );
    return a;
  }

  const three = Buffer.concat([message([1, 2, 3]), message([]), message([9, 8, 7, 6, 5])]);

  for (const protocol of PROTOCOLS) {
    for (const [kind, path] of [
      ["client", COLLECT],
      ["bidi", ECHO_STREAM],
    ] as const) {
      const name = `${protocol} ${kind}`;
      const h = (extra: http2.OutgoingHttpHeaders = {}): http2.OutgoingHttpHeaders =>
        headersOf(protocol, extra);
      const encoding = protocol === "connect" ? "connect-content-encoding" : "grpc-encoding";

      test(`${name}: no messages, and three, with metadata (set-cookie twice) and trailers`, async () => {
        assert.equal(statusOf(protocol, await same(path, h(), new Uint8Array(0))), "ok");
        const x = await same(path, h(), three);
        assert.equal(statusOf(protocol, x), "ok");
        if (kind === "bidi") assert.deepEqual(x.headers["set-cookie"], ["a=1", "b=2"]);
        assert.equal(x.headers["x-intercepted"], "yes");
      });

      test(`${name}: the body cut into two DATA frames at every byte`, async () => {
        for (let at = 1; at < three.length; at++) {
          const x = await same(path, h(), [three.subarray(0, at), three.subarray(at)]);
          assert.equal(statusOf(protocol, x), "ok", `cut at ${at}`);
        }
      });

      test(`${name}: gzip envelopes among plain ones are decompressed in order`, async () => {
        const body = Buffer.concat([
          gzipped([1, 2]),
          message([3]),
          gzipped([4, 5, 6]),
          message([7]),
        ]);
        const x = await same(path, h({ [encoding]: "gzip" }), body);
        assert.equal(statusOf(protocol, x), "ok");
      });

      test(`${name}: a compressed envelope without a request encoding`, async () => {
        const x = await same(path, h(), Buffer.concat([message([1]), gzipped([2])]));
        assert.equal(
          statusOf(protocol, x),
          `${protocol === "connect" ? "internal" : "Internal"}: received compressed envelope, but do not know how to decompress`,
        );
      });

      test(`${name}: an announced message over readMaxBytes, plain and once decompressed`, async () => {
        const big = new Uint8Array(READ_MAX + 10).fill(1);
        // In DATA frames of their own: connect-es drops the messages that
        // came in the oversized one's frame before it; the lean path
        // delivers them (as the host's EnvelopeSplitter does).
        const x = await same(path, h(), [message([1]), message(big)]);
        assert.match(
          statusOf(protocol, x),
          /^(resource_exhausted|ResourceExhausted): message size \d+ is larger than configured readMaxBytes 1024$/,
        );
        const y = await same(
          path,
          h({ [encoding]: "gzip" }),
          Buffer.concat([message([1]), gzipped(big)]),
        );
        assert.match(statusOf(protocol, y), /readMaxBytes/);
      });

      test(`${name}: a body cut mid-envelope, and bytes that do not parse`, async () => {
        const x = await same(
          path,
          h(),
          Buffer.concat([message([1]), message([2, 3]).subarray(0, 4)]),
        );
        assert.match(statusOf(protocol, x), /protocol error: incomplete envelope$/);
        const y = await same(
          path,
          h(),
          Buffer.concat([message([1]), envelope(new Uint8Array([0xff, 0xff]))]),
        );
        assert.match(statusOf(protocol, y), /^(internal|Internal): parse binary: /);
      });

      test(`${name}: end flags in the request (Connect skips 2, gRPC-web 0x80, plain and compressed)`, async () => {
        await same(
          path,
          h(),
          Buffer.concat([message([1]), message([2], 2), message([3]), message([4], 0x80)]),
        );
        const x = await same(
          path,
          h({ [encoding]: "gzip" }),
          Buffer.concat([message([1]), gzipped([2], 2), gzipped([4], 0x80), message([5])]),
        );
        assert.equal(statusOf(protocol, x), "ok");
      });

      test(`${name}: the handler's error, and an interceptor's`, async () => {
        const x = await same(path, h({ [MODE]: "fail" }), three);
        assert.match(statusOf(protocol, x), /^(failed_precondition|FailedPrecondition): it broke/);
        const y = await same(path, h({ "x-reject": "1" }), three);
        assert.match(statusOf(protocol, y), /rejected by the interceptor/);
      });

      test(`${name}: a handler that leaves after the first message while the host still sends`, async () => {
        const x = await same(path, h({ [MODE]: "early" }), [
          message([1]),
          message([2]),
          message([3]),
        ]);
        assert.equal(statusOf(protocol, x), "ok");
      });

      test(`${name}: the deadline ends the call with DeadlineExceeded`, async () => {
        const timeout =
          protocol === "connect" ? { "connect-timeout-ms": "100" } : { "grpc-timeout": "100m" };
        const x = await same(path, h({ [MODE]: "hang", ...timeout }), message([1]));
        assert.match(
          statusOf(protocol, x),
          /^(deadline_exceeded|DeadlineExceeded): the operation timed out$/,
        );
      });

      test(`${name}: a host that cancels mid-stream (RST_STREAM CANCEL) aborts the handler with Canceled`, async () => {
        const reasons = [];
        for (const server of [lean, reference]) {
          const count = server.seen.aborted.length;
          const session = http2.connect(`http://127.0.0.1:${server.port}`);
          session.on("error", () => {});
          const started = new Promise<void>((resolve) => (server.seen.started = resolve));
          const { req, done } = openRequest(session, path, h({ [MODE]: "hang" }));
          // The request stays open: a cancel, not an end.
          req.write(message([1]));
          await started;
          req.close(http2.constants.NGHTTP2_CANCEL);
          await done;
          while (server.seen.aborted.length === count) await new Promise((r) => setTimeout(r, 1));
          reasons.push(server.seen.aborted[count]);
          session.close();
        }
        assert.deepEqual(reasons[0], reasons[1]);
        assert.equal(reasons[0]?.code, Code.Canceled);
      });
    }
  }
});

describe("a request cut mid-envelope: the answer of connect-es' own adapter (connect-node)", () => {
  const plugin = leanPlugin();
  let reference: { port: number; server: http2.Http2Server };
  before(async () => {
    const seen: Seen = { compat: 0, reference: 0, aborted: [], inputs: [], read: 0 };
    const server = http2.createServer(
      connectNodeAdapter({
        routes: routes(seen),
        interceptors: [rejecting],
        readMaxBytes: READ_MAX,
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    reference = { port: (server.address() as AddressInfo).port, server };
  });
  after(() => new Promise<void>((resolve) => reference.server.close(() => resolve())));

  for (const protocol of PROTOCOLS) {
    for (const [kind, path] of [
      ["unary", ECHO],
      ["server", STREAM],
      ["client", COLLECT],
      ["bidi", ECHO_STREAM],
    ] as const) {
      // A Connect unary request has no envelope.
      if (protocol === "connect" && kind === "unary") continue;
      const encoding = protocol === "connect" ? "connect-content-encoding" : "grpc-encoding";
      test(`${protocol} ${kind}: cut in the head, in the payload, and announcing more than readMaxBytes; plain and gzip`, async () => {
        const first = message([1, 2, 3]);
        const over = Buffer.alloc(8);
        over.writeUInt32BE(READ_MAX + 1, 1);
        // Client and bidi: the whole first message in a DATA frame of its
        // own (connect-es drops a message that shares its chunk with an
        // announcement over readMaxBytes; the lean path gives it first).
        const bodies: Array<Buffer | Buffer[]> =
          kind === "unary" || kind === "server"
            ? [first.subarray(0, 3), first.subarray(0, first.length - 1), over]
            : [
                [first, first.subarray(0, 3)],
                [first, first.subarray(0, first.length - 1)],
                [first, over],
              ];
        for (const extra of [{}, { [encoding]: "gzip" }]) {
          for (const body of bodies) {
            const headers = headersOf(protocol, extra);
            const ours = await exchangeOnce(plugin().port, path, headers, body);
            const theirs = await exchangeOnce(reference.port, path, headers, body);
            const sent = Buffer.concat([body].flat()).toString("hex");
            assert.deepEqual(ours, theirs, `${JSON.stringify(extra)} ${sent}`);
            assert.notEqual(statusOf(protocol, ours), "ok");
          }
        }
      });
    }
  }
});

/**
 * Waits (up to 10 s) until the process holds under 64 MiB again, so that
 * each case measures its own call only (session 22: a case's allocation
 * was once seen by the next).
 */
async function released(): Promise<void> {
  for (const end = Date.now() + 10_000; Date.now() < end;) {
    gc();
    if (process.memoryUsage().arrayBuffers < 64 * 1024 * 1024) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Runs `fn` with the global Uint8Array constructor watched (a Proxy: what
 * it makes and instanceof stay the same), and gives the largest length a
 * Uint8Array was made with meanwhile. An allocation that is made and
 * dropped at once (connect-es sizing an envelope from its head, then
 * failing the cut body) is collected before any memory reading sees it.
 */
async function largestUint8Array<T>(fn: () => Promise<T>): Promise<{ result: T; largest: number }> {
  const real = globalThis.Uint8Array;
  let largest = 0;
  globalThis.Uint8Array = new Proxy(real, {
    construct(target, args: unknown[], newTarget: object) {
      if (typeof args[0] === "number") largest = Math.max(largest, args[0]);
      return Reflect.construct(target, args, newTarget as typeof real) as object;
    },
  });
  try {
    return { result: await fn(), largest };
  } finally {
    globalThis.Uint8Array = real;
  }
}

/**
 * Sends a whole request of 15 bytes (END_STREAM) whose envelope announces
 * 1 GiB: the plugin must never make the announced buffer, and answers
 * "incomplete envelope".
 */
async function wholeHeadOnly(port: number, path: string, protocol: Protocol): Promise<void> {
  const head = Buffer.alloc(15);
  head.writeUInt32BE(1024 * 1024 * 1024, 1);
  try {
    const { result: x, largest } = await largestUint8Array(() =>
      exchangeOnce(port, path, headersOf(protocol), head),
    );
    assert.ok(largest < 64 * 1024 * 1024, `made a Uint8Array of ${largest} bytes`);
    assert.match(
      statusOf(protocol, x),
      /^(invalid_argument|InvalidArgument): protocol error: incomplete envelope$/,
    );
  } finally {
    await released();
  }
}

describe("a host that announces a 1 GiB request message and sends 10 bytes of it", () => {
  // readMaxBytes as the default (4 GiB): the announcement is within it.
  const plugin = leanPlugin(0xffffffff);

  for (const protocol of PROTOCOLS) {
    for (const [kind, path] of [
      ["client", COLLECT],
      ["bidi", ECHO_STREAM],
      ["server", STREAM],
      // A Connect unary request has no envelope.
      ...(protocol === "connect" ? [] : [["unary", ECHO] as const]),
    ] as const) {
      const encoding = protocol === "connect" ? "connect-content-encoding" : "grpc-encoding";
      for (const [how, extra, flags] of [
        ["", {}, 0],
        // Compressed: connect-es' handler from the start (the lean path takes client and bidi).
        [", gzip", { [encoding]: "gzip" }, 1],
      ] as const) {
        test(`${protocol} ${kind}${how}: the plugin holds no more than the bytes that came (real node:http2 host)`, async () => {
          const session = http2.connect(`http://127.0.0.1:${plugin().port}`);
          session.on("error", () => {});
          try {
            const { req, done } = openRequest(session, path, headersOf(protocol, extra));
            const head = Buffer.alloc(15);
            head[0] = flags;
            head.writeUInt32BE(1024 * 1024 * 1024, 1);
            await new Promise<void>((resolve) => req.write(head, () => resolve()));
            // The bytes reach the plugin on loopback well within this.
            await new Promise((r) => setTimeout(r, 200));
            gc();
            const held = process.memoryUsage().arrayBuffers;
            req.close(http2.constants.NGHTTP2_CANCEL);
            await done;
            assert.ok(held < 64 * 1024 * 1024, `holds ${held} bytes`);
          } finally {
            session.close();
            await released();
          }
        });
      }

      test(`${protocol} ${kind}, the whole request is those 15 bytes (END_STREAM): never holds the announcement, answers "incomplete envelope"`, async () => {
        await wholeHeadOnly(plugin().port, path, protocol);
      });
    }
  }
});

describe("a Connect unary call (JSON or compressed: connect-es' handler) whose Content-Length announces 1 GiB", () => {
  /** Echo answers the Content-Length its handler saw in requestHeader. */
  const lengthRoutes = (router: ConnectRouter): void => {
    router.service(Bench, {
      echo: (_req, ctx) => ({
        value: new TextEncoder().encode(ctx.requestHeader.get("content-length") ?? "none"),
      }),
      async *stream() {},
      async *echoStream() {},
      collect: () => Promise.resolve({ value: 0n }),
    });
  };
  let ours: { port: number; server: PluginHttpServer } | undefined;
  let theirs: http2.Http2Server | undefined;
  before(async () => {
    const seen = { compat: 0 };
    const adapter = createNodeAdapter({ routes: lengthRoutes, readMaxBytes: 0xffffffff });
    ours = await listenCounting(adapter, seen, true);
    theirs = http2.createServer(
      connectNodeAdapter({ routes: lengthRoutes, readMaxBytes: 0xffffffff }),
    );
    await new Promise<void>((resolve) => theirs?.listen(0, "127.0.0.1", resolve));
  });
  after(async () => {
    ours?.server.close();
    await new Promise<void>((resolve) => theirs?.close(() => resolve()));
  });

  const json = { "content-type": "application/json" };
  const gzip = { "content-type": "application/proto", "content-encoding": "gzip" };
  for (const [how, headers] of [
    ["JSON", json],
    ["gzip", gzip],
  ] as const) {
    test(`${how}: 9 bytes of it, held open: the plugin never makes the announced buffer`, async () => {
      const session = http2.connect(`http://127.0.0.1:${ours?.port}`);
      session.on("error", () => {});
      try {
        const { largest } = await largestUint8Array(async () => {
          const { req, done } = openRequest(session, ECHO, {
            ...headers,
            "content-length": String(1024 * 1024 * 1024),
          });
          await new Promise<void>((resolve) =>
            req.write(Buffer.from('{"value":'), () => resolve()),
          );
          await new Promise((r) => setTimeout(r, 200));
          req.close(http2.constants.NGHTTP2_CANCEL);
          await done;
        });
        assert.ok(largest < 64 * 1024 * 1024, `made a Uint8Array of ${largest} bytes`);
      } finally {
        session.close();
        await released();
      }
    });

    test(`${how}: a whole body over 64 KiB is answered as connect-es' own adapter answers it, the handler seeing the Content-Length`, async () => {
      const value = Buffer.alloc(100_000, 7);
      const body =
        headers === json
          ? Buffer.from(JSON.stringify(value.toString("base64")))
          : gzipSync(toBinary(BytesValueSchema, create(BytesValueSchema, { value })), { level: 0 });
      assert.ok(body.length > 64 * 1024);
      const sent = { ...headers, "content-length": String(body.length) };
      const a = await exchangeOnce(ours?.port as number, ECHO, sent, body);
      const b = await exchangeOnce(
        ((theirs as http2.Http2Server).address() as AddressInfo).port,
        ECHO,
        sent,
        body,
      );
      assert.deepEqual(a, b);
      assert.equal(a.status, 200);
      // The handler saw the Content-Length (its answer is that header's value).
      const answer = Buffer.from(a.body, "hex").toString();
      assert.ok(
        answer.includes(headers === json ? btoa(String(body.length)) : String(body.length)),
        answer,
      );
    });
  }
});

describe("HTTP/1.1 (connect-es' handlers): a client that announces a 1 GiB request message and sends 10 bytes of it", () => {
  let plugin: Server | undefined;
  before(async () => {
    const seen: Seen = { compat: 0, reference: 0, aborted: [], inputs: [], read: 0 };
    const adapter = createNodeAdapter({ routes: routes(seen), readMaxBytes: 0xffffffff });
    plugin = await listenCounting(adapter, seen, true, true);
  });
  after(() => plugin?.server.close());

  for (const protocol of PROTOCOLS) {
    test(`${protocol} server stream over HTTP/1.1: the plugin holds no more than the bytes that came`, async () => {
      const req = http.request({
        host: "127.0.0.1",
        port: plugin?.port,
        method: "POST",
        path: STREAM,
        headers: { ...headersOf(protocol), "transfer-encoding": "chunked" },
      });
      req.on("error", () => {});
      try {
        const head = Buffer.alloc(15);
        head.writeUInt32BE(1024 * 1024 * 1024, 1);
        await new Promise<void>((resolve) => req.write(head, () => resolve()));
        await new Promise((r) => setTimeout(r, 200));
        gc();
        const held = process.memoryUsage().arrayBuffers;
        assert.ok(held < 64 * 1024 * 1024, `holds ${held} bytes`);
      } finally {
        req.destroy();
        await released();
      }
    });
  }
});

/** `routes` with every registration given `options` of its own (connect-es' handlers then serve them). */
function withOptions(
  register: (router: ConnectRouter) => void,
  options: { readMaxBytes: number; maxTimeoutMs?: number },
): (router: ConnectRouter) => void {
  return (router) =>
    register({
      get handlers() {
        return router.handlers;
      },
      service: (service, implementation) => router.service(service, implementation, options),
      rpc: (method, impl) => router.rpc(method, impl, options),
    });
}

describe("a service with a readMaxBytes (and maxTimeoutMs) of its own: the adapter goes by them, as connect-es' handler does", () => {
  /**
   * Ours and connect-es' own adapter (connect-node), adapter-wide
   * `adapterMax`, the service `serviceMax` (and a maxTimeoutMs of 1 s).
   */
  function pair(adapterMax: number, serviceMax: number): () => { ours: number; theirs: number } {
    let ours: Server | undefined;
    let theirs: http2.Http2Server | undefined;
    before(async () => {
      const seen: Seen = { compat: 0, reference: 0, aborted: [], inputs: [], read: 0 };
      const r = withOptions(routes(seen), { readMaxBytes: serviceMax, maxTimeoutMs: 1000 });
      ours = await listenCounting(
        createNodeAdapter({ routes: r, readMaxBytes: adapterMax }),
        seen,
        true,
      );
      theirs = http2.createServer(connectNodeAdapter({ routes: r, readMaxBytes: adapterMax }));
      await new Promise<void>((resolve) => theirs?.listen(0, "127.0.0.1", resolve));
    });
    after(async () => {
      ours?.server.close();
      await new Promise<void>((resolve) => theirs?.close(() => resolve()));
    });
    return () => ({
      ours: (ours as Server).port,
      theirs: ((theirs as http2.Http2Server).address() as AddressInfo).port,
    });
  }

  describe("tighter than the adapter's", () => {
    const ports = pair(0xffffffff, READ_MAX);
    for (const protocol of PROTOCOLS) {
      for (const [kind, path] of [
        ["server", STREAM],
        ...(protocol === "connect" ? [] : [["unary", ECHO] as const]),
      ] as const) {
        test(`${protocol} ${kind}: an announcement over the service's limit is refused at its head (not held, up to the adapter's, until the body ends)`, async () => {
          const over = Buffer.alloc(15);
          over.writeUInt32BE(READ_MAX + 1, 1);
          const ours = await exchangeOnce(ports().ours, path, headersOf(protocol), over);
          const theirs = await exchangeOnce(ports().theirs, path, headersOf(protocol), over);
          assert.deepEqual(ours, theirs);
          assert.match(statusOf(protocol, ours), /^(resource_exhausted|ResourceExhausted): /);
        });
      }
    }
    for (const protocol of PROTOCOLS) {
      test(`${protocol}: a timeout beyond setTimeout's reach is over the service's maxTimeoutMs, refused as connect-es refuses it`, async () => {
        // Connect: 3e9 ms; gRPC: 99,999,999 s. Both past 2^31 - 1 ms.
        const timeout =
          protocol === "connect"
            ? { "connect-timeout-ms": "3000000000" }
            : { "grpc-timeout": "99999999S" };
        const headers = headersOf(protocol, timeout);
        const body = message([]);
        const ours = await exchangeOnce(ports().ours, STREAM, headers, body);
        const theirs = await exchangeOnce(ports().theirs, STREAM, headers, body);
        assert.deepEqual(ours, theirs);
        assert.notEqual(statusOf(protocol, ours), "ok");
      });
    }
  });

  describe("looser than the adapter's", () => {
    const ports = pair(READ_MAX, 0xffffffff);
    for (const protocol of PROTOCOLS) {
      test(`${protocol} server stream, 15 bytes announcing 1 GiB: never holds the announcement`, async () => {
        await wholeHeadOnly(ports().ours, STREAM, protocol);
      });
    }
  });
});

describe("flow control: a handler that reads slowly holds back the host's writes", () => {
  const plugin = leanPlugin();

  for (const protocol of ["connect", "grpc"] as const) {
    test(`${protocol}: the host's writes stop while nothing is read, and all arrive once it is`, async () => {
      const seen = plugin().seen;
      let release = (): void => {};
      seen.release = new Promise<void>((resolve) => (release = resolve));
      seen.read = 0;
      const started = new Promise<void>((resolve) => (seen.started = resolve));
      const session = http2.connect(`http://127.0.0.1:${plugin().port}`);
      session.on("error", () => {});
      try {
        const { req, done } = openRequest(
          session,
          COLLECT,
          headersOf(protocol, { [MODE]: "slow" }),
        );
        const one = message(new Uint8Array(1000));
        const total = 16 * 1024;
        let accepted = 0;
        for (let i = 0; i < total; i++) req.write(one, () => accepted++);
        req.end();
        await started;
        await new Promise((r) => setTimeout(r, 500));
        // Flow control: what went out is bounded by the windows and HIGH_WATER, far below 16 MB.
        assert.ok(
          accepted * one.length < 4 * 1024 * 1024,
          `${accepted} of ${total} messages went out`,
        );
        release();
        const x = await done;
        assert.equal(x.status, 200);
        assert.equal(seen.read, total * 1000);
      } finally {
        session.close();
      }
    });
  }
});

describe("our host cancelling a client stream mid-request", () => {
  const plugin = leanPlugin();

  for (const protocol of ["connect", "grpc"] as const) {
    test(`${protocol}: the plugin never sees the request end as if it were whole`, async () => {
      const url = `http://127.0.0.1:${plugin().port}`;
      const session = new H2Session(url);
      const transport = createProtocolTransport(protocol, session, { baseUrl: url });
      const seen = plugin().seen;
      const inputs = seen.inputs.length;
      const controller = new AbortController();
      const started = new Promise<void>((resolve) => (seen.started = resolve));
      try {
        const call = transport.stream(
          Bench.method.collect,
          controller.signal,
          undefined,
          undefined,
          (async function* () {
            yield { value: new Uint8Array([1]) };
            // The request goes on: the host cancels before its end.
            await new Promise(() => {});
          })(),
        );
        const outcome = call.then(
          () => "answered",
          (e: unknown) => Code[ConnectError.from(e).code],
        );
        await started;
        controller.abort();
        assert.equal(await outcome, "Canceled");
        while (seen.inputs.length === inputs) await new Promise((r) => setTimeout(r, 5));
        // Before: node's close(CANCEL) sent END_STREAM, then RST_STREAM, and the plugin saw "end".
        assert.deepEqual(seen.inputs.slice(inputs), [
          "Aborted: the client went away before the request ended",
        ]);
      } finally {
        session.close();
      }
    });
  }
});
