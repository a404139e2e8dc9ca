/**
 * Hostile peers cost bounded memory and time, and are cut off with a logged
 * reason: a lying 4 GiB length prefix, a frame that never finishes
 * (slowloris), thousands of calls on one connection, an oversized frame for
 * a call that was never opened, and the same hostility from a plugin towards
 * its host. Memory bounds are measured in this process (the server runs
 * here) as the heap and buffers retained after a garbage collection.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as http2 from "node:http2";
import * as net from "node:net";
import { connect as tlsConnect } from "node:tls";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Code, ConnectError, createClient, type ConnectRouter } from "@connectrpc/connect";
import { KV } from "../examples/kv/gen/example/kv/v1/kv_pb.js";
import { createFramedTransport } from "../src/transport/framed/client.js";
import {
  DEFAULT_MAX_FRAME_BYTES,
  FRAME_HEADER_BYTES,
  FrameReader,
  FrameType,
  encodeFrame,
  jsonPayload,
  parseJson,
} from "../src/transport/framed/frames.js";
import { FramedServer } from "../src/transport/framed/server.js";
import { PluginHttpServer } from "../src/transport/http-server.js";
import type { PingWatchOptions } from "../src/transport/h2-watchdog.js";
import { remote, type LogRecord } from "../src/index.js";
import { fixture, kvClient, startNetworkPlugin, tempDir, waitFor } from "./helpers.js";
import { PREFACE, h2Frame, h2Raw, requestHeaders } from "./h2-raw.js";
import { generateAutoMtlsCertificate } from "../src/security/auto-mtls.js";
import { gc } from "./gc.js";

const MiB = 1024 * 1024;

/** A header that announces `length` payload bytes. */
function header(type: number, id: number, length: number): Buffer {
  const b = Buffer.alloc(FRAME_HEADER_BYTES);
  b.writeUInt32BE(length, 0);
  b.writeUInt8(type, 4);
  b.writeUInt32BE(id, 5);
  return b;
}

/** Resolves with the ms from now until the socket closes. */
function closedWithin(socket: net.Socket): Promise<number> {
  const start = performance.now();
  return new Promise((resolve) => {
    if (socket.destroyed) resolve(0);
    socket.once("close", () => resolve(performance.now() - start));
  });
}

/** Resolves with the ms from now until the socket closes; fails if it is still open after `limitMs`. */
async function closedBefore(socket: net.Socket, limitMs: number): Promise<number> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`still open after ${limitMs} ms`)), limitMs);
  });
  try {
    return await Promise.race([closedWithin(socket), late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Writes `frame` one byte per 100 ms and checks that the server closes the
 * socket before the frame is whole, about `timeoutMs` after its first byte.
 */
async function trickleUntilCutOff(socket: net.Socket, frame: Buffer, timeoutMs: number) {
  const closed = closedWithin(socket);
  let i = 0;
  const trickle = setInterval(() => {
    if (i < frame.length && !socket.destroyed) socket.write(frame.subarray(i, ++i));
  }, 100);
  try {
    const ms = await closed;
    assert.ok(i < frame.length, "the frame was never finished");
    assert.ok(
      ms >= timeoutMs - 50 && ms < timeoutMs + 2_000,
      `closed after ${ms.toFixed(0)} ms (frame timeout ${timeoutMs} ms)`,
    );
  } finally {
    clearInterval(trickle);
  }
}

/** The trailers the server sends, by call id. */
interface Trailer {
  e?: { c: number; m: string };
}
function trailers(socket: net.Socket): Map<number, Trailer> {
  const got = new Map<number, Trailer>();
  const reader = new FrameReader((type, id, payload) => {
    if (type === FrameType.trailer) got.set(id, (parseJson(payload) as Trailer | undefined) ?? {});
  });
  socket.on("data", (chunk: Buffer) => reader.push(chunk));
  return got;
}

/**
 * MiB of JavaScript heap and buffers this process retains: the least of five
 * readings, each taken right after a collection. While a peer floods us, every
 * reading also counts what arrived since the last collection (tens of MiB in
 * 50 ms on a fast machine); retained memory is in every reading, so the least
 * one is the closest bound to it, and it still grows with any real retention.
 */
async function retainedMiB(): Promise<number> {
  let least = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 5; i++) {
    // Buffers' memory is released after the collection, off the main thread.
    gc();
    await new Promise((resolve) => setTimeout(resolve, 20));
    gc();
    const m = process.memoryUsage();
    least = Math.min(least, (m.heapUsed + m.arrayBuffers) / MiB);
  }
  return least;
}

const routes = (router: ConnectRouter): void => {
  router.service(KV, {
    get: () => ({ value: new Uint8Array([1]) }),
    put: () => ({}),
    // Streams that never end on their own: each open call stays open.
    async *watch(_req, ctx) {
      await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
      yield { key: "", value: new Uint8Array() };
    },
    putMany: async (reqs) => {
      let count = 0;
      for await (const _ of reqs) count++;
      return { count };
    },
    async *exchange() {},
  });
};

describe("a hostile peer of a framed server", () => {
  const FRAME_TIMEOUT_MS = 1_000;
  const MAX_CALLS = 100;
  let server: FramedServer;
  let path: string;
  const cutOff: string[] = [];
  before(async () => {
    path = join(tempDir("cphp-"), "f.sock");
    server = await FramedServer.listen(
      routes,
      { network: "unix", path },
      {
        readMaxBytes: MiB,
        frameTimeoutMs: FRAME_TIMEOUT_MS,
        maxConcurrentCalls: MAX_CALLS,
        onPeerCutOff: (reason) => cutOff.push(reason),
      },
    );
  });
  after(() => server.close());

  async function connect(): Promise<net.Socket> {
    const socket = net.connect(path);
    socket.on("error", () => {});
    await new Promise((resolve) => socket.once("connect", resolve));
    return socket;
  }

  test("a 4 GiB length prefix: cut off at once, with the reason logged", async () => {
    const before = cutOff.length;
    const socket = await connect();
    const closed = closedWithin(socket);
    socket.write(header(FrameType.message, 1, 0xffffffff));
    const ms = await closed;
    assert.ok(ms < 2_000, `closed after ${ms.toFixed(0)} ms (bound 2000)`);
    assert.deepEqual(cutOff.slice(before), [
      `framed connection from a local peer cut off: frame of 4294967295 bytes exceeds the limit of ${DEFAULT_MAX_FRAME_BYTES}`,
    ]);
  });

  test("a 200 MiB frame (over readMaxBytes 1 MiB) is skipped, not buffered: 64 MiB sent, < 8 MiB retained", async () => {
    const before = cutOff.length;
    const socket = await connect();
    const got = trailers(socket);
    // Open a call, then send it a message that announces 200 MiB.
    socket.write(encodeFrame(FrameType.open, 7, jsonPayload({ p: "/example.kv.v1.KV/PutMany" })));
    socket.write(header(FrameType.message, 7, 200 * MiB));
    const chunk = Buffer.alloc(MiB, 0x61);
    const before0 = await retainedMiB();
    // On a slow machine the frame timeout may cut the peer off before all
    // 64 MiB are written: then "drain" never comes, so wait for either.
    for (let i = 0; i < 64 && !socket.destroyed; i++) {
      if (!socket.write(chunk)) {
        await new Promise((resolve) => {
          socket.once("drain", resolve);
          socket.once("close", resolve);
        });
      }
    }
    await waitFor("the call's trailer", () => got.has(7), 5_000);
    const grown = (await retainedMiB()) - before0;
    assert.ok(grown < 8, `${grown.toFixed(1)} MiB retained after 64 MiB were skipped`);
    assert.equal(got.get(7)?.e?.c, Code.ResourceExhausted);
    assert.equal(got.get(7)?.e?.m, "message size is larger than configured readMaxBytes 1048576");
    // The rest of the 200 MiB never comes: the skip is a frame in progress too.
    const ms = await closedWithin(socket);
    assert.ok(ms < FRAME_TIMEOUT_MS + 2_000, `closed after ${ms.toFixed(0)} ms`);
    assert.match(cutOff.slice(before).join("\n"), /a frame was still incomplete 1000 ms after/);
  });

  test("slowloris: a frame trickled one byte at a time is cut off within its frame timeout", async () => {
    const before = cutOff.length;
    const socket = await connect();
    await trickleUntilCutOff(
      socket,
      encodeFrame(FrameType.open, 1, jsonPayload({ p: "/example.kv.v1.KV/Get" })),
      FRAME_TIMEOUT_MS,
    );
    assert.deepEqual(cutOff.slice(before), [
      `framed connection from a local peer cut off: a frame was still incomplete ${FRAME_TIMEOUT_MS} ms after its first byte`,
    ]);
  });

  test("20,000 calls opened on one connection: 100 run, the rest are refused at once", async () => {
    const socket = await connect();
    const got = trailers(socket);
    const N = 20_000;
    const before0 = await retainedMiB();
    const frames: Buffer[] = [];
    for (let id = 1; id <= N; id++) {
      frames.push(
        encodeFrame(FrameType.open, id, jsonPayload({ p: "/example.kv.v1.KV/Watch" })),
        encodeFrame(FrameType.message, id),
        encodeFrame(FrameType.end, id),
      );
    }
    socket.write(Buffer.concat(frames));
    await waitFor("answers to the refused calls", () => got.size >= N - MAX_CALLS, 20_000);
    const grown = (await retainedMiB()) - before0;
    const refused = [...got.values()].filter(
      (t) =>
        t.e?.c === Code.ResourceExhausted &&
        t.e.m === `too many concurrent calls on one connection (limit ${MAX_CALLS})`,
    );
    assert.equal(refused.length, N - MAX_CALLS);
    assert.equal(got.size, N - MAX_CALLS, "the 100 admitted calls are still running");
    // The 60,000 frames' trailers and this test's own copies are counted too.
    assert.ok(grown < 32, `${grown.toFixed(1)} MiB retained after ${N} calls`);
    // Cancelling frees the slots: a new call runs.
    socket.write(
      Buffer.concat(
        Array.from({ length: MAX_CALLS }, (_, i) => encodeFrame(FrameType.cancel, i + 1)),
      ),
    );
    socket.write(
      Buffer.concat([
        encodeFrame(FrameType.open, N + 1, jsonPayload({ p: "/example.kv.v1.KV/Get" })),
        encodeFrame(FrameType.message, N + 1),
        encodeFrame(FrameType.end, N + 1),
      ]),
    );
    await waitFor("the call after the cancels", () => got.has(N + 1), 5_000);
    assert.equal(got.get(N + 1)?.e, undefined);
    socket.destroy();
  });

  test("a header node's Headers refuses (a newline in its value): that call fails with InvalidArgument, the connection serves on", async () => {
    const before = cutOff.length;
    const socket = await connect();
    const got = trailers(socket);
    socket.write(
      Buffer.concat([
        encodeFrame(
          FrameType.open,
          3,
          jsonPayload({ p: "/example.kv.v1.KV/Get", h: [["x-bad", "a\r\nb"]] }),
        ),
        encodeFrame(FrameType.message, 3),
        encodeFrame(FrameType.end, 3),
        encodeFrame(FrameType.open, 5, jsonPayload({ p: "/example.kv.v1.KV/Get" })),
        encodeFrame(FrameType.message, 5),
        encodeFrame(FrameType.end, 5),
      ]),
    );
    await waitFor("the trailers of calls 3 and 5", () => got.has(3) && got.has(5), 5_000);
    assert.equal(got.get(3)?.e?.c, Code.InvalidArgument);
    assert.match(got.get(3)?.e?.m ?? "", /^protocol error: malformed header in open frame: /);
    assert.equal(got.get(5)?.e, undefined, "the next call on the connection is served");
    assert.deepEqual(cutOff.slice(before), []);
    socket.destroy();
  });

  test("an oversized open frame is answered: its call fails with ResourceExhausted", async () => {
    const socket = await connect();
    const got = trailers(socket);
    const huge = jsonPayload({ p: "/example.kv.v1.KV/Get", h: [["x-big", "a".repeat(2 * MiB)]] });
    socket.write(encodeFrame(FrameType.open, 9, huge));
    await waitFor("the trailer of call 9", () => got.has(9), 5_000);
    assert.deepEqual(got.get(9)?.e, {
      c: Code.ResourceExhausted,
      m: `request headers are larger than ${MiB} bytes`,
    });
    socket.destroy();
  });
});

describe("a hostile plugin towards its host, over the framed transport", () => {
  test("a 4 GiB length prefix from the plugin fails the host's calls with the reason", async () => {
    const path = join(tempDir("cphp-"), "evil.sock");
    const evil = net.createServer((socket) => {
      socket.on("error", () => {});
      socket.once("data", () => socket.write(header(FrameType.message, 1, 0xffffffff)));
    });
    await new Promise<void>((resolve) => evil.listen(path, resolve));
    const transport = createFramedTransport({ network: "unix", address: path });
    try {
      const kv = createClient(KV, transport.transport);
      const error = await kv.get({ key: "k" }).then(
        () => assert.fail("the call succeeded"),
        (e: unknown) => ConnectError.from(e),
      );
      assert.equal(error.code, Code.Unavailable);
      assert.equal(
        error.rawMessage,
        `connection to the plugin failed: frame of 4294967295 bytes exceeds the limit of ${DEFAULT_MAX_FRAME_BYTES}`,
      );
    } finally {
      transport.close();
      evil.close();
    }
  });

  test("a header Headers refuses from the plugin (a newline in its value, in headers or trailers): that call fails with the reason, the next one is answered", async () => {
    const path = join(tempDir("cphp-"), "badheader.sock");
    const bad = jsonPayload([["x-bad", "a\r\nb"]]);
    let opened = 0;
    const evil = net.createServer((socket) => {
      socket.on("error", () => {});
      const reader = new FrameReader((type, id) => {
        if (type !== FrameType.open) return;
        opened++;
        const frames =
          opened === 1
            ? [encodeFrame(FrameType.header, id, bad)]
            : opened === 2
              ? [
                  encodeFrame(FrameType.message, id),
                  encodeFrame(FrameType.trailer, id, jsonPayload({ t: [["x-bad", "a\r\nb"]] })),
                ]
              : [encodeFrame(FrameType.message, id), encodeFrame(FrameType.trailer, id)];
        socket.write(Buffer.concat(frames));
      });
      socket.on("data", (chunk: Buffer) => reader.push(chunk));
    });
    await new Promise<void>((resolve) => evil.listen(path, resolve));
    const transport = createFramedTransport({ network: "unix", address: path });
    try {
      const kv = createClient(KV, transport.transport);
      for (const where of ["headers", "trailers"]) {
        const error = await kv.get({ key: "k" }).then(
          () => assert.fail(`the call with bad ${where} succeeded`),
          (e: unknown) => ConnectError.from(e),
        );
        assert.equal(error.code, Code.Internal, where);
        assert.match(error.rawMessage, /^protocol error: the plugin sent a malformed header: /);
      }
      assert.equal((await kv.get({ key: "k" })).found, false, "the next call is answered");
    } finally {
      transport.close();
      evil.close();
    }
  });

  test("a request message over the 256 MiB frame limit fails before it is sent, naming the limit", async () => {
    const path = join(tempDir("cphp-"), "quiet.sock");
    let received = 0;
    const quiet = net.createServer((socket) =>
      socket.on("data", (b: Buffer) => (received += b.length)),
    );
    await new Promise<void>((resolve) => quiet.listen(path, resolve));
    const transport = createFramedTransport({ network: "unix", address: path });
    try {
      const kv = createClient(KV, transport.transport);
      const error = await kv.put({ key: "k", value: new Uint8Array(DEFAULT_MAX_FRAME_BYTES) }).then(
        () => assert.fail("the call succeeded"),
        (e: unknown) => ConnectError.from(e),
      );
      assert.equal(error.code, Code.ResourceExhausted);
      assert.match(
        error.rawMessage,
        new RegExp(
          `^message size ${DEFAULT_MAX_FRAME_BYTES + 9} is larger than the framed transport's frame limit ${DEFAULT_MAX_FRAME_BYTES}$`,
        ),
      );
      assert.equal(received, 0, "nothing was sent");
    } finally {
      transport.close();
      quiet.close();
    }
  });
});

// --- HTTP/2 in network mode -------------------------------------------------

function vmRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) / 1024;
}

describe("a hostile HTTP/2 peer of a network-mode plugin", () => {
  let network: Awaited<ReturnType<typeof startNetworkPlugin>>;
  let port: number;
  let log = "";
  before(async () => {
    network = await startNetworkPlugin("kv");
    network.child.stderr?.on("data", (chunk: Buffer) => (log += chunk.toString()));
    port = Number(new URL(network.url).port);
  });
  after(() => network.stop());

  test("5,000 streams opened at once: the session is cut off with a logged reason, plugin RSS < 64 MiB more", async () => {
    const rss0 = vmRssMiB(network.child.pid as number);
    const socket = await h2Raw(port);
    const closed = closedWithin(socket);
    const frames: Buffer[] = [];
    const headers = requestHeaders("/example.kv.v1.KV/Watch");
    for (let i = 0; i < 5_000; i++) frames.push(h2Frame(1, 0x4, 2 * i + 1, headers));
    socket.write(Buffer.concat(frames));
    const ms = await closed;
    const grown = vmRssMiB(network.child.pid as number) - rss0;
    assert.ok(ms < 5_000, `closed after ${ms.toFixed(0)} ms`);
    assert.ok(grown < 64, `plugin RSS grew by ${grown.toFixed(1)} MiB`);
    await waitFor("the log line", () => log.includes("cut off"));
    assert.match(
      log,
      /"@message":"HTTP\/2 session from 127\.0\.0\.1:\d+ cut off: Too many invalid HTTP\/2 frames"/,
    );
    // Other clients are served.
    const kv = kvClient(remote(network.url));
    await kv.start();
    try {
      await kv.dispense("kv").put({ key: "after", value: new Uint8Array([1]) });
    } finally {
      await kv.close();
    }
  });

  test("a 4 GiB message length prefix is refused at once with ResourceExhausted, plugin RSS < 64 MiB more", async () => {
    const rss0 = vmRssMiB(network.child.pid as number);
    const session = http2.connect(network.url);
    session.on("error", () => {});
    try {
      const stream = session.request({
        ":method": "POST",
        ":path": "/example.kv.v1.KV/PutMany",
        "content-type": "application/connect+proto",
      });
      stream.on("error", () => {});
      const body: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => body.push(chunk));
      // Envelope: flags 0, length 0xffffffff, then the first MiB of the
      // "message". (A client that pushes on past node's maxSessionMemory,
      // 10 MB, has its stream reset with ENHANCE_YOUR_CALM.)
      stream.write(Buffer.from([0, 0xff, 0xff, 0xff, 0xff]));
      stream.write(Buffer.alloc(MiB));
      const text = (): string => Buffer.concat(body).toString();
      await waitFor("the error", () => text().includes("resource_exhausted"), 5_000);
      assert.match(
        text(),
        /\{"error":\{"code":"resource_exhausted","message":"message size 4294967295 is larger than configured readMaxBytes 268435456"\}\}$/,
      );
      const grown = vmRssMiB(network.child.pid as number) - rss0;
      assert.ok(grown < 64, `plugin RSS grew by ${grown.toFixed(1)} MiB`);
    } finally {
      session.destroy();
    }
  });
});

/** How a client reaches `server`. */
function dial(server: PluginHttpServer): net.NetConnectOpts {
  const bound = server.bound;
  return bound.network === "tcp"
    ? { host: "127.0.0.1", port: bound.port }
    : { path: bound.address };
}

/** A test-only answer for every HTTP/2 request: 200 and an empty body. */
const answer200 = (_req: unknown, res: { end(): void }): void => res.end();

/** answer200, except "/slow": 20 chunks of 16 bytes, one every 100 ms. */
const answer200OrSlow = ((req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): void => {
  if (req.url !== "/slow") {
    res.end();
    return;
  }
  let n = 0;
  const tick = setInterval(() => {
    res.write(Buffer.alloc(16, 1));
    if (++n === 20) {
      clearInterval(tick);
      res.end();
    }
  }, 100);
  res.once("close", () => clearInterval(tick));
}) as unknown as Parameters<typeof PluginHttpServer.listen>[0];

describe("a cleartext HTTP/2 peer after network mode's sniff (node:http2 reads the socket)", () => {
  const listen = (reasons: string[], ping?: PingWatchOptions): Promise<PluginHttpServer> =>
    PluginHttpServer.listen(
      answer200,
      { network: "tcp", host: "127.0.0.1", port: 0 },
      { acceptHttp1: true, ...(ping && { ping }), onPeerCutOff: (r) => reasons.push(r) },
    );

  for (const [what, first] of [
    ["the preface and 5 bytes of a frame header", Buffer.concat([PREFACE, Buffer.alloc(5)])],
    ["half the preface", PREFACE.subarray(0, 12)],
  ] as const) {
    test(`${what} in the first read, then nothing: cut off by the PING timeout, with the reason`, async () => {
      // The sniffed bytes go back to the socket (unshift) and node:http2
      // reads them; it cannot answer a PING until the frame is whole.
      const reasons: string[] = [];
      const server = await listen(reasons, { intervalMs: 500, timeoutMs: 500 });
      try {
        const socket = net.connect(dial(server));
        socket.on("error", () => {});
        socket.on("data", () => {});
        await new Promise((resolve) => socket.once("connect", resolve));
        const closed = closedBefore(socket, 5_000);
        socket.write(first);
        const ms = await closed;
        // The first PING 500 ms after the session starts, its timeout 500 ms later.
        assert.ok(ms >= 950 && ms < 3_000, `closed after ${ms.toFixed(0)} ms (bound 1000 ms)`);
        assert.deepEqual(reasons.length, 1, reasons.join("\n"));
        assert.match(
          reasons[0] ?? "",
          /^HTTP\/2 session from 127\.0\.0\.1:\d+ cut off: no answer to an HTTP\/2 PING within 500 ms$/,
        );
      } finally {
        await server.close();
      }
    });
  }

  test("whole frames and part of the next in the first read, the rest soon after: served, and not cut off while idle", async () => {
    // The sniffed bytes are put back with unshift(): node:http2 must read
    // them before what the socket reads next, or the request is garbled.
    const reasons: string[] = [];
    const server = await listen(reasons);
    try {
      const socket = net.connect(dial(server));
      socket.on("error", () => {});
      let got = Buffer.alloc(0);
      const frames: Array<[type: number, flags: number, stream: number]> = [];
      socket.on("data", (chunk: Buffer) => {
        got = Buffer.concat([got, chunk]);
        while (got.length >= 9 && got.length >= 9 + got.readUIntBE(0, 3)) {
          frames.push([got[3] as number, got[4] as number, got.readUInt32BE(5)]);
          got = got.subarray(9 + got.readUIntBE(0, 3));
        }
      });
      const until = (what: string, done: () => boolean): Promise<void> =>
        waitFor(what, done, 5_000);
      await new Promise((resolve) => socket.once("connect", resolve));
      const headers = h2Frame(1, 0x5, 1, requestHeaders("/example.kv.v1.KV/Get"));
      socket.write(Buffer.concat([PREFACE, h2Frame(4, 0, 0), headers.subarray(0, 5)]));
      // The server's SETTINGS: it has sniffed the first read and made its session.
      await until("the server's SETTINGS", () => frames.some(([t]) => t === 4));
      socket.write(Buffer.concat([headers.subarray(5), h2Frame(4, 0x1, 0)]));
      await until("the answer's HEADERS", () => frames.some(([t, , id]) => t === 1 && id === 1));
      // Idle for a second (past the first PING, unanswered: its timeout is 10 s), then still answered.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      socket.write(h2Frame(6, 0, 0, Buffer.alloc(8)));
      await until("the PING ACK", () => frames.some(([t, f]) => t === 6 && f === 1));
      assert.deepEqual(reasons, []);
      socket.destroy();
    } finally {
      await server.close();
    }
  });

  for (const [broken, what] of [
    [h2Frame(0, 0x1, 3, Buffer.alloc(5)), "DATA on a stream never opened"],
    [h2Frame(1, 0x5, 3, Buffer.from([0x80])), "an HPACK block indexing entry 0"],
  ] as const) {
    test(`${what}, no call open: cut off within about 1.5 s (default PING timings), with the reason`, async () => {
      const reasons: string[] = [];
      const server = await listen(reasons);
      try {
        const socket = await h2Raw(dial(server));
        const closed = closedBefore(socket, 5_000);
        socket.write(broken);
        const ms = await closed;
        // The first PING 500 ms after the session starts, judged 1 s later.
        assert.ok(ms < 1_500 + 2_000, `closed after ${ms.toFixed(0)} ms (bound 1500 ms)`);
        assert.equal(reasons.length, 1, reasons.join("\n"));
        assert.match(
          reasons[0] ?? "",
          /^HTTP\/2 session from 127\.0\.0\.1:\d+ cut off: it broke the HTTP\/2 protocol \(node:http2 answered with GOAWAY and stopped reading\)$/,
        );
      } finally {
        await server.close();
      }
    });
  }
});

describe("the PING watchdog and a peer that reads slowly", () => {
  test("a peer that stops reading while a large response is on its way is not taken for a stopped session", async () => {
    // Its socket is full, so node:http2's PING waits behind the response,
    // queued; the response's stream still has bytes to write, so the
    // watchdog waits for the ACK (timeout 10 s) instead of cutting it off.
    const body = Buffer.alloc(8 * MiB, 1);
    const reasons: string[] = [];
    const server = await PluginHttpServer.listen(
      (_req, res) => res.end(body),
      { network: "unix", path: join(tempDir("h2-slow-"), "p.sock") },
      {
        acceptHttp1: false,
        ping: { intervalMs: 200, timeoutMs: 10_000, stuckMs: 200 },
        onPeerCutOff: (r) => reasons.push(r),
      },
    );
    try {
      const socket = net.connect(dial(server));
      socket.on("error", () => {});
      await new Promise((resolve) => socket.once("connect", resolve));
      let closed = false;
      socket.once("close", () => (closed = true));
      const settings = Buffer.from([0, 4, 0x7f, 0xff, 0xff, 0xff]); // INITIAL_WINDOW_SIZE 2^31-1
      const windowUpdate = Buffer.alloc(4);
      windowUpdate.writeUInt32BE(0x7fffffff - 65_535);
      socket.write(
        Buffer.concat([
          PREFACE,
          h2Frame(4, 0, 0, settings),
          h2Frame(8, 0, 0, windowUpdate),
          h2Frame(1, 0x5, 1, requestHeaders("/example.kv.v1.KV/Get")),
        ]),
      );
      // Not read for 3 s: 15 stuck-check periods.
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      assert.deepEqual(reasons, []);
      assert.equal(closed, false);
      let got = 0;
      socket.on("data", (c: Buffer) => (got += c.length));
      await waitFor("the whole response", () => got > body.length, 10_000);
      assert.deepEqual(reasons, []);
      socket.destroy();
    } finally {
      await server.close();
    }
  });
});

describe("the PING watchdog and closed streams whose bytes are still being written", () => {
  test("responses whose streams have all closed while the socket still writes them, the peer not reading for 3 s: not cut off", async () => {
    // Eight calls of 64 KiB answers on a unix socket, the peer reading
    // nothing: the socket write blocks (about 256 KiB in), node:http2 stops
    // reading, and every stream it has started is closed with no bytes left
    // (measured on Node 20), while the PING waits behind the write. Judged by
    // its open streams' bytes, the session looked stopped; the bytes written
    // since the last ACK tell the blocked write apart.
    const reasons: string[] = [];
    let started = 0;
    let closedStreams = 0;
    const server = await PluginHttpServer.listen(
      (_req, res) => {
        started++;
        res.once("close", () => closedStreams++);
        res.end(Buffer.alloc(64 * 1024, 1));
      },
      { network: "unix", path: join(tempDir("h2-closed-"), "p.sock") },
      {
        acceptHttp1: false,
        ping: { intervalMs: 200, timeoutMs: 10_000, stuckMs: 200 },
        onPeerCutOff: (r) => reasons.push(r),
      },
    );
    try {
      const socket = net.connect(dial(server));
      socket.on("error", () => {});
      await new Promise((resolve) => socket.once("connect", resolve));
      socket.pause();
      let closed = false;
      socket.once("close", () => (closed = true));
      const settings = Buffer.from([0, 4, 0x7f, 0xff, 0xff, 0xff]); // INITIAL_WINDOW_SIZE 2^31-1
      const windowUpdate = Buffer.alloc(4);
      windowUpdate.writeUInt32BE(0x7fffffff - 65_535);
      socket.write(
        Buffer.concat([PREFACE, h2Frame(4, 0, 0, settings), h2Frame(8, 0, 0, windowUpdate)]),
      );
      for (let id = 1; id <= 15; id += 2) {
        socket.write(h2Frame(1, 0x5, id, requestHeaders("/example.kv.v1.KV/Get")));
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      // Not read for 3 s: 15 stuck-check periods.
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      assert.ok(started >= 1 && started < 8, `${started} calls started (the write blocks first)`);
      assert.equal(closedStreams, started, "every stream started has closed");
      assert.deepEqual(reasons, []);
      assert.equal(closed, false);
      let got = 0;
      socket.on("data", (c: Buffer) => (got += c.length));
      socket.resume();
      await waitFor("all eight answers", () => got > 8 * 64 * 1024, 10_000);
      assert.equal(started, 8);
      assert.deepEqual(reasons, []);
      socket.destroy();
    } finally {
      await server.close();
    }
  });
});

describe("the PING watchdog and a peer whose event loop is blocked", () => {
  // A real client process that blocks its event loop for 1.5 s (1.5 stuck
  // checks) with a large response arriving (64 KiB to 4 MiB, Go-sized
  // windows so that the server's socket fills), with a slow server stream
  // open, while idle, and right after each of three 1 MiB responses ended;
  // PINGs every 100 ms after each ACK, so several fall into every block.
  const blocked = (_req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): void => {
    const size = /^\/size\/(\d+)$/.exec(_req.url)?.[1];
    if (size !== undefined) {
      res.end(Buffer.alloc(Number(size), 1));
      return;
    }
    let n = 0;
    const tick = setInterval(() => {
      res.write(Buffer.alloc(1024, 2));
      if (++n === 15) {
        clearInterval(tick);
        res.end();
      }
    }, 200);
    res.once("close", () => clearInterval(tick));
  };
  for (const tls of [false, true]) {
    test(`${tls ? "TLS (node:http2 reads the socket)" : "h2c on a unix socket"}: never cut off, every response whole, the same session throughout`, async () => {
      const cert = generateAutoMtlsCertificate("P-256");
      const reasons: string[] = [];
      const server = await PluginHttpServer.listen(
        blocked as unknown as Parameters<typeof PluginHttpServer.listen>[0],
        tls
          ? { network: "tcp", host: "127.0.0.1", port: 0 }
          : { network: "unix", path: join(tempDir("h2-blocked-"), "p.sock") },
        {
          acceptHttp1: false,
          ...(tls && { tls: { cert: cert.certPem, key: cert.keyPem } }),
          ping: { intervalMs: 100, timeoutMs: 10_000 },
          onPeerCutOff: (r) => reasons.push(r),
        },
      );
      try {
        const { address } = server.bound;
        const config = tls
          ? { url: `https://${address}`, blockMs: 1_500, ca: cert.certPem }
          : { url: "http://localhost", blockMs: 1_500, socketPath: address };
        const child = spawn(
          process.execPath,
          [
            fileURLToPath(new URL("./fixtures/blocking-h2-peer.js", import.meta.url)),
            JSON.stringify(config),
          ],
          { stdio: ["ignore", "pipe", "inherit"] },
        );
        let out = "";
        child.stdout.on("data", (c: Buffer) => (out += c.toString()));
        await new Promise((resolve) => child.once("close", resolve));
        const result = JSON.parse(out) as Record<string, unknown>;
        assert.deepEqual(reasons, []);
        assert.deepEqual(result, {
          small: 16,
          "blocked during 65536 B": 65_536,
          "blocked during 262144 B": 262_144,
          "blocked during 1048576 B": 1_048_576,
          "blocked during 4194304 B": 4_194_304,
          "blocked during a slow stream": 15 * 1024,
          "after blocking idle": 16,
          ...Object.fromEntries([0, 1, 2].map((i) => [`blocked after ${i}`, 1_048_576])),
          last: 16,
          closedEarly: false,
        });
      } finally {
        await server.close();
      }
    });
  }
});

/**
 * Every shape of HTTP/2 listener (http-server.ts), each with fresh
 * credentials where it has TLS: the go-plugin endpoint with AutoMTLS
 * requires the client's certificate, as a go-plugin host presents it.
 * node:http2 reads the socket itself on all of them, so only the PING
 * watchdog ends a session it stopped reading.
 */
const HTTP2_LISTENERS = [
  { name: "plaintext network listener", unix: false, tls: undefined, mtls: false },
  { name: "a launched plugin's h2c socket", unix: true, tls: undefined, mtls: false },
  { name: "TLS network listener", unix: false, tls: "network", mtls: false },
  { name: "go-plugin endpoint with AutoMTLS", unix: true, tls: "autoMtls", mtls: true },
] as const;

type Listener = (typeof HTTP2_LISTENERS)[number];

/**
 * A server of `listener`'s shape whose watchdog pings every `pingMs` and
 * waits `pingMs` for the ACK (or as `ping` says).
 */
async function listenLike(
  listener: Listener,
  pingMs: number,
  reasons: string[],
  ping: PingWatchOptions = { intervalMs: pingMs, timeoutMs: pingMs },
): Promise<{ server: PluginHttpServer; connect: () => Promise<net.Socket> }> {
  const server = generateAutoMtlsCertificate("P-256");
  const client = generateAutoMtlsCertificate("P-256");
  const common = {
    ping,
    onPeerCutOff: (r: string) => reasons.push(r),
  };
  const tls = { cert: server.certPem, key: server.keyPem };
  let http: PluginHttpServer;
  if (listener.tls === "network") {
    // serve()'s TLS network mode: our ALPN router, with the framed protocol beside HTTP.
    http = await PluginHttpServer.listen(
      answer200OrSlow,
      { network: "tcp", host: "127.0.0.1", port: 0 },
      {
        ...common,
        acceptHttp1: true,
        tls,
        framed: FramedServer.detached(routes),
      },
    );
  } else if (listener.tls === "autoMtls") {
    http = await PluginHttpServer.listen(
      answer200OrSlow,
      { network: "unix", path: join(tempDir("h2-mtls-"), "p.sock") },
      { ...common, acceptHttp1: false, tls: { ...tls, clientCa: client.certPem } },
    );
  } else {
    http = await PluginHttpServer.listen(
      answer200OrSlow,
      listener.unix
        ? { network: "unix", path: join(tempDir("h2c-"), "p.sock") }
        : { network: "tcp", host: "127.0.0.1", port: 0 },
      { ...common, acceptHttp1: !listener.unix },
    );
  }
  const connect = async (): Promise<net.Socket> => {
    if (listener.tls === undefined) {
      const socket = net.connect(dial(http));
      await new Promise((resolve) => socket.once("connect", resolve));
      return socket;
    }
    const socket = tlsConnect({
      ...dial(http),
      ALPNProtocols: ["h2"],
      ca: server.certPem,
      servername: "localhost",
      ...(listener.mtls && { cert: client.certPem, key: client.keyPem }),
    });
    await new Promise((resolve, reject) => {
      socket.once("secureConnect", resolve);
      socket.once("error", reject);
    });
    return socket;
  };
  return { server: http, connect };
}

/** `socket` after the client preface and an empty SETTINGS frame; it reads and ignores what it is told. */
function rawPeer(socket: net.Socket): net.Socket {
  socket.on("error", () => {});
  socket.on("data", () => {});
  socket.write(Buffer.concat([PREFACE, h2Frame(4, 0, 0)]));
  return socket;
}

for (const listener of HTTP2_LISTENERS) {
  describe(`the PING watchdog (${listener.name})`, () => {
    for (const [broken, what] of [
      [h2Frame(0, 0x1, 3, Buffer.alloc(5)), "DATA on a stream never opened"],
      [h2Frame(1, 0x5, 3, Buffer.from([0x80])), "an HPACK block indexing entry 0"],
    ] as const) {
      test(`${what} with a call open (node:http2 answers GOAWAY and stops reading): cut off once its PING stays queued, with the reason`, async () => {
        const reasons: string[] = [];
        const { server, connect } = await listenLike(listener, 500, reasons);
        try {
          const socket = rawPeer(await connect());
          // A call whose body never comes: its stream stays open.
          socket.write(h2Frame(1, 0x4, 1, requestHeaders("/example.kv.v1.KV/PutMany")));
          const closed = closedBefore(socket, 5_000);
          socket.write(broken);
          const ms = await closed;
          // The first PING 500 ms after the session starts, judged 500 ms later (pingMs).
          assert.ok(ms < 1_000 + 3_000, `closed after ${ms.toFixed(0)} ms (bound 1000 ms)`);
          assert.equal(reasons.length, 1, reasons.join("\n"));
          assert.match(
            reasons[0] ?? "",
            /^HTTP\/2 session from (127\.0\.0\.1:\d+|a local peer) cut off: it broke the HTTP\/2 protocol \(node:http2 answered with GOAWAY and stopped reading\)$/,
          );
        } finally {
          await server.close();
        }
      });
    }

    test("a peer that answers PINGs, then breaks HTTP/2: cut off within about 1.5 s (default timings), not at the next idle PING 10 s on", async () => {
      // Bytes read since the last ACK bring a PING within 500 ms; after
      // the protocol error it stays queued, and 1 s later the session is cut off.
      const reasons: string[] = [];
      const { server, connect } = await listenLike(listener, 10_000, reasons, {});
      try {
        const socket = await connect();
        socket.on("error", () => {});
        let acked = 0;
        let got = Buffer.alloc(0);
        socket.on("data", (chunk: Buffer) => {
          got = Buffer.concat([got, chunk]);
          while (got.length >= 9 && got.length >= 9 + got.readUIntBE(0, 3)) {
            const length = got.readUIntBE(0, 3);
            if (got[3] === 6 && ((got[4] as number) & 1) === 0) {
              socket.write(h2Frame(6, 0x1, 0, got.subarray(9, 9 + length)));
              acked++;
            }
            got = got.subarray(9 + length);
          }
        });
        socket.write(Buffer.concat([PREFACE, h2Frame(4, 0, 0)]));
        await waitFor("the first PING answered", () => acked === 1, 5_000);
        await new Promise((resolve) => setTimeout(resolve, 300));
        const closed = closedBefore(socket, 6_000);
        socket.write(h2Frame(0, 0x1, 3, Buffer.alloc(5)));
        const ms = await closed;
        assert.ok(ms < 1_500 + 2_000, `closed after ${ms.toFixed(0)} ms (bound 1500 ms)`);
        assert.equal(acked, 1);
        assert.equal(reasons.length, 1, reasons.join("\n"));
        assert.match(
          reasons[0] ?? "",
          /cut off: it broke the HTTP\/2 protocol \(node:http2 answered with GOAWAY and stopped reading\)$/,
        );
      } finally {
        await server.close();
      }
    });

    test("a peer that stops in the middle of a frame (slowloris) is cut off within ping interval + timeout", async () => {
      const reasons: string[] = [];
      const { server, connect } = await listenLike(listener, 500, reasons);
      try {
        const socket = rawPeer(await connect());
        const closed = closedBefore(socket, 5_000);
        socket.write(h2Frame(1, 0x4, 1, requestHeaders("/example.kv.v1.KV/Get")).subarray(0, 5));
        const ms = await closed;
        assert.ok(ms < 1_000 + 3_000, `closed after ${ms.toFixed(0)} ms (bound 1000 ms)`);
        assert.match(reasons.join("\n"), /cut off: no answer to an HTTP\/2 PING within 500 ms$/);
      } finally {
        await server.close();
      }
    });

    test("a healthy client, idle between calls, is never cut off by the pings", async () => {
      const reasons: string[] = [];
      const { server, connect } = await listenLike(listener, 200, reasons);
      try {
        const socket = await connect();
        const session = http2.connect(
          listener.tls === undefined ? "http://localhost" : "https://localhost",
          {
            createConnection: () => socket,
          },
        );
        let pings = 0;
        session.on("ping", () => pings++);
        let closed = false;
        session.once("close", () => (closed = true));
        const get = (): Promise<number> =>
          new Promise((resolve, reject) => {
            const req = session.request({ ":path": "/" });
            req.on("response", (h) => resolve(Number(h[":status"])));
            req.on("error", reject);
            req.resume();
            req.end();
          });
        assert.equal(await get(), 200);
        // Idle through several ping intervals (each answered), then used again.
        await waitFor("five PINGs answered", () => pings >= 5, 10_000);
        assert.equal(await get(), 200);
        assert.equal(closed, false, "the same session answered both calls");
        assert.deepEqual(reasons, []);
        session.destroy();
      } finally {
        await server.close();
      }
    });

    test("a client that says GOAWAY (NO_ERROR) with a call open: the call finishes, the session is not cut off", async () => {
      // node:http2 closes a session whose peer says GOAWAY NO_ERROR
      // (session.closed) and lets its open streams finish; session.ping()
      // on it fails at once without sending anything. Counted as a PING
      // unanswered, that cut the session off when the PING timeout passed,
      // with the call still open.
      const reasons: string[] = [];
      const { server, connect } = await listenLike(listener, 500, reasons);
      try {
        const socket = await connect();
        const session = http2.connect(
          listener.tls === undefined ? "http://localhost" : "https://localhost",
          { createConnection: () => socket },
        );
        session.on("error", () => {});
        const req = session.request({ ":path": "/slow" });
        const body = new Promise<number>((resolve, reject) => {
          let bytes = 0;
          req.on("data", (c: Buffer) => (bytes += c.length));
          req.on("end", () => resolve(bytes));
          req.on("error", reject);
        });
        req.end();
        await new Promise((resolve) => req.once("response", resolve));
        session.close(); // GOAWAY NO_ERROR; the open stream may finish
        assert.equal(await body, 20 * 16, "the whole slow answer (2 s, four PING timeouts)");
        assert.deepEqual(reasons, []);
      } finally {
        await server.close();
      }
    });
  });
}

// --- a plugin that floods the host with stderr -------------------------------

describe("a plugin that writes stderr without end", () => {
  test("the host logs a bounded share, says it drops lines, and keeps serving calls", async () => {
    let stderrBytes = 0;
    let stderrLines = 0;
    const warnings: string[] = [];
    // Counts rather than keeps records: the test must not hold the flood itself.
    const logger = {
      log(record: LogRecord): void {
        if (record.source === "stderr") {
          stderrLines++;
          stderrBytes += record.message.length;
        } else if (record.source === "host" && record.level === "warn") {
          warnings.push(record.message);
        }
      },
    };
    const client = kvClient(fixture("flood-forever"), { logger });
    await client.start();
    try {
      await waitFor("the flood warning", () => warnings.length > 0, 30_000);
      assert.equal(
        warnings[0],
        "the plugin floods its output (over 5,000 lines or 4 MiB per second): dropping its lines until it slows down",
      );
      // Over the next 3 s, at most the sustained budget is logged (4 MiB/s),
      // plus what was left of the bucket when the window opened (under 2 MiB).
      const heap0 = await retainedMiB();
      const bytes0 = stderrBytes;
      const start = performance.now();
      const kv = client.dispense("kv");
      let calls = 0;
      let slowest = 0;
      while (performance.now() - start < 3_000) {
        const t = performance.now();
        await kv.put({ key: "k", value: new Uint8Array([calls++]) });
        slowest = Math.max(slowest, performance.now() - t);
      }
      const logged = (stderrBytes - bytes0) / MiB;
      const seconds = (performance.now() - start) / 1000;
      assert.ok(
        logged <= 4 * seconds + 2,
        `${logged.toFixed(1)} MiB of stderr logged in ${seconds.toFixed(1)} s (budget 4 MiB/s)`,
      );
      const grown = (await retainedMiB()) - heap0;
      assert.ok(grown < 32, `host retained ${grown.toFixed(1)} MiB more during the flood`);
      // Calls go on during the flood (no latency bound: the machine may be busy).
      assert.ok(calls >= 3, `${calls} calls answered in 3 s (slowest ${slowest.toFixed(0)} ms)`);
      assert.ok(stderrLines > 0);
    } finally {
      await client.close();
    }
    // Stopped while over budget: the lines it lost are still counted.
    await waitFor("the dropped-lines count after exit", () =>
      warnings.some((w) => /^dropped [1-9]\d* lines of the plugin's output$/.test(w)),
    );
  });
});
