/**
 * Lean unary calls served from the bare HTTP/2 stream (claimStreams() in
 * src/transport/h2-streams.ts, the adapter's claimStream) against
 * connect-es' handlers behind node:http2's compatibility layer: the same
 * requests go to a PluginHttpServer with the stream path and to one
 * without the lean path, and must get the same status, headers (but
 * `date`), body bytes, trailers and reset codes, in the same HTTP/2 frames
 * (type and flags of every frame of the stream; DATA and RST_STREAM
 * payloads byte for byte). Each case also checks which path ran it: the
 * stream path (no compatibility objects made), a hand-over to connect-es,
 * or connect-es from the start.
 */
import { tapSocket } from "../../../bench/tap-socket.js";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as https from "node:https";
import * as http2 from "node:http2";
import * as net from "node:net";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { after, before, test } from "node:test";
import { gzipSync } from "node:zlib";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import {
  commandRoutes,
  envelope,
  grpcWebTrailerOf,
  message,
  rawExchange,
  request,
  type HandlerSeen,
  type RawExchange,
} from "./command-routes.js";
import { CorsPolicy } from "../../../src/security/cors.js";
import { claimStreams } from "../../../src/transport/h2-streams.js";
import { PluginHttpServer, type ServerTls } from "../../../src/transport/http-server.js";
import { createNodeAdapter, type NodeHandler } from "../../../src/transport/node-adapter.js";
import { makeTestPki } from "../../helpers.js";

const READ_MAX = 1024;
const WRITE_MAX = 4096;
const PATH = "/bench.v1.BenchService/Echo";
const PROTOCOLS = ["connect", "grpc", "grpc-web"] as const;

/** What one server saw. */
interface Seen extends HandlerSeen {
  /** HTTP/2 requests that reached the handler through node's compatibility objects. */
  compat: number;
}

const rejecting: Interceptor = (next) => async (req) => {
  if (req.header.get("x-reject") !== null) {
    throw new ConnectError("rejected by the interceptor", Code.PermissionDenied);
  }
  const res = await next(req);
  if (!res.stream) res.header.set("x-intercepted", "yes");
  return res;
};

interface Server {
  port: number;
  seen: Seen;
  server: PluginHttpServer;
}

/**
 * A PluginHttpServer: `raw` with the lean path and the stream claim,
 * else connect-es' handlers only. `guard` puts CORS (`cors`, default: no
 * origin allowed) and the Host check in front, as serve() does in network
 * mode.
 */
async function start(
  raw: boolean,
  options: { acceptHttp1?: boolean; guard?: boolean; cors?: CorsPolicy; tls?: ServerTls } = {},
): Promise<Server> {
  const seen: Seen = { lean: 0, reference: 0, compat: 0, aborted: [] };
  const adapter = createNodeAdapter({
    routes: commandRoutes(seen, WRITE_MAX),
    interceptors: [rejecting],
    readMaxBytes: READ_MAX,
    writeMaxBytes: WRITE_MAX,
    lean: raw,
  });
  const hosts = options.guard === true ? { allowedHosts: [] } : undefined;
  const handler: NodeHandler =
    options.guard === true ? CorsPolicy.wrap(options.cors, adapter, undefined, hosts) : adapter;
  const counted: NodeHandler = (req, res) => {
    if ("stream" in req) seen.compat++;
    handler(req, res);
  };
  const claim =
    options.guard === true
      ? CorsPolicy.wrapStreams(adapter.claimStream, hosts)
      : adapter.claimStream;
  const server = await PluginHttpServer.listen(
    counted,
    { network: "tcp", host: "127.0.0.1", port: 0 },
    {
      acceptHttp1: options.acceptHttp1 ?? false,
      ...(raw && { streams: claim }),
      ...(options.tls !== undefined && { tls: options.tls }),
    },
  );
  const bound = server.bound;
  assert.equal(bound.network, "tcp");
  return { port: bound.port, seen, server };
}

let rawPath: Server;
let reference: Server;
before(async () => {
  [rawPath, reference] = await Promise.all([start(true), start(false)]);
});
after(async () => {
  await Promise.all([rawPath.server.close(), reference.server.close()]);
});

interface Exchange extends Omit<RawExchange, "rstCode"> {
  /** The server's frames on the request's stream: type/flags, and DATA and RST_STREAM payloads. */
  frames: string[];
}

/** A connection to `port` that records what the server sends. */
function tappedConnection(port: number, received: Buffer[]): Duplex {
  return tapSocket(net.connect(port, "127.0.0.1"), (chunk) => received.push(chunk));
}

/** The frames of stream 1 in the server's bytes. */
function framesOf(bytes: Buffer): string[] {
  const frames: string[] = [];
  for (let at = 0; at + 9 <= bytes.length;) {
    const length = bytes.readUIntBE(at, 3);
    const type = bytes[at + 3] as number;
    const flags = bytes[at + 4] as number;
    const stream = bytes.readUInt32BE(at + 5) & 0x7fffffff;
    const payload = bytes.subarray(at + 9, at + 9 + length);
    // HEADERS carry the date, whose HPACK bytes vary: compared decoded instead.
    if (stream === 1) {
      frames.push(
        type === 0 || type === 3
          ? `${type}/${flags}:${payload.toString("hex")}`
          : `${type}/${flags}`,
      );
    }
    at += 9 + length;
  }
  return frames;
}

/** Sends one HTTP/2 request on a fresh session and collects what comes back. */
async function exchange(
  port: number,
  headers: http2.OutgoingHttpHeaders,
  body: Uint8Array | Uint8Array[],
): Promise<Exchange> {
  const received: Buffer[] = [];
  const session = http2.connect(`http://127.0.0.1:${port}`, {
    createConnection: () => tappedConnection(port, received),
  });
  session.on("error", () => {});
  try {
    // The reset's code is in the frames.
    const { rstCode: _, ...x } = await rawExchange(session, PATH, headers, body);
    // The last frames may still be on their way to the tap's record.
    await new Promise((r) => setTimeout(r, 20));
    return { ...x, frames: framesOf(Buffer.concat(received)) };
  } finally {
    session.close();
  }
}

/**
 * The frames the stream path sends where connect-es (through node's
 * compatibility response) sends `frames`: a response without trailers
 * (Connect, gRPC-web) ends the stream on its last DATA frame, where the
 * compatibility response ends it with an empty DATA frame of its own
 * (unary-wire.ts, sendOnStream); and the body goes in one write, where
 * connect-es writes gRPC-web's two envelopes one by one. Everything else
 * is the same, byte for byte.
 */
function lastDataEnds(frames: string[]): string[] {
  if (frames.at(-1) !== "0/1:") return frames;
  let first = frames.length - 1;
  while (first > 0 && frames[first - 1]?.startsWith("0/0:") === true) first--;
  if (first === frames.length - 1) return frames;
  const body = frames.slice(first, -1).map((f) => f.slice(4));
  return [...frames.slice(0, first), `0/1:${body.join("")}`];
}

/**
 * How the stream-path server served a request: "stream" (no compatibility
 * objects, lean handler), "handed over" (claimed, then given to connect-es
 * through the compatibility layer), "compat" (never claimed).
 */
type Path = "stream" | "handed over" | "compat";

/** Sends the same request to both servers, compares, and checks the path taken. */
async function same(
  headers: http2.OutgoingHttpHeaders,
  body: Uint8Array | Uint8Array[],
  path: Path,
): Promise<Exchange> {
  const compat = rawPath.seen.compat;
  const lean = rawPath.seen.lean;
  const a = await exchange(rawPath.port, headers, body);
  const b = await exchange(reference.port, headers, body);
  assert.deepEqual(a, path === "stream" ? { ...b, frames: lastDataEnds(b.frames) } : b);
  assert.ok(a.frames.length > 0, "frames were recorded");
  const ranLean = rawPath.seen.lean - lean;
  const viaCompat = rawPath.seen.compat - compat;
  if (path === "stream") assert.deepEqual([viaCompat, ranLean], [0, 1], "served from the stream");
  else assert.deepEqual([viaCompat, ranLean], [1, 0], `${path}: through the compatibility layer`);
  return a;
}

for (const protocol of PROTOCOLS) {
  const errorOf = (x: Exchange): { code: string | number; message: string } => {
    if (protocol === "connect") {
      const e = JSON.parse(Buffer.from(x.body, "hex").toString()) as {
        code: string;
        message: string;
      };
      return { code: e.code, message: e.message };
    }
    const trailers = protocol === "grpc" ? x.trailers : grpcWebTrailerOf(x.body);
    return {
      code: Number(trailers?.["grpc-status"]),
      message: decodeURIComponent(String(trailers?.["grpc-message"])),
    };
  };

  test(`${protocol}: success with response headers and trailers, in the same frames`, async () => {
    const x = await same(...request(protocol, "ok"), "stream");
    assert.equal(x.status, 200);
    assert.equal(x.headers["x-answer"], "yes");
    assert.equal(x.headers["x-intercepted"], "yes");
    if (protocol !== "grpc") {
      if (protocol === "connect") assert.equal(x.headers["trailer-x-trailer"], "t");
      else assert.deepEqual(grpcWebTrailerOf(x.body), { "grpc-status": "0", "x-trailer": "t" });
      // HEADERS, then DATA that ends the stream (END_STREAM, flag 1): no
      // empty DATA frame after it, which the client would wake once more for.
      assert.deepEqual(
        x.frames.map((f) => f.slice(0, 3)),
        ["1/4", "0/1"],
      );
    } else {
      assert.deepEqual(x.trailers, { "grpc-status": "0", "x-trailer": "t" });
      assert.deepEqual(
        x.frames.map((f) => f.slice(0, 3)),
        ["1/4", "0/0", "1/5"],
      );
    }
  });

  test(`${protocol}: an echo of an empty message`, async () => {
    await same(...request(protocol, ""), "stream");
  });

  test(`${protocol}: an error with details, metadata, headers and trailers set before it`, async () => {
    const x = await same(...request(protocol, "fail"), "stream");
    assert.deepEqual(errorOf(x), {
      code: protocol === "connect" ? "failed_precondition" : Code.FailedPrecondition,
      message: "it broke: 100% ünicode\nline",
    });
  });

  test(`${protocol}: a plain exception becomes "internal error"`, async () => {
    const x = await same(...request(protocol, "throw"), "stream");
    assert.equal(errorOf(x).message, "internal error");
  });

  test(`${protocol}: the deadline from the timeout header aborts the handler`, async () => {
    const timeout =
      protocol === "connect" ? { "connect-timeout-ms": "50" } : { "grpc-timeout": "50m" };
    const x = await same(...request(protocol, "hang", timeout), "stream");
    assert.deepEqual(errorOf(x), {
      code: protocol === "connect" ? "deadline_exceeded" : Code.DeadlineExceeded,
      message: "the operation timed out",
    });
  });

  test(`${protocol}: a malformed timeout header goes to connect-es`, async () => {
    const timeout =
      protocol === "connect" ? { "connect-timeout-ms": "soon" } : { "grpc-timeout": "5x" };
    const compat = rawPath.seen.compat;
    const x = await exchange(rawPath.port, ...request(protocol, "ok", timeout));
    assert.deepEqual(x, await exchange(reference.port, ...request(protocol, "ok", timeout)));
    assert.equal(rawPath.seen.compat, compat + 1);
    assert.equal(
      errorOf(x).code,
      protocol === "connect" ? "invalid_argument" : Code.InvalidArgument,
    );
  });

  test(`${protocol}: a request over readMaxBytes, whole or in chunks, is handed to connect-es`, async () => {
    const [headers, body] = request(protocol, new Uint8Array(READ_MAX + 10).fill(1));
    for (const [extra, sent] of [
      [{}, body],
      [{ "content-length": String(body.length) }, body],
      [{}, [body.subarray(0, 500), body.subarray(500, 1000), body.subarray(1000)]],
    ] as Array<[http2.OutgoingHttpHeaders, Uint8Array | Uint8Array[]]>) {
      const compat = rawPath.seen.compat;
      const x = await exchange(rawPath.port, { ...headers, ...extra }, sent);
      assert.deepEqual(x, await exchange(reference.port, { ...headers, ...extra }, sent));
      assert.equal(rawPath.seen.compat, compat + 1);
      assert.match(errorOf(x).message, /readMaxBytes/);
    }
  });

  test(`${protocol}: a response over writeMaxBytes gets ResourceExhausted`, async () => {
    const x = await same(...request(protocol, "too-big"), "stream");
    assert.equal(
      errorOf(x).code,
      protocol === "connect" ? "resource_exhausted" : Code.ResourceExhausted,
    );
  });

  test(`${protocol}: an interceptor that rejects`, async () => {
    const compat = rawPath.seen.compat;
    const x = await exchange(rawPath.port, ...request(protocol, "ok", { "x-reject": "1" }));
    const y = await exchange(reference.port, ...request(protocol, "ok", { "x-reject": "1" }));
    assert.deepEqual(x, { ...y, frames: lastDataEnds(y.frames) });
    assert.equal(rawPath.seen.compat, compat, "served from the stream");
    assert.equal(errorOf(x).message, "rejected by the interceptor");
  });

  test(`${protocol}: a compressed response when the client accepts it and the message is large`, async () => {
    const accept = protocol === "connect" ? "accept-encoding" : "grpc-accept-encoding";
    await same(...request(protocol, "big", { [accept]: "gzip" }), "stream");
    await same(...request(protocol, "ok", { [accept]: "br, gzip" }), "stream");
  });

  test(`${protocol}: a compressed request goes to connect-es`, async () => {
    const payload = gzipSync(message("ok"));
    const [headers, body] =
      protocol === "connect"
        ? [{ ...request(protocol, "")[0], "content-encoding": "gzip" }, payload]
        : [{ ...request(protocol, "")[0], "grpc-encoding": "gzip" }, envelope(payload, 1)];
    await same(headers, body, "compat");
  });

  test(`${protocol}: a body that is not the message is handed to connect-es`, async () => {
    const garbage = new Uint8Array([0xff, 0xff, 0xff]);
    const compat = rawPath.seen.compat;
    const headers = request(protocol, "")[0];
    const body = protocol === "connect" ? garbage : envelope(garbage);
    const x = await exchange(rawPath.port, headers, body);
    assert.deepEqual(x, await exchange(reference.port, headers, body));
    assert.equal(rawPath.seen.compat, compat + 1);
  });

  test(`${protocol}: an unknown method`, async () => {
    const [headers, body] = request(protocol, "ok");
    const nope = { ...headers, ":path": "/bench.v1.BenchService/Nope" };
    const compat = rawPath.seen.compat;
    const x = await exchange(rawPath.port, nope, body);
    assert.deepEqual(x, await exchange(reference.port, nope, body));
    assert.equal(rawPath.seen.compat, compat + 1);
    assert.equal(x.status, 404);
  });

  test(`${protocol}: a connection header the handler sets is dropped, as node's compatibility response drops it`, async () => {
    const x = await same(...request(protocol, "connection-header"), "stream");
    assert.equal(x.status, 200);
    assert.equal(x.headers["connection"], undefined);
  });

  test(`${protocol}: a response header node:http2 refuses resets the call on both paths, no crash`, async () => {
    for (const command of ["bad-header", "bad-header-fail"]) {
      const x = await same(...request(protocol, command), "stream");
      assert.equal(x.error, "ERR_HTTP2_STREAM_ERROR", command);
      // RST_STREAM, INTERNAL_ERROR.
      assert.deepEqual(x.frames, ["3/0:00000002"], command);
    }
  });

  test(`${protocol}: a client that cancels aborts the handler's signal with Canceled`, async () => {
    const reasons = [];
    const compat = rawPath.seen.compat;
    for (const server of [rawPath, reference]) {
      const count = server.seen.aborted.length;
      const session = http2.connect(`http://127.0.0.1:${server.port}`);
      const [headers, body] = request(protocol, "hang");
      const started = new Promise<void>((resolve) => (server.seen.started = resolve));
      const req = session.request({ ":method": "POST", ":path": PATH, ...headers });
      req.on("error", () => {});
      req.end(body);
      await started;
      req.close(http2.constants.NGHTTP2_CANCEL);
      while (server.seen.aborted.length === count) await new Promise((r) => setImmediate(r));
      reasons.push(server.seen.aborted[count]);
      session.close();
    }
    assert.deepEqual(reasons[0], reasons[1]);
    assert.equal(reasons[0]?.code, Code.Canceled);
    assert.equal(rawPath.seen.compat, compat, "served from the stream");
  });

  test(`${protocol}: a :authority that makes no URL gets 400 from answerMalformed on both`, async () => {
    const [headers, body] = request(protocol, "ok", { ":authority": "127.0f0.1:80" });
    const x = await same(headers, body, "compat");
    assert.equal(x.status, 400);
    assert.match(Buffer.from(x.body, "hex").toString(), /^malformed request/);
  });
}

test("connect: with another lean call open on its session, the body's DATA frame ends the stream, as alone", async () => {
  const received: Buffer[] = [];
  const port = rawPath.port;
  const session = http2.connect(`http://127.0.0.1:${port}`, {
    createConnection: () => tappedConnection(port, received),
  });
  session.on("error", () => {});
  const call = (
    command: string,
  ): { stream: http2.ClientHttp2Stream; done: Promise<{ status: number; body: string }> } => {
    const [headers, body] = request("connect", command);
    const stream = session.request({ ":method": "POST", ":path": PATH, ...headers });
    const chunks: Buffer[] = [];
    let status = 0;
    stream.on("response", (h) => (status = Number(h[":status"])));
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("error", () => {});
    const done = new Promise<{ status: number; body: string }>((resolve) =>
      stream.on("close", () => resolve({ status, body: Buffer.concat(chunks).toString("hex") })),
    );
    stream.end(body);
    return { stream, done };
  };
  try {
    const started = new Promise<void>((resolve) => (rawPath.seen.started = resolve));
    const held = call("hang");
    await started;
    const lean = rawPath.seen.lean;
    const ok = await call("ok").done;
    assert.equal(rawPath.seen.lean - lean, 1, "served on the lean path");
    assert.equal(ok.status, 200);
    assert.equal(ok.body, "0a03010203", 'the "ok" command\'s answer');
    await new Promise((r) => setTimeout(r, 20));
    // Stream 3 (the second call): HEADERS, then DATA with the body and
    // END_STREAM, not the compatibility response's empty closing frame.
    const bytes = Buffer.concat(received);
    const frames: string[] = [];
    for (let at = 0; at + 9 <= bytes.length; at += 9 + bytes.readUIntBE(at, 3)) {
      if ((bytes.readUInt32BE(at + 5) & 0x7fffffff) !== 3) continue;
      frames.push(`${bytes[at + 3]}/${bytes[at + 4]}/${bytes.readUIntBE(at, 3)}`);
    }
    assert.deepEqual(
      frames.map((f) => f.split("/").slice(0, 2).join("/")),
      ["1/4", "0/1"],
    );
    assert.equal(frames[1], "0/1/5", "the body's DATA frame ends the stream");
    held.stream.close(http2.constants.NGHTTP2_CANCEL);
    await held.done;
  } finally {
    rawPath.seen.started = undefined;
    session.close();
  }
});

test("connect: a stream left open that is no lean call (a host's callback tunnel) leaves a lone call's END_STREAM on its body", async () => {
  const received: Buffer[] = [];
  const port = rawPath.port;
  const session = http2.connect(`http://127.0.0.1:${port}`, {
    createConnection: () => tappedConnection(port, received),
  });
  session.on("error", () => {});
  try {
    // A JSON request whose body never ends: connect-es' handler waits for it, the stream stays open.
    const idle = session.request({
      ":method": "POST",
      ":path": PATH,
      "content-type": "application/json",
    });
    idle.on("error", () => {});
    idle.write("{");
    const closed = new Promise((resolve) => idle.on("close", resolve));
    await new Promise((r) => setTimeout(r, 20));
    const [headers, body] = request("connect", "ok");
    const stream = session.request({ ":method": "POST", ":path": PATH, ...headers });
    stream.resume();
    stream.on("error", () => {});
    const lean = rawPath.seen.lean;
    stream.end(body);
    await new Promise((resolve) => stream.on("close", resolve));
    assert.equal(rawPath.seen.lean - lean, 1, "served on the lean path");
    await new Promise((r) => setTimeout(r, 20));
    // Stream 3 (the lean call): HEADERS, then the body's DATA frame with END_STREAM.
    const bytes = Buffer.concat(received);
    const frames: string[] = [];
    for (let at = 0; at + 9 <= bytes.length; at += 9 + bytes.readUIntBE(at, 3)) {
      if ((bytes.readUInt32BE(at + 5) & 0x7fffffff) !== 3) continue;
      frames.push(`${bytes[at + 3]}/${bytes[at + 4]}`);
    }
    assert.deepEqual(frames, ["1/4", "0/1"]);
    idle.close(http2.constants.NGHTTP2_CANCEL);
    await closed;
  } finally {
    session.close();
  }
});

test("connect: a JSON request goes to connect-es", async () => {
  const body = Buffer.from(JSON.stringify(Buffer.from("ok").toString("base64")));
  const compat = rawPath.seen.compat;
  const x = await exchange(rawPath.port, { "content-type": "application/json" }, body);
  assert.deepEqual(x, await exchange(reference.port, { "content-type": "application/json" }, body));
  assert.equal(rawPath.seen.compat, compat + 1);
  assert.equal(x.status, 200);
});

test("grpc: two messages in a unary request are handed to connect-es", async () => {
  const one = envelope(message("ok"));
  const compat = rawPath.seen.compat;
  const x = await exchange(rawPath.port, request("grpc", "")[0], Buffer.concat([one, one]));
  assert.deepEqual(
    x,
    await exchange(reference.port, request("grpc", "")[0], Buffer.concat([one, one])),
  );
  assert.equal(rawPath.seen.compat, compat + 1);
});

test("behind CORS and the Host check, only requests they pass untouched are served from the stream", async () => {
  const guarded = await start(true, { guard: true });
  try {
    const [headers, body] = request("connect", "ok");
    const ok = await exchange(guarded.port, headers, body);
    assert.equal(ok.status, 200);
    assert.equal(guarded.seen.compat, 0, "served from the stream");
    const evil = await exchange(guarded.port, { ...headers, ":authority": "evil.example" }, body);
    assert.equal(evil.status, 403);
    assert.match(Buffer.from(evil.body, "hex").toString(), /Host "evil.example" refused/);
    const page = await exchange(guarded.port, { ...headers, origin: "https://page.example" }, body);
    assert.equal(page.status, 403);
    const site = await exchange(guarded.port, { ...headers, "sec-fetch-site": "cross-site" }, body);
    assert.equal(site.status, 403);
    assert.equal(guarded.seen.compat, 3, "refused through the compatibility layer");
    assert.deepEqual([guarded.seen.lean, guarded.seen.reference], [1, 0]);
  } finally {
    await guarded.server.close();
  }
});

test("grpc-web from a page on an allowed origin: the lean path answers through the compatibility objects, with CORS' headers, as connect-es", async () => {
  const cors = new CorsPolicy({ allowedOrigins: ["https://page.example"] });
  const [lean, ref] = await Promise.all([
    start(true, { guard: true, cors }),
    start(false, { guard: true, cors }),
  ]);
  const joined = (x: Exchange): Exchange => ({ ...x, frames: lastDataEnds(x.frames) });
  try {
    const [headers, body] = request("grpc-web", "ok", { origin: "https://page.example" });
    const a = await exchange(lean.port, headers, body);
    assert.deepEqual(joined(a), joined(await exchange(ref.port, headers, body)));
    assert.equal(a.headers["access-control-allow-origin"], "https://page.example");
    assert.match(String(a.headers["access-control-expose-headers"]), /Grpc-Status/);
    assert.deepEqual(grpcWebTrailerOf(a.body), { "grpc-status": "0", "x-trailer": "t" });
    assert.deepEqual(
      [lean.seen.compat, lean.seen.lean, lean.seen.reference],
      [1, 1, 0],
      "not claimed from the stream (it has an Origin), then served on the lean path",
    );
    const preflight = {
      ":method": "OPTIONS",
      origin: "https://page.example",
      "access-control-request-method": "POST",
      "access-control-request-headers": "content-type,x-grpc-web",
    };
    const p = await exchange(lean.port, preflight, new Uint8Array(0));
    assert.deepEqual(p, await exchange(ref.port, preflight, new Uint8Array(0)));
    assert.equal(p.status, 204);
    const other = await exchange(lean.port, { ...headers, origin: "https://evil.example" }, body);
    assert.equal(other.status, 403);
    assert.deepEqual([lean.seen.lean, lean.seen.reference], [1, 0], "the refused call ran nothing");
  } finally {
    await Promise.all([lean.server.close(), ref.server.close()]);
  }
});

test("HTTP/1.1 requests still reach the handler: network mode's cleartext port and TLS with allowHTTP1", async () => {
  const pki = makeTestPki("h2-streams-");
  const read = (name: string): Buffer => readFileSync(join(pki, name));
  const [headers, body] = request("connect", "ok");
  const plain = await start(true, { acceptHttp1: true });
  const tls = await start(true, {
    acceptHttp1: true,
    tls: { cert: read("server.crt"), key: read("server.key") },
  });
  try {
    const viaH1 = await fetch(`http://127.0.0.1:${plain.port}${PATH}`, {
      method: "POST",
      headers: headers as Record<string, string>,
      body,
    });
    assert.equal(viaH1.status, 200);
    assert.equal(viaH1.headers.get("trailer-x-trailer"), "t");
    assert.deepEqual(
      [plain.seen.lean, plain.seen.reference],
      [1, 0],
      "HTTP/1.1 unary calls take the lean path too",
    );
    const h2 = await exchange(plain.port, headers, body);
    assert.equal(h2.status, 200);
    assert.deepEqual([plain.seen.lean, plain.seen.compat], [2, 0]);

    const status = await new Promise<number>((resolve, reject) => {
      const req = https.request(
        {
          host: "127.0.0.1",
          port: tls.port,
          path: PATH,
          method: "POST",
          headers,
          ca: read("ca.crt"),
        },
        (res) => {
          res.resume();
          res.once("end", () => resolve(res.statusCode ?? 0));
        },
      );
      req.once("error", reject);
      req.end(body);
    });
    assert.equal(status, 200);
    const session = http2.connect(`https://127.0.0.1:${tls.port}`, { ca: read("ca.crt") });
    try {
      const h2status = await new Promise<number>((resolve, reject) => {
        const req = session.request({ ":method": "POST", ":path": PATH, ...headers });
        req.once("response", (h) => resolve(Number(h[":status"])));
        req.once("error", reject);
        req.resume();
        req.end(body);
      });
      assert.equal(h2status, 200);
    } finally {
      session.close();
    }
    assert.deepEqual([tls.seen.reference, tls.seen.lean, tls.seen.compat], [0, 2, 0]);
  } finally {
    await Promise.all([plain.server.close(), tls.server.close()]);
  }
});

test("claimStreams leaves a server with no request listener alone", () => {
  const server = http2.createServer();
  assert.equal(
    claimStreams(server, () => true),
    false,
  );
  assert.equal(server.listenerCount("stream"), 0);
});

/** Opens a request on `port` that sends `first` and then is reset with `code` (the body never ends). */
async function resetMidBody(
  port: number,
  headers: http2.OutgoingHttpHeaders,
  first: Uint8Array,
  code: number,
): Promise<void> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  try {
    const req = session.request({ ":method": "POST", ":path": PATH, ...headers });
    req.on("error", () => {});
    req.resume();
    await new Promise<void>((resolve) => req.write(first, () => resolve()));
    // The server has the stream and some of its body once its window update or a ping comes back.
    await new Promise<void>((resolve) => session.ping(() => resolve()));
    const closed = new Promise<void>((resolve) => req.once("close", () => resolve()));
    req.close(code);
    await closed;
    await new Promise<void>((resolve) => session.ping(() => resolve()));
  } finally {
    session.close();
  }
}

for (const protocol of PROTOCOLS) {
  test(`${protocol}: a client reset mid-body (CANCEL, NO_ERROR) runs no handler, crashes nothing, and the server keeps serving`, async () => {
    for (const server of [rawPath, reference]) {
      for (const code of [http2.constants.NGHTTP2_CANCEL, http2.constants.NGHTTP2_NO_ERROR]) {
        const before = [server.seen.lean, server.seen.reference];
        const [headers, body] = request(protocol, "ok");
        await resetMidBody(server.port, headers, body.subarray(0, 3), code);
        // Over readMaxBytes, so that the stream path hands it over first, then the reset.
        const [bigHeaders, big] = request(protocol, new Uint8Array(READ_MAX + 10).fill(1));
        await resetMidBody(server.port, bigHeaders, big, code);
        assert.deepEqual([server.seen.lean, server.seen.reference], before, "no handler ran");
      }
    }
    await same(...request(protocol, "ok"), "stream");
  });

  test(`${protocol}: a content-length the body does not match gets the same answer on both`, async () => {
    const [headers, body] = request(protocol, "ok");
    for (const length of [body.length + 5, body.length - 1]) {
      const h = { ...headers, "content-length": String(length) };
      const compat = rawPath.seen.compat;
      const lean = rawPath.seen.lean;
      const a = await exchange(rawPath.port, h, body);
      const b = await exchange(reference.port, h, body);
      assert.deepEqual(a, b, `content-length ${length}`);
      assert.equal(a.error, "ERR_HTTP2_STREAM_ERROR");
      assert.deepEqual([rawPath.seen.compat, rawPath.seen.lean], [compat, lean], "nothing ran");
    }
  });

  test(`${protocol}: GET, HEAD and OPTIONS on a unary path go to connect-es`, async () => {
    const [headers] = request(protocol, "ok");
    for (const method of ["GET", "HEAD", "OPTIONS"]) {
      const x = await same({ ...headers, ":method": method }, new Uint8Array(0), "compat");
      assert.notEqual(x.status, 200, method);
    }
  });

  test(`${protocol}: a session destroyed while the handler runs aborts it with Canceled on both`, async () => {
    const reasons = [];
    for (const server of [rawPath, reference]) {
      const count = server.seen.aborted.length;
      const session = http2.connect(`http://127.0.0.1:${server.port}`);
      session.on("error", () => {});
      const [headers, body] = request(protocol, "hang");
      const started = new Promise<void>((resolve) => (server.seen.started = resolve));
      const req = session.request({ ":method": "POST", ":path": PATH, ...headers });
      req.on("error", () => {});
      req.end(body);
      await started;
      session.destroy();
      while (server.seen.aborted.length === count) await new Promise((r) => setImmediate(r));
      reasons.push(server.seen.aborted[count]?.code);
    }
    // The wording differs (the lean path's own, connect-es' AbortError), as before the stream path.
    assert.deepEqual(reasons, [Code.Canceled, Code.Canceled]);
    await same(...request(protocol, "ok"), "stream");
  });
}

test("claimStreams: a second request listener hears unclaimed streams only, as the first does", async () => {
  const server = http2.createServer((_req, res) => res.end("first"));
  const heard: string[] = [];
  assert.equal(
    claimStreams(server, (stream, headers) => {
      if (headers[":path"] !== "/mine") return false;
      stream.respond({ ":status": 200 });
      stream.end("claimed");
      return true;
    }),
    true,
  );
  server.on("request", (req: http2.Http2ServerRequest) => heard.push(req.url));
  assert.equal(server.listenerCount("stream"), 1);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  const session = http2.connect(`http://127.0.0.1:${port}`);
  try {
    const get = (path: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const req = session.request({ ":path": path });
        const chunks: Buffer[] = [];
        req.on("data", (c: Buffer) => chunks.push(c));
        req.once("end", () => resolve(Buffer.concat(chunks).toString()));
        req.once("error", reject);
        req.end();
      });
    assert.equal(await get("/mine"), "claimed");
    assert.equal(await get("/other"), "first");
    assert.deepEqual(heard, ["/other"]);
  } finally {
    session.close();
    await new Promise((resolve) => server.close(resolve));
  }
});

test("claimStreams leaves a server with a stream listener of its own alone", () => {
  const server = http2.createServer(() => {});
  server.on("stream", () => {});
  assert.equal(
    claimStreams(server, () => true),
    false,
  );
  assert.equal(server.listenerCount("stream"), 2);
});

for (const protocol of PROTOCOLS) {
  test(`${protocol}: a client that resets, or goes away, while the response waits for its window crashes nothing`, async () => {
    for (const server of [rawPath, reference]) {
      for (const how of ["reset", "destroy"] as const) {
        // A 100-byte window: the 2000-byte answer waits in the server's stream.
        const session = http2.connect(`http://127.0.0.1:${server.port}`, {
          settings: { initialWindowSize: 100 },
        });
        session.on("error", () => {});
        const [headers, body] = request(protocol, "big");
        const req = session.request({ ":method": "POST", ":path": PATH, ...headers });
        req.on("error", () => {});
        const closed = new Promise<void>((resolve) => req.once("close", () => resolve()));
        req.once("response", () => {
          if (how === "reset") req.close(http2.constants.NGHTTP2_CANCEL);
          else session.destroy();
        });
        req.end(body);
        await closed;
        session.close();
      }
    }
    await same(...request(protocol, "ok"), "stream");
  });
}
