import assert from "node:assert/strict";
import * as http2 from "node:http2";
import * as net from "node:net";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { Code, ConnectError, createClient, type ConnectRouter } from "@connectrpc/connect";
import { serve } from "../../../src/plugin.js";
import {
  createH2Transport,
  createSocketTransport,
} from "../../../src/transport/client-transport.js";
import { closeWhenIdle } from "../../../src/transport/h2-idle.js";
import { H2Session } from "../../../src/transport/h2-session.js";
import { createNodeAdapter } from "../../../src/transport/node-adapter.js";
import { Bench } from "../../../bench/service.js";
import { GRPCBroker } from "../../../src/gen/plugin/grpc_broker_pb.js";
import { neverSent } from "../../../src/resilience/retry.js";
import { kvPlugin } from "../../../examples/kv/definition.js";
import { waitFor } from "../../helpers.js";

const routes = (router: ConnectRouter): void => {
  router.service(Bench, { echo: (req) => req, async *stream() {} });
};

async function listen(server: http2.Http2Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

for (const protocol of ["connect", "grpc"] as const) {
  test(`${protocol}: 1,500 calls on one HTTP/2 session, which the server keeps (no reset of finished streams)`, async () => {
    const server = http2.createServer(createNodeAdapter({ routes }));
    let sessions = 0;
    let invalid = 0;
    server.on("session", (s) => {
      sessions++;
      s.on("frameError", () => invalid++);
    });
    const t = createH2Transport(await listen(server), {}, { protocol });
    try {
      const client = createClient(Bench, t.transport);
      // Node ends a session after 1,000 invalid frames (maxSessionInvalidFrames).
      for (let i = 0; i < 1_500; i++) {
        const { value } = await client.echo({ value: new Uint8Array([i & 0xff]) });
        assert.deepEqual(value, new Uint8Array([i & 0xff]));
      }
      assert.equal(sessions, 1);
      assert.equal(invalid, 0);
      assert.equal(t.isBroken(), false);
    } finally {
      t.close();
      server.close();
    }
  });
}

test("a server session without streams is closed after its idle time; a client that comes back reconnects", async () => {
  const server = http2.createServer(createNodeAdapter({ routes }));
  const closed: number[] = [];
  server.on("session", (s) => {
    closeWhenIdle(s, 300);
    const opened = Date.now();
    s.once("close", () => closed.push(Date.now() - opened));
  });
  const url = await listen(server);
  // A silent client: connects and never opens a stream.
  const silent = http2.connect(url);
  silent.on("error", () => {});
  await new Promise<void>((resolve) => silent.once("close", () => resolve()));
  assert.equal(closed.length, 1);
  assert.ok((closed[0] ?? 0) >= 250, `closed after ${closed[0]} ms`);
  // Our client after its session was closed for idleness: a new session, and not "broken".
  const t = createH2Transport(url, {}, { protocol: "connect" });
  try {
    const client = createClient(Bench, t.transport);
    await client.echo({ value: new Uint8Array(1) });
    await new Promise<void>((resolve) => {
      const poll = (): void => (closed.length === 2 ? resolve() : void setTimeout(poll, 20));
      poll();
    });
    assert.equal(t.isBroken(), false, "a GOAWAY for idleness is not a broken connection");
    await client.echo({ value: new Uint8Array(1) });
  } finally {
    t.close();
    server.close();
  }
});

test("gRPC-web over HTTP/2 to an unknown method keeps the CORS headers on its trailers-only answer", async () => {
  const origin = "http://127.0.0.1:5173";
  const handle = await serve(kvPlugin(), {
    listen: "127.0.0.1:0",
    exitProcess: false,
    cors: { allowedOrigins: [origin] },
  });
  const session = http2.connect(handle.url);
  try {
    const headers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
      const stream = session.request({
        ":method": "POST",
        ":path": "/kv.v1.KV/NoSuchMethod",
        "content-type": "application/grpc-web+proto",
        origin,
      });
      stream.once("response", resolve);
      stream.once("error", reject);
      stream.end(Buffer.alloc(5));
      stream.resume();
    });
    assert.equal(headers["grpc-status"], "12");
    assert.equal(headers["access-control-allow-origin"], origin);
    assert.match(String(headers["access-control-expose-headers"]), /grpc-status/i);
  } finally {
    session.destroy();
    await handle.shutdown();
  }
});

/** A raw server whose sessions close after `idleMs` without streams; each session's open set and close time. */
async function idleServer(
  idleMs: number,
  handler: (stream: http2.ServerHttp2Stream) => void,
): Promise<{
  url: string;
  server: http2.Http2Server;
  sessions: { open: ReadonlySet<http2.ServerHttp2Stream>; closedAt?: number }[];
}> {
  const server = http2.createServer();
  const sessions: { open: ReadonlySet<http2.ServerHttp2Stream>; closedAt?: number }[] = [];
  server.on("session", (s) => {
    const entry: (typeof sessions)[number] = { open: closeWhenIdle(s, idleMs) };
    sessions.push(entry);
    s.once("close", () => (entry.closedAt = Date.now()));
  });
  server.on("stream", handler);
  return { url: await listen(server), server, sessions };
}

test("idle close: never while a stream is open (held 4 idle periods), then idleMs after it ends; the stream set empties", async () => {
  let finish: (() => void) | undefined;
  const { url, server, sessions } = await idleServer(200, (stream) => {
    stream.respond({ ":status": 200 });
    finish = () => stream.end("done");
  });
  const client = http2.connect(url);
  client.on("error", () => {});
  try {
    const req = client.request({ ":path": "/" });
    req.end();
    req.resume();
    await new Promise((resolve) => req.once("response", resolve));
    await new Promise((resolve) => setTimeout(resolve, 800));
    assert.equal(sessions[0]?.closedAt, undefined, "closed while a stream was open");
    assert.equal(sessions[0]?.open.size, 1);
    const ended = Date.now();
    finish?.();
    await new Promise((resolve) => client.once("close", resolve));
    const after = (sessions[0]?.closedAt ?? 0) - ended;
    assert.ok(after >= 190, `closed ${after} ms after the stream ended (idle 200 ms)`);
    assert.equal(sessions[0]?.open.size, 0);
  } finally {
    client.destroy();
    server.close();
  }
});

for (const how of [
  "a client RST_STREAM",
  "a server RST_STREAM",
  "the session destroyed",
] as const) {
  test(`idle close: a stream ended by ${how} leaves the stream set empty, and the session closes once idle`, async () => {
    const streams: http2.ServerHttp2Stream[] = [];
    const { url, server, sessions } = await idleServer(150, (stream) => {
      streams.push(stream);
      stream.on("error", () => {});
      stream.respond({ ":status": 200 });
      stream.write("part"); // never ended by the handler
    });
    const client = http2.connect(url);
    client.on("error", () => {});
    try {
      const req = client.request({ ":path": "/" });
      req.on("error", () => {});
      req.end();
      await new Promise((resolve) => req.once("data", resolve));
      assert.equal(sessions[0]?.open.size, 1);
      if (how === "a client RST_STREAM") req.close(http2.constants.NGHTTP2_CANCEL);
      else if (how === "a server RST_STREAM")
        streams[0]?.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      else client.destroy();
      await new Promise<void>((resolve) => {
        const poll = (): void =>
          sessions[0]?.closedAt !== undefined ? resolve() : void setTimeout(poll, 20);
        poll();
      });
      assert.equal(sessions[0]?.open.size, 0);
    } finally {
      client.destroy();
      server.close();
    }
  });
}

test("H2Session.request(headers, onClose): one 'close' listener per stream runs the session's count and onClose (with the stream as this)", async () => {
  const server = http2.createServer((_req, res) => res.end("ok"));
  const serverSessions: http2.Http2Session[] = [];
  let serverClosed = 0;
  server.on("session", (s) => {
    serverSessions.push(s);
    s.once("close", () => serverClosed++);
  });
  const session = new H2Session(await listen(server), { idleTimeoutMs: 200 });
  try {
    const closedThis: unknown[] = [];
    const onClose = function (this: http2.ClientHttp2Stream): void {
      closedThis.push(this);
    };
    const other = function (this: http2.ClientHttp2Stream): void {
      closedThis.push("other");
    };
    const run = async (listener?: (this: http2.ClientHttp2Stream) => void): Promise<void> => {
      const stream = session.request({ ":path": "/" }, listener);
      assert.equal(stream.listenerCount("close"), 1);
      stream.resume();
      stream.end();
      await new Promise((r) => stream.once("close", r));
      if (listener === onClose) assert.equal(closedThis.at(-1), stream);
    };
    await run(onClose);
    await run(onClose);
    await run(other);
    await run(undefined);
    await run(onClose);
    assert.equal(closedThis.length, 4);
    assert.deepEqual(
      closedThis.map((x) => (x === "other" ? x : "stream")),
      ["stream", "stream", "other", "stream"],
    );
    // Every close was counted: the session, without streams, closes once idle.
    await waitFor("the idle session closed", () => serverClosed === 1);
    assert.equal(serverSessions.length, 1);
  } finally {
    session.close();
    server.close();
  }
});

/**
 * A hand-made HTTP/2 peer on a real socket (node:http2's server cannot send
 * GOAWAY with last-stream-id 0: it takes 0 for "the last stream processed"):
 * SETTINGS, then GOAWAY(NO_ERROR, last-stream-id 0) at once (`at: "connect"`)
 * or when the first HEADERS arrive (`at: "headers"`), refusing every stream.
 */
async function goawayPeer(at: "connect" | "headers"): Promise<net.Server> {
  const frame = (type: number, flags: number, payload = Buffer.alloc(0)): Buffer => {
    const head = Buffer.alloc(9);
    head.writeUIntBE(payload.length, 0, 3);
    head[3] = type;
    head[4] = flags;
    return Buffer.concat([head, payload]);
  };
  const goaway = frame(7, 0, Buffer.alloc(8));
  const server = net.createServer((socket) => {
    socket.on("error", () => {});
    socket.write(frame(4, 0));
    if (at === "connect") socket.write(goaway);
    let buf = Buffer.alloc(0);
    let preface = true;
    socket.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (preface) {
        if (buf.length < 24) return;
        buf = buf.subarray(24);
        preface = false;
      }
      while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
        const [type, flags] = [buf[3] as number, buf[4] as number];
        buf = buf.subarray(9 + buf.readUIntBE(0, 3));
        if (type === 4 && (flags & 1) === 0) socket.write(frame(4, 1));
        if (type === 1 && at === "headers") socket.write(goaway);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

test("GOAWAY with last-stream-id 0 fails every call at once with Unavailable, as a refused stream a cluster may retry (lean unary and server streams, connect-es bidi)", async () => {
  for (const at of ["connect", "headers"] as const) {
    const peer = await goawayPeer(at);
    const url = `http://127.0.0.1:${(peer.address() as AddressInfo).port}`;
    try {
      for (const protocol of ["connect", "grpc"] as const) {
        const t = createH2Transport(url, {}, { protocol });
        const one = <T>(m: T) =>
          (async function* () {
            yield m;
          })();
        const drain = async (res: Promise<{ message: AsyncIterable<unknown> }>): Promise<void> => {
          for await (const _ of (await res).message) {
            // none comes
          }
        };
        try {
          for (const call of [
            () => t.transport.unary(Bench.method.echo, undefined, 30_000, undefined, {}),
            () =>
              drain(t.transport.stream(Bench.method.stream, undefined, 30_000, undefined, one({}))),
            () =>
              drain(
                t.transport.stream(
                  GRPCBroker.method.startStream,
                  undefined,
                  30_000,
                  undefined,
                  one({}),
                ),
              ),
          ]) {
            const started = performance.now();
            await assert.rejects(call(), (e: unknown) => {
              assert.ok(e instanceof ConnectError, String(e));
              assert.equal(Code[e.code], "Unavailable", e.message);
              assert.equal(
                e.rawMessage,
                "http/2 stream closed with error code REFUSED_STREAM (0x7)",
              );
              assert.equal(neverSent(e), true, "never sent: safe to retry");
              return true;
            });
            // Well before the 30 s deadline.
            assert.ok(performance.now() - started < 5_000, `${at}, ${protocol}`);
          }
        } finally {
          t.close();
        }
      }
    } finally {
      peer.close();
    }
  }
});

test("a cleartext connection closed before any HTTP/2 frame: a URL is told of https://, a subprocess's socket (no URL) is not", async () => {
  // A server that accepts and closes at once, as a TLS port does to
  // cleartext bytes, or a plugin that died as it accepted.
  const server = net.createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const failure = async (transport: {
    transport: Parameters<typeof createClient>[1];
    close(): void;
  }): Promise<string> => {
    try {
      await createClient(Bench, transport.transport).echo({}, { timeoutMs: 20_000 });
      return "answered";
    } catch (e) {
      const error = ConnectError.from(e);
      return `${Code[error.code]}: ${error.rawMessage}`;
    } finally {
      transport.close();
    }
  };
  try {
    assert.equal(
      await failure(createH2Transport(`http://${address}`, {}, {})),
      "Unavailable: the plugin closed the connection before it sent any HTTP/2 frame (in cleartext: if the plugin serves TLS, its URL is https://)",
    );
    assert.equal(
      await failure(createSocketTransport({ network: "tcp", address })),
      "Unavailable: the plugin closed the connection before it sent any HTTP/2 frame",
    );
  } finally {
    server.close();
  }
});
