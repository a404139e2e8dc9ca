/**
 * The lean unary server path (src/transport/unary-handler.ts) against
 * connect-es' handlers: the same raw HTTP/2 requests go to a server with
 * the lean path and to one without, and must get the same status, headers
 * (but `date`), body bytes and trailers. Each case also checks which path
 * ran the handler, so a case that silently fell back to connect-es on both
 * sides cannot pass as a lean one.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { gzipSync } from "node:zlib";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import {
  commandRoutes,
  envelope,
  exchange as rawExchange,
  message,
  grpcWebTrailerOf,
  request,
  type Exchange,
  type HandlerSeen,
  type Protocol,
} from "./command-routes.js";
import { createNodeAdapter } from "../../../src/transport/node-adapter.js";
import { CALL_ABORT } from "../../../src/transport/lazy-abort.js";

const READ_MAX = 1024;
const WRITE_MAX = 4096;
const PATH = "/bench.v1.BenchService/Echo";
const PROTOCOLS = ["connect", "grpc", "grpc-web"] as const;

/** What one server's handler saw. */
interface Seen extends HandlerSeen {
  /** Calls the interceptor rejected, by the path they were on. */
  rejected: { lean: number; reference: number };
}

const rejecting =
  (seen: Seen): Interceptor =>
  (next) =>
  async (req) => {
    if (req.header.get("x-reject") !== null) {
      if (CALL_ABORT in req) seen.rejected.lean++;
      else seen.rejected.reference++;
      throw new ConnectError("rejected by the interceptor", Code.PermissionDenied);
    }
    const res = await next(req);
    if (!res.stream) res.header.set("x-intercepted", "yes");
    return res;
  };

interface Server {
  url: string;
  seen: Seen;
  server: http2.Http2Server;
}

async function start(lean: boolean, intercepted = true): Promise<Server> {
  const seen: Seen = { lean: 0, reference: 0, aborted: [], rejected: { lean: 0, reference: 0 } };
  const server = http2.createServer(
    createNodeAdapter({
      routes: commandRoutes(seen, WRITE_MAX),
      interceptors: intercepted ? [rejecting(seen)] : [],
      readMaxBytes: READ_MAX,
      writeMaxBytes: WRITE_MAX,
      lean,
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
}

let withLean: Server;
let without: Server;
/** The same two without interceptors (no chain around the handler). */
let bareLean: Server;
let bareWithout: Server;
before(async () => {
  [withLean, without, bareLean, bareWithout] = await Promise.all([
    start(true),
    start(false),
    start(true, false),
    start(false, false),
  ]);
});
after(async () => {
  for (const s of [withLean, without, bareLean, bareWithout]) {
    s.server.close();
    await new Promise<void>((resolve) => s.server.once("close", resolve));
  }
});

/** One raw HTTP/2 request to PATH (command-routes.ts). */
const exchange = (
  url: string,
  headers: http2.OutgoingHttpHeaders,
  body: Uint8Array,
): Promise<Exchange> => rawExchange(url, PATH, headers, body);

/**
 * Sends the same request to both servers and compares; `lean` says whether
 * the lean server's handler must have run on its lean path (true), on
 * connect-es' (false), or not at all (undefined).
 */
async function same(
  headers: http2.OutgoingHttpHeaders,
  body: Uint8Array,
  lean: boolean | undefined,
  bare = false,
): Promise<Exchange> {
  const [leanOne, reference] = bare ? [bareLean, bareWithout] : [withLean, without];
  const before = { ...leanOne.seen };
  const a = await exchange(leanOne.url, headers, body);
  const b = await exchange(reference.url, headers, body);
  assert.deepEqual(a, b);
  const ranLean = leanOne.seen.lean - before.lean;
  const ranReference = leanOne.seen.reference - before.reference;
  if (lean === true) assert.deepEqual([ranLean, ranReference], [1, 0], "the lean path ran it");
  if (lean === false) assert.deepEqual([ranLean, ranReference], [0, 1], "connect-es ran it");
  if (lean === undefined) assert.deepEqual([ranLean, ranReference], [0, 0], "no handler ran");
  return a;
}

/** A gRPC answer's trailers, or a gRPC-web answer's trailer envelope. */
const trailersOf = (protocol: Protocol, x: Exchange): Record<string, unknown> | undefined =>
  protocol === "grpc-web" ? grpcWebTrailerOf(x.body) : x.trailers;

for (const protocol of PROTOCOLS) {
  const errorOf = (x: Exchange): { code: string | number; message: string } => {
    if (protocol === "connect") {
      const e = JSON.parse(Buffer.from(x.body, "hex").toString()) as {
        code: string;
        message: string;
      };
      return { code: e.code, message: e.message };
    }
    const trailers = trailersOf(protocol, x);
    return {
      code: Number(trailers?.["grpc-status"]),
      message: decodeURIComponent(String(trailers?.["grpc-message"])),
    };
  };

  test(`${protocol}: success with response headers and trailers`, async () => {
    const x = await same(...request(protocol, "ok"), true);
    assert.equal(x.status, 200);
    assert.equal(x.headers["x-answer"], "yes");
    assert.equal(x.headers["x-intercepted"], "yes");
    if (protocol === "connect") assert.equal(x.headers["trailer-x-trailer"], "t");
    else assert.deepEqual(trailersOf(protocol, x), { "grpc-status": "0", "x-trailer": "t" });
  });

  test(`${protocol}: set-cookie twice in headers and trailers: both values, as connect-es sends them`, async () => {
    const x = await same(...request(protocol, "cookies"), true);
    assert.deepEqual(x.headers["set-cookie"], ["a=1", "b=2"]);
    // Two `trailer-set-cookie` fields, which node's client joins (only set-cookie stays a list).
    if (protocol === "connect") assert.equal(x.headers["trailer-set-cookie"], "c=3, d=4");
    else assert.deepEqual(trailersOf(protocol, x)?.["set-cookie"], ["c=3", "d=4"]);
  });

  test(`${protocol}: the handler reads the same request headers on both paths`, async () => {
    const x = await same(
      ...request(protocol, "request-headers", {
        "x-custom": "a value",
        cookie: ["a=1", "b=2"],
        "x-many": ["1", "2"],
      }),
      true,
    );
    let body = Buffer.from(x.body, "hex");
    // gRPC-web's trailer envelope follows the message's.
    if (protocol !== "connect") body = body.subarray(0, 5 + body.readUInt32BE(1));
    // The message's bytes field holds the JSON: skip the gRPC envelope and the field's tag and length.
    const json = body.subarray(body.indexOf(0x7b)).toString();
    const read = JSON.parse(json) as { isHeaders: boolean; get: string; entries: string[][] };
    assert.equal(read.isHeaders, true);
    assert.equal(read.get, "a value");
    assert.deepEqual(
      read.entries.find(([k]) => k === "x-many"),
      ["x-many", "1, 2"],
    );
  });

  test(`${protocol}: an echo of an empty message`, async () => {
    await same(...request(protocol, ""), true);
  });

  test(`${protocol}: an error with details, metadata, headers and trailers set before it`, async () => {
    const x = await same(...request(protocol, "fail"), true);
    assert.deepEqual(errorOf(x), {
      code: protocol === "connect" ? "failed_precondition" : Code.FailedPrecondition,
      message: "it broke: 100% ünicode\nline",
    });
    if (protocol !== "connect") assert.ok(trailersOf(protocol, x)?.["grpc-status-details-bin"]);
  });

  test(`${protocol}: a plain exception becomes "internal error"`, async () => {
    const x = await same(...request(protocol, "throw"), true);
    assert.equal(errorOf(x).message, "internal error");
  });

  test(`${protocol}: the deadline from the timeout header aborts the handler`, async () => {
    const timeout =
      protocol === "connect" ? { "connect-timeout-ms": "50" } : { "grpc-timeout": "50m" };
    const x = await same(...request(protocol, "slow", timeout), true);
    assert.deepEqual(errorOf(x), {
      code: protocol === "connect" ? "deadline_exceeded" : Code.DeadlineExceeded,
      message: "the operation timed out",
    });
  });

  test(`${protocol}: a malformed timeout header is connect-es' to answer`, async () => {
    const timeout =
      protocol === "connect" ? { "connect-timeout-ms": "soon" } : { "grpc-timeout": "5x" };
    const x = await same(...request(protocol, "ok", timeout), undefined);
    assert.equal(
      errorOf(x).code,
      protocol === "connect" ? "invalid_argument" : Code.InvalidArgument,
    );
  });

  test(`${protocol}: a request over readMaxBytes gets ResourceExhausted`, async () => {
    const x = await same(...request(protocol, new Uint8Array(READ_MAX + 10).fill(1)), undefined);
    assert.equal(
      errorOf(x).code,
      protocol === "connect" ? "resource_exhausted" : Code.ResourceExhausted,
    );
  });

  test(`${protocol}: a message of exactly readMaxBytes runs on the lean path, one byte more is refused`, async () => {
    // BytesValue: tag, 2-byte length, value.
    const atLimit = new Uint8Array(READ_MAX - 3).fill(1);
    assert.equal(message(atLimit).length, READ_MAX);
    const x = await same(...request(protocol, atLimit), true);
    assert.equal(x.status, 200);
    const over = await same(...request(protocol, new Uint8Array(READ_MAX - 2).fill(1)), undefined);
    assert.match(errorOf(over).message, /larger than configured readMaxBytes 1024/);
  });

  test(`${protocol}: a request over readMaxBytes in many chunks, without a length`, async () => {
    const [headers, body] = request(protocol, new Uint8Array(READ_MAX * 3).fill(1));
    const x = await same(headers, body, undefined);
    assert.match(errorOf(x).message, /readMaxBytes/);
  });

  test(`${protocol}: a response over writeMaxBytes gets ResourceExhausted`, async () => {
    const x = await same(...request(protocol, "too-big"), true);
    assert.equal(
      errorOf(x).code,
      protocol === "connect" ? "resource_exhausted" : Code.ResourceExhausted,
    );
  });

  test(`${protocol}: an interceptor that rejects`, async () => {
    const rejected = { ...withLean.seen.rejected };
    const x = await same(...request(protocol, "ok", { "x-reject": "1" }), undefined);
    assert.deepEqual(withLean.seen.rejected, { ...rejected, lean: rejected.lean + 1 });
    assert.equal(errorOf(x).message, "rejected by the interceptor");
  });

  test(`${protocol}: a compressed response when the client accepts it and the message is large`, async () => {
    const accept = protocol === "connect" ? "accept-encoding" : "grpc-accept-encoding";
    const big = await same(...request(protocol, "big", { [accept]: "gzip" }), true);
    if (protocol === "connect") assert.equal(big.headers["content-encoding"], "gzip");
    else assert.equal(big.body.slice(0, 2), "01");
    // Small messages are not compressed (compressMinBytes, 1 KiB).
    await same(...request(protocol, "ok", { [accept]: "br, gzip" }), true);
  });

  test(`${protocol}: each call's accepted encodings choose its response's, one after another`, async () => {
    const accept = protocol === "connect" ? "accept-encoding" : "grpc-accept-encoding";
    const encodingOf = (x: Exchange): unknown =>
      protocol === "connect" ? x.headers["content-encoding"] : x.headers["grpc-encoding"];
    // The lean path keeps the last value's answer: a change must not reuse it.
    for (const [value, want] of [
      ["br", "br"],
      ["br", "br"],
      ["gzip", "gzip"],
      ["identity, gzip", "gzip"],
      ["deflate", undefined],
      ["br, gzip", "br"],
    ] as const) {
      const x = await same(...request(protocol, "big", { [accept]: value }), true);
      assert.equal(encodingOf(x), want, value);
    }
    const none = await same(...request(protocol, "big"), true);
    assert.equal(encodingOf(none), undefined);
  });

  test(`${protocol}: a compressed request is connect-es' to answer`, async () => {
    const payload = gzipSync(message("ok"));
    const [headers, body] =
      protocol === "connect"
        ? [{ ...request(protocol, "")[0], "content-encoding": "gzip" }, payload]
        : [{ ...request(protocol, "")[0], "grpc-encoding": "gzip" }, envelope(payload, 1)];
    const x = await same(headers, body, false);
    assert.equal(x.status, 200);
  });

  test(`${protocol}: a body that is not the message is connect-es' to answer`, async () => {
    const garbage = new Uint8Array([0xff, 0xff, 0xff]);
    const body = protocol === "connect" ? garbage : envelope(garbage);
    await same(request(protocol, "")[0], body, undefined);
  });

  test(`${protocol}: the wrong content type`, async () => {
    const x = await same({ "content-type": "text/plain" }, message("ok"), undefined);
    assert.equal(x.status, 415);
  });

  test(`${protocol}: an unknown method`, async () => {
    const [headers, body] = request(protocol, "ok");
    const a = await exchange(
      withLean.url,
      { ...headers, ":path": "/bench.v1.BenchService/Nope" },
      body,
    );
    const b = await exchange(
      without.url,
      { ...headers, ":path": "/bench.v1.BenchService/Nope" },
      body,
    );
    assert.deepEqual(a, b);
    assert.equal(a.status, protocol === "connect" ? 404 : 404);
  });

  test(`${protocol}: a response header node:http2 refuses resets the call on both paths, no crash`, async () => {
    for (const command of ["bad-header", "bad-header-fail"]) {
      const [headers, body] = request(protocol, command);
      const outcome = (url: string): Promise<unknown> =>
        exchange(url, headers, body).catch((e: NodeJS.ErrnoException) => ({ error: e.code }));
      const lean = withLean.seen.lean;
      const a = await outcome(withLean.url);
      const b = await outcome(without.url);
      assert.deepEqual(a, b, command);
      assert.deepEqual(a, { error: "ERR_HTTP2_STREAM_ERROR" }, command);
      assert.equal(withLean.seen.lean, lean + 1, "the lean path ran it");
    }
  });

  test(`${protocol}: a client that cancels aborts the handler's signal with Canceled`, async () => {
    const reasons = [];
    const lean = withLean.seen.lean;
    for (const server of [withLean, without]) {
      const count = server.seen.aborted.length;
      const session = http2.connect(server.url);
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
    assert.equal(withLean.seen.lean, lean + 1, "the lean path ran it");
  });
}

for (const protocol of PROTOCOLS) {
  // Without interceptors the lean path runs the handler with no
  // interceptor chain (invoke.ts): the wire must not tell.
  test(`${protocol}, no interceptors: headers and trailers set by the handler reach the wire`, async () => {
    const x = await same(...request(protocol, "ok"), true, true);
    assert.equal(x.headers["x-answer"], "yes");
    assert.equal(x.headers["x-many"], "1, 2");
    if (protocol === "connect") assert.equal(x.headers["trailer-x-trailer"], "t");
    else assert.deepEqual(trailersOf(protocol, x), { "grpc-status": "0", "x-trailer": "t" });
  });

  test(`${protocol}, no interceptors: response headers are Headers`, async () => {
    const x = await same(...request(protocol, "header-kind"), true, true);
    assert.equal(x.headers["x-kind"], "true/true");
    if (protocol === "connect") assert.equal(x.headers["trailer-x-trailer-kind"], "true");
    else assert.equal(trailersOf(protocol, x)?.["x-trailer-kind"], "true");
  });

  test(`${protocol}, no interceptors: a handler that never reads them answers as connect-es`, async () => {
    const x = await same(...request(protocol, ""), true, true);
    assert.equal(x.status, 200);
    assert.equal(x.headers["trailer-x-trailer"], undefined);
  });

  test(`${protocol}, no interceptors: errors, with and without headers set before them`, async () => {
    const failed = await same(...request(protocol, "fail"), true, true);
    if (protocol === "connect") {
      assert.equal(failed.headers["x-before"], "set");
      assert.equal(failed.headers["x-meta"], "m");
      assert.equal(failed.headers["trailer-x-trailer"], "kept");
    } else assert.equal(trailersOf(protocol, failed)?.["x-trailer"], "kept");
    const thrown = await same(...request(protocol, "throw"), true, true);
    if (protocol === "connect") {
      assert.equal(thrown.headers["content-type"], "application/json");
    } else assert.equal(trailersOf(protocol, thrown)?.["grpc-message"], "internal%20error");
  });

  test(`${protocol}, no interceptors: a response header node:http2 refuses resets the call on both paths`, async () => {
    for (const command of ["bad-header", "bad-header-fail"]) {
      const [headers, body] = request(protocol, command);
      const outcome = (url: string): Promise<unknown> =>
        exchange(url, headers, body).catch((e: NodeJS.ErrnoException) => ({ error: e.code }));
      const lean = bareLean.seen.lean;
      const a = await outcome(bareLean.url);
      const b = await outcome(bareWithout.url);
      assert.deepEqual(a, b, command);
      assert.deepEqual(a, { error: "ERR_HTTP2_STREAM_ERROR" }, command);
      assert.equal(bareLean.seen.lean, lean + 1, "the lean path ran it");
    }
  });
}

test("connect: a JSON request is connect-es' to answer", async () => {
  const body = Buffer.from(JSON.stringify(Buffer.from("ok").toString("base64")));
  const x = await same({ "content-type": "application/json" }, body, false);
  assert.equal(x.status, 200);
});

test("grpc: two messages in a unary request are connect-es' to answer", async () => {
  const one = envelope(message("ok"));
  await same(request("grpc", "")[0], Buffer.concat([one, one]), undefined);
});

test("grpc-web: a trailer of compressMinBytes or more is compressed in its envelope (0x81), the small message not", async () => {
  const x = await same(
    ...request("grpc-web", "big-trailer", { "grpc-accept-encoding": "gzip" }),
    true,
  );
  assert.equal(x.headers["grpc-encoding"], "gzip");
  assert.equal(x.body.slice(0, 2), "00");
  assert.equal(grpcWebTrailerOf(x.body)?.["x-big"], "t".repeat(2000));
  const trailerAt = 2 * (5 + Buffer.from(x.body, "hex").readUInt32BE(1));
  assert.equal(x.body.slice(trailerAt, trailerAt + 2), "81");
});

test("grpc-web: application/grpc-web (no +proto) is binary, on the lean path", async () => {
  const [headers, body] = request("grpc-web", "ok");
  const x = await same({ ...headers, "content-type": "application/grpc-web" }, body, true);
  assert.equal(x.headers["content-type"], "application/grpc-web+proto");
});

test("grpc-web: grpc-web-text and JSON are connect-es' to answer", async () => {
  const [headers, body] = request("grpc-web", "ok");
  const text = await same(
    { ...headers, "content-type": "application/grpc-web-text" },
    Buffer.from(Buffer.from(body).toString("base64")),
    undefined,
  );
  assert.equal(text.status, 415);
  const json = await same(
    { ...headers, "content-type": "application/grpc-web+json" },
    envelope(Buffer.from(JSON.stringify(Buffer.from("ok").toString("base64")))),
    false,
  );
  assert.equal(json.status, 200);
});

test("grpc-web: two messages in a unary request are connect-es' to answer", async () => {
  const one = envelope(message("ok"));
  await same(request("grpc-web", "")[0], Buffer.concat([one, one]), undefined);
});
