/**
 * Server streams on the lean path (src/transport/stream-handler.ts, served
 * from the bare HTTP/2 stream) against connect-es' streaming handlers
 * behind node:http2's compatibility layer (`lean: false`): the same
 * requests go to both servers and must get the same status, headers (but
 * `date`), body bytes, trailers and reset codes. Each case also checks
 * which path ran it: the lean one (the handler's context carries
 * CALL_ABORT) or connect-es' (a hand-over, or never claimed).
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { after, before, test } from "node:test";
import { gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { BytesValueSchema, Int64ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { Bench } from "../../../bench/service.js";
import type { PluginHttpServer } from "../../../src/transport/http-server.js";
import { createNodeAdapter } from "../../../src/transport/node-adapter.js";
import { CALL_ABORT } from "../../../src/transport/lazy-abort.js";
import {
  envelope,
  exchangeOnce,
  grpcWebTrailerOf,
  listenCounting,
  rejecting,
  type RawExchange,
} from "./command-routes.js";

const READ_MAX = 1024;
const WRITE_MAX = 4096;
const PATH = "/bench.v1.BenchService/Stream";

/** What one server's handler saw. */
interface Seen {
  /** HTTP/2 requests that reached connect-es through node's compatibility objects. */
  compat: number;
  lean: number;
  reference: number;
  /** Streams whose implementation's finally ran. */
  finallies: number;
  /** Messages the implementation produced (the backpressure case). */
  produced: number;
  /** The reason each aborted handler's signal gave. */
  aborted: Array<{ code: Code; message: string }>;
  started?: () => void;
}

/**
 * The Stream method's commands, by the request's value: n >= 0 streams n
 * 16-byte messages; the negative ones are the cases below.
 */
const Cmd = {
  failFirst: -1,
  failAfter: -2,
  throwAfter: -3,
  hang: -4,
  tooBig: -5,
  metadata: -6,
  badHeader: -7,
  endless: -8,
  big: -9,
  counted: -10,
} as const;

/** Messages of the `counted` stream. */
const COUNTED = 100_000;

function routes(seen: Seen): (router: ConnectRouter) => void {
  return (router) =>
    router.service(Bench, {
      echo: (req) => req,
      async *stream(req, ctx) {
        if (CALL_ABORT in ctx) seen.lean++;
        else seen.reference++;
        const n = Number(req.value);
        const msg = (i: number): { value: Uint8Array } => ({
          value: new Uint8Array(16).fill(i & 0xff),
        });
        try {
          switch (n) {
            case Cmd.failFirst:
              ctx.responseHeader.set("x-before", "set");
              ctx.responseTrailer.set("x-trailer", "kept");
              throw new ConnectError("it broke: 100% ünicode", Code.FailedPrecondition, {
                "x-meta": "m",
              });
            case Cmd.failAfter:
              ctx.responseTrailer.set("x-trailer", "kept");
              for (let i = 0; i < 3; i++) yield msg(i);
              throw new ConnectError("broke after three", Code.DataLoss, { "x-meta": "m" });
            case Cmd.throwAfter:
              yield msg(1);
              throw new Error("internal details");
            case Cmd.hang: {
              yield msg(1);
              yield msg(2);
              seen.started?.();
              const signal = ctx.signal;
              const reason = await new Promise<unknown>((resolve) => {
                const done = (): void => {
                  const r = ConnectError.from(signal.reason);
                  seen.aborted.push({ code: r.code, message: r.rawMessage });
                  resolve(signal.reason);
                };
                if (signal.aborted) done();
                else signal.addEventListener("abort", done, { once: true });
              });
              throw reason;
            }
            case Cmd.tooBig:
              yield msg(1);
              yield { value: new Uint8Array(WRITE_MAX + 1) };
              yield msg(2);
              return;
            case Cmd.metadata:
              ctx.responseHeader.set("x-answer", "yes");
              ctx.responseHeader.append("x-many", "1");
              ctx.responseHeader.append("x-many", "2");
              yield msg(1);
              yield msg(2);
              ctx.responseTrailer.set("x-trailer", "t");
              return;
            case Cmd.badHeader:
              ctx.responseHeader.set("keep-alive", "timeout=5");
              yield msg(1);
              return;
            case Cmd.endless:
              for (let i = 0; !ctx.signal.aborted; i++) {
                seen.produced++;
                yield msg(i);
              }
              return;
            case Cmd.counted:
              for (let i = 0; i < COUNTED; i++) {
                seen.produced++;
                yield msg(i);
              }
              return;
            case Cmd.big:
              for (let i = 0; i < 3; i++) yield { value: new Uint8Array(2000).fill(i) };
              return;
            default:
              for (let i = 0; i < n; i++) yield msg(i);
          }
        } finally {
          seen.finallies++;
        }
      },
    });
}

interface Server {
  port: number;
  seen: Seen;
  server: PluginHttpServer;
}

async function start(raw: boolean, acceptHttp1 = false, leanStreams = true): Promise<Server> {
  const seen: Seen = { compat: 0, lean: 0, reference: 0, finallies: 0, produced: 0, aborted: [] };
  const adapter = createNodeAdapter({
    routes: routes(seen),
    interceptors: [rejecting],
    readMaxBytes: READ_MAX,
    writeMaxBytes: WRITE_MAX,
    lean: raw,
    leanStreams,
  });
  return listenCounting(adapter, seen, raw, acceptHttp1);
}

let lean: Server;
let reference: Server;
before(async () => {
  [lean, reference] = await Promise.all([start(true), start(false)]);
});
after(async () => {
  await Promise.all([lean.server.close(), reference.server.close()]);
});

type Exchange = RawExchange;

type Protocol = "connect" | "grpc" | "grpc-web";

/** Connect and gRPC-web end the body with an envelope (end-of-stream, trailer); gRPC with trailers. */
const endEnvelopes = (protocol: Protocol): number => (protocol === "grpc" ? 0 : 1);

function request(
  protocol: Protocol,
  value: number,
  extra: http2.OutgoingHttpHeaders = {},
): [http2.OutgoingHttpHeaders, Uint8Array] {
  const body = envelope(
    toBinary(Int64ValueSchema, create(Int64ValueSchema, { value: BigInt(value) })),
  );
  const headers: http2.OutgoingHttpHeaders =
    protocol === "connect"
      ? { "content-type": "application/connect+proto", "connect-protocol-version": "1" }
      : protocol === "grpc"
        ? { "content-type": "application/grpc", te: "trailers" }
        : { "content-type": "application/grpc-web+proto" };
  return [{ ...headers, ...extra }, body];
}

/** Sends one request on a fresh session and collects what comes back. */
function exchange(
  port: number,
  headers: http2.OutgoingHttpHeaders,
  body: Uint8Array,
): Promise<Exchange> {
  return exchangeOnce(port, PATH, headers, body);
}

/** Sends the same request to both servers, compares, and checks which path ran it. */
async function same(
  headers: http2.OutgoingHttpHeaders,
  body: Uint8Array,
  path: "lean" | "connect-es",
): Promise<Exchange> {
  const { compat, lean: ranLean, reference: ranReference } = lean.seen;
  const a = await exchange(lean.port, headers, body);
  const b = await exchange(reference.port, headers, body);
  assert.deepEqual(a, b);
  if (path === "lean") {
    assert.equal(lean.seen.compat, compat, "served from the stream");
    assert.equal(lean.seen.reference, ranReference, "not by connect-es' handler");
  } else {
    assert.equal(lean.seen.compat, compat + 1, "handed to connect-es");
    assert.equal(lean.seen.lean, ranLean, "not by the lean path");
  }
  return a;
}

/** The envelopes of a response body: flags and payload. */
function envelopes(hex: string): Array<{ flags: number; data: Buffer }> {
  const bytes = Buffer.from(hex, "hex");
  const out: Array<{ flags: number; data: Buffer }> = [];
  for (let at = 0; at < bytes.length;) {
    const length = bytes.readUInt32BE(at + 1);
    out.push({ flags: bytes[at] as number, data: bytes.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return out;
}

/** A gRPC answer's trailers, or a gRPC-web answer's trailer envelope. */
function trailersOf(protocol: Protocol, x: Exchange): Record<string, unknown> | undefined {
  if (protocol !== "grpc-web") return x.trailers;
  assert.equal(envelopes(x.body).at(-1)?.flags, 0x80, "ends with a trailer envelope");
  return grpcWebTrailerOf(x.body);
}

/** The error a response carries: Connect's end-of-stream JSON, or gRPC's (or gRPC-web's) trailers. */
function errorOf(protocol: Protocol, x: Exchange): { code: string | number; message: string } {
  if (protocol === "connect") {
    const last = envelopes(x.body).at(-1);
    assert.equal(last?.flags, 2, "ends with an end-of-stream envelope");
    const end = JSON.parse(last.data.toString()) as { error: { code: string; message: string } };
    return { code: end.error.code, message: end.error.message };
  }
  const trailers = trailersOf(protocol, x);
  return {
    code: Number(trailers?.["grpc-status"]),
    message: decodeURIComponent(String(trailers?.["grpc-message"])),
  };
}

for (const protocol of ["connect", "grpc", "grpc-web"] as const) {
  const code = (c: Code, name: string): string | number => (protocol === "connect" ? name : c);

  test(`${protocol}: an empty stream`, async () => {
    const x = await same(...request(protocol, 0), "lean");
    assert.equal(x.status, 200);
    assert.equal(envelopes(x.body).length, endEnvelopes(protocol));
  });

  test(`${protocol}: one message`, async () => {
    const x = await same(...request(protocol, 1), "lean");
    assert.equal(envelopes(x.body).length, 1 + endEnvelopes(protocol));
  });

  test(`${protocol}: many messages, over several batches`, async () => {
    const x = await same(...request(protocol, 10_000), "lean");
    const all = envelopes(x.body);
    assert.equal(all.length, 10_000 + endEnvelopes(protocol));
    assert.equal(all[9_999]?.data.length, 18);
  });

  test(`${protocol}: response headers and trailers the handler and an interceptor set`, async () => {
    const x = await same(...request(protocol, Cmd.metadata), "lean");
    assert.equal(x.headers["x-answer"], "yes");
    assert.equal(x.headers["x-intercepted"], "yes");
    if (protocol !== "connect") {
      assert.deepEqual(trailersOf(protocol, x), { "grpc-status": "0", "x-trailer": "t" });
    } else {
      const end = JSON.parse(envelopes(x.body).at(-1)?.data.toString() ?? "") as unknown;
      assert.deepEqual(end, { metadata: { "x-trailer": ["t"] } });
    }
  });

  test(`${protocol}: an error before the first message`, async () => {
    const x = await same(...request(protocol, Cmd.failFirst), "lean");
    assert.deepEqual(errorOf(protocol, x), {
      code: code(Code.FailedPrecondition, "failed_precondition"),
      message: "it broke: 100% ünicode",
    });
    assert.equal(x.headers["x-before"], "set");
  });

  test(`${protocol}: an error after three messages`, async () => {
    const x = await same(...request(protocol, Cmd.failAfter), "lean");
    assert.deepEqual(errorOf(protocol, x), {
      code: code(Code.DataLoss, "data_loss"),
      message: "broke after three",
    });
    assert.equal(envelopes(x.body).filter((e) => e.flags === 0).length, 3);
  });

  test(`${protocol}: a plain exception after a message becomes "internal error"`, async () => {
    const x = await same(...request(protocol, Cmd.throwAfter), "lean");
    assert.deepEqual(errorOf(protocol, x), {
      code: code(Code.Internal, "internal"),
      message: "internal error",
    });
  });

  test(`${protocol}: an interceptor that rejects`, async () => {
    // The interceptor refuses before any implementation runs, on the lean path too.
    const x = await same(...request(protocol, 1, { "x-reject": "1" }), "lean");
    assert.equal(errorOf(protocol, x).message, "rejected by the interceptor");
  });

  test(`${protocol}: the deadline ends the stream mid-way with DeadlineExceeded`, async () => {
    const timeout =
      protocol === "connect" ? { "connect-timeout-ms": "100" } : { "grpc-timeout": "100m" };
    const x = await same(...request(protocol, Cmd.hang, timeout), "lean");
    assert.deepEqual(errorOf(protocol, x), {
      code: code(Code.DeadlineExceeded, "deadline_exceeded"),
      message: "the operation timed out",
    });
    assert.equal(envelopes(x.body).filter((e) => e.flags === 0).length, 2);
  });

  test(`${protocol}: a message over writeMaxBytes ends the stream with ResourceExhausted, the handler's finally runs`, async () => {
    const finallies = [lean.seen.finallies, reference.seen.finallies];
    const x = await same(...request(protocol, Cmd.tooBig), "lean");
    assert.deepEqual(errorOf(protocol, x), {
      code: code(Code.ResourceExhausted, "resource_exhausted"),
      message: `message size ${WRITE_MAX + 4} is larger than configured writeMaxBytes ${WRITE_MAX}`,
    });
    assert.deepEqual(
      [lean.seen.finallies, reference.seen.finallies],
      [(finallies[0] as number) + 1, (finallies[1] as number) + 1],
    );
  });

  test(`${protocol}: large messages are compressed when the client accepts gzip`, async () => {
    const accept = protocol === "connect" ? "connect-accept-encoding" : "grpc-accept-encoding";
    const x = await same(...request(protocol, Cmd.big, { [accept]: "gzip" }), "lean");
    assert.deepEqual(
      envelopes(x.body).map((e) => e.flags),
      { connect: [1, 1, 1, 2], grpc: [1, 1, 1], "grpc-web": [1, 1, 1, 0x80] }[protocol],
    );
    const small = await same(...request(protocol, 2, { [accept]: "br, gzip" }), "lean");
    assert.equal(
      small.headers[protocol === "connect" ? "connect-content-encoding" : "grpc-encoding"],
      "br",
    );
  });

  test(`${protocol}: a response header node:http2 refuses resets the stream on both paths`, async () => {
    const x = await same(...request(protocol, Cmd.badHeader), "lean");
    assert.equal(x.rstCode, http2.constants.NGHTTP2_INTERNAL_ERROR);
  });

  test(`${protocol}: a compressed request goes to connect-es`, async () => {
    const [headers] = request(protocol, 0);
    const payload = gzipSync(toBinary(Int64ValueSchema, create(Int64ValueSchema, { value: 3n })));
    const encoding = protocol === "connect" ? "connect-content-encoding" : "grpc-encoding";
    const x = await same({ ...headers, [encoding]: "gzip" }, envelope(payload, 1), "connect-es");
    assert.equal(envelopes(x.body).filter((e) => e.flags === 0).length, 3);
  });

  test(`${protocol}: JSON goes to connect-es`, async () => {
    const type = {
      connect: "application/connect+json",
      grpc: "application/grpc+json",
      "grpc-web": "application/grpc-web+json",
    }[protocol];
    const x = await same(
      { ...request(protocol, 0)[0], "content-type": type },
      envelope(Buffer.from('"2"')),
      "connect-es",
    );
    assert.equal(x.status, 200);
  });

  test(`${protocol}: a body that is not one message goes to connect-es`, async () => {
    const [headers, body] = request(protocol, 2);
    const x = await same(headers, Buffer.concat([body, body]), "connect-es");
    assert.match(errorOf(protocol, x).message, /extra input message/);
    const y = await same(headers, body.subarray(0, 3), "connect-es");
    assert.equal(y.status, 200);
    const big = envelope(
      toBinary(BytesValueSchema, create(BytesValueSchema, { value: new Uint8Array(READ_MAX) })),
    );
    const z = await same(headers, big, "connect-es");
    assert.match(errorOf(protocol, z).message, /readMaxBytes/);
  });

  test(`${protocol}: a client that cancels mid-stream aborts the handler with Canceled and its finally runs`, async () => {
    const reasons = [];
    for (const server of [lean, reference]) {
      const count = server.seen.aborted.length;
      const finallies = server.seen.finallies;
      const session = http2.connect(`http://127.0.0.1:${server.port}`);
      const [headers, body] = request(protocol, Cmd.hang);
      const started = new Promise<void>((resolve) => (server.seen.started = resolve));
      const req = session.request({ ":method": "POST", ":path": PATH, ...headers });
      req.on("error", () => {});
      req.end(body);
      await started;
      req.close(http2.constants.NGHTTP2_CANCEL);
      while (server.seen.aborted.length === count || server.seen.finallies === finallies) {
        await new Promise((r) => setImmediate(r));
      }
      reasons.push(server.seen.aborted[count]);
      session.close();
    }
    assert.deepEqual(reasons[0], reasons[1]);
    assert.equal(reasons[0]?.code, Code.Canceled);
  });
}

test("a client whose connection drops mid-stream: the handler is aborted and its finally runs, as on connect-es", async () => {
  const reasons = [];
  for (const server of [lean, reference]) {
    const count = server.seen.aborted.length;
    const finallies = server.seen.finallies;
    let socket: net.Socket | undefined;
    const session = http2.connect(`http://127.0.0.1:${server.port}`, {
      createConnection: () => (socket = net.connect(server.port, "127.0.0.1")),
    });
    session.on("error", () => {});
    const [headers, body] = request("grpc", Cmd.hang);
    const started = new Promise<void>((resolve) => (server.seen.started = resolve));
    const req = session.request({ ":method": "POST", ":path": PATH, ...headers });
    req.on("error", () => {});
    req.end(body);
    await started;
    // The socket goes without a GOAWAY or RST_STREAM.
    socket?.destroy();
    while (server.seen.aborted.length === count || server.seen.finallies === finallies) {
      await new Promise((r) => setImmediate(r));
    }
    reasons.push(server.seen.aborted[count]?.code);
  }
  assert.deepEqual(reasons, [Code.Canceled, Code.Canceled]);
});

test("gRPC-web-text goes to connect-es", async () => {
  const [, body] = request("grpc-web", 2);
  const text = Buffer.from(Buffer.from(body).toString("base64"));
  const a = await exchange(lean.port, { "content-type": "application/grpc-web-text" }, text);
  const b = await exchange(reference.port, { "content-type": "application/grpc-web-text" }, text);
  assert.deepEqual(a, b);
  assert.equal(a.status, 415);
});

test("HTTP/1.1 streams are connect-es'", async () => {
  const server = await start(true, true);
  try {
    const [headers, body] = request("connect", 3);
    const answer = await new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
      const req = http.request(
        {
          host: "127.0.0.1",
          port: server.port,
          method: "POST",
          path: PATH,
          headers: headers,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }),
          );
        },
      );
      req.on("error", reject);
      req.end(body);
    });
    assert.equal(answer.status, 200);
    assert.equal(envelopes(answer.body.toString("hex")).length, 4);
    assert.deepEqual([server.seen.lean, server.seen.reference], [0, 1]);
  } finally {
    await server.server.close();
  }
});

/** The most a stalled stream may hold between the handler and the client: HTTP/2 windows, buffers, a batch. */
const BOUND_BYTES = 1024 * 1024;
/** One 16-byte message on the wire: a 5-byte prefix, then BytesValue's tag, length and value. */
const ENVELOPE_BYTES = 5 + 2 + 16;

for (const protocol of ["connect", "grpc"] as const) {
  test(`${protocol}: a client that stops reading stops the handler being pulled; a cancel then ends it`, async (t) => {
    const seen = lean.seen;
    const produced0 = seen.produced;
    const finallies = seen.finallies;
    const session = http2.connect(`http://127.0.0.1:${lean.port}`);
    session.on("error", () => {});
    try {
      const [headers, body] = request(protocol, Cmd.endless);
      const req = session.request({ ":method": "POST", ":path": PATH, ...headers });
      req.on("error", () => {});
      req.pause();
      req.end(body);
      // Wait until the handler is no longer pulled: the count stays put over 20 checks.
      let last = -1;
      let still = 0;
      while (still < 20) {
        await new Promise((r) => setTimeout(r, 10));
        const now = seen.produced - produced0;
        if (now === last && now > 0) still++;
        else still = 0;
        last = now;
      }
      const producedBytes = (seen.produced - produced0) * ENVELOPE_BYTES;
      t.diagnostic(`stalled after ${producedBytes} bytes`);
      assert.ok(producedBytes < BOUND_BYTES, `produced ${producedBytes} bytes while stalled`);
      req.close(http2.constants.NGHTTP2_CANCEL);
      while (seen.finallies === finallies) await new Promise((r) => setImmediate(r));
      const atEnd = seen.produced;
      await new Promise((r) => setTimeout(r, 30));
      assert.equal(seen.produced, atEnd, "nothing produced after the cancel");
    } finally {
      session.close();
    }
  });

  test(`${protocol}: a slow reader gets every message, the handler never far ahead`, async (t) => {
    const seen = lean.seen;
    const produced0 = seen.produced;
    const session = http2.connect(`http://127.0.0.1:${lean.port}`);
    try {
      const [headers, body] = request(protocol, Cmd.counted);
      const req = session.request({ ":method": "POST", ":path": PATH, ...headers });
      let received = 0;
      let lead = 0;
      let chunks = 0;
      const done = new Promise<void>((resolve, reject) => {
        req.on("data", (c: Buffer) => {
          received += c.length;
          lead = Math.max(lead, (seen.produced - produced0) * ENVELOPE_BYTES - received);
          // Every 8th chunk, stop reading for a few milliseconds.
          if (++chunks % 8 === 0) {
            req.pause();
            setTimeout(() => req.resume(), 3);
          }
        });
        req.on("end", resolve);
        req.on("error", reject);
      });
      req.end(body);
      await done;
      assert.equal(seen.produced - produced0, COUNTED);
      assert.equal(received, COUNTED * ENVELOPE_BYTES + (protocol === "connect" ? 5 + 2 : 0));
      t.diagnostic(`at most ${lead} bytes ahead`);
      assert.ok(lead < BOUND_BYTES, `the handler was ${lead} bytes ahead of the reader`);
    } finally {
      session.close();
    }
  });
}

test("leanStreams: false leaves server streams to connect-es", async () => {
  const server = await start(true, false, false);
  try {
    const x = await exchange(server.port, ...request("grpc", 3));
    assert.equal(x.trailers?.["grpc-status"], "0");
    assert.equal(envelopes(x.body).length, 3);
    assert.deepEqual([server.seen.lean, server.seen.reference, server.seen.compat], [0, 1, 1]);
  } finally {
    await server.server.close();
  }
});

test("concurrent streams on one session share the batch and each gets its own bytes", async () => {
  const session = http2.connect(`http://127.0.0.1:${lean.port}`);
  try {
    const one = (protocol: Protocol, count: number): Promise<Buffer> =>
      new Promise((resolve, reject) => {
        const [headers, body] = request(protocol, count);
        const req = session.request({ ":method": "POST", ":path": PATH, ...headers });
        const chunks: Buffer[] = [];
        req.on("data", (c: Buffer) => chunks.push(c));
        req.on("end", () => resolve(Buffer.concat(chunks)));
        req.on("error", reject);
        req.end(body);
      });
    const counts = [5_000, 3_000, 1, 0, 7_000];
    const bodies = await Promise.all(
      counts.map((count, i) => one(i % 2 === 0 ? "grpc" : "connect", count)),
    );
    counts.forEach((count, i) => {
      const all = envelopes((bodies[i] as Buffer).toString("hex"));
      const messages = all.filter((e) => e.flags === 0);
      assert.equal(messages.length, count);
      // Message k is 16 bytes of k & 0xff: no bytes of another stream in between.
      messages.forEach((e, k) => assert.equal(e.data.at(-1), k & 0xff));
      if (i % 2 === 1) assert.equal(all.at(-1)?.flags, 2);
    });
  } finally {
    session.close();
  }
});
