/**
 * The lean unary path over HTTP/1.1 (what a browser speaks to a plugin over
 * cleartext) against connect-es' handlers (`lean: false`): the same raw
 * HTTP/1.1 requests, sent by node:http's client, must get the same status,
 * headers (but `date`), body bytes and trailers, in Connect, gRPC and
 * gRPC-web; each case checks which path ran the handler.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { gzipSync } from "node:zlib";
import { Code } from "@connectrpc/connect";
import {
  commandRoutes,
  envelope,
  grpcWebTrailerOf,
  message,
  request,
  type HandlerSeen,
  type Protocol,
} from "./command-routes.js";
import { createNodeAdapter } from "../../../src/transport/node-adapter.js";

const READ_MAX = 1024;
const WRITE_MAX = 4096;
const PATH = "/bench.v1.BenchService/Echo";

interface Server {
  port: number;
  seen: HandlerSeen;
  server: http.Server;
}

async function start(lean: boolean): Promise<Server> {
  const seen: HandlerSeen = { lean: 0, reference: 0, aborted: [] };
  const server = http.createServer(
    createNodeAdapter({
      routes: commandRoutes(seen, WRITE_MAX),
      readMaxBytes: READ_MAX,
      writeMaxBytes: WRITE_MAX,
      lean,
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as AddressInfo).port, seen, server };
}

let withLean: Server;
let without: Server;
before(async () => {
  [withLean, without] = await Promise.all([start(true), start(false)]);
});
after(async () => {
  for (const s of [withLean, without]) {
    s.server.closeAllConnections();
    await new Promise<void>((resolve) => s.server.close(() => resolve()));
  }
});

/** What an HTTP/1.1 exchange got back. */
interface Exchange {
  status: number;
  headers: Record<string, unknown>;
  body: string;
  trailers: Record<string, unknown>;
}

/** One HTTP/1.1 POST to PATH on a connection of its own. */
function exchange(
  port: number,
  headers: http.OutgoingHttpHeaders,
  body: Uint8Array,
): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, method: "POST", path: PATH, headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const { date: _, ...rest } = res.headers;
          resolve({
            status: res.statusCode ?? 0,
            headers: rest,
            body: Buffer.concat(chunks).toString("hex"),
            trailers: res.trailers,
          });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** The same request to both servers: the same answer, and the path the lean server took. */
async function same(
  [headers, body]: [http.OutgoingHttpHeaders, Uint8Array],
  lean: boolean | undefined,
): Promise<Exchange> {
  const before = { ...withLean.seen };
  const a = await exchange(withLean.port, headers, body);
  const b = await exchange(without.port, headers, body);
  assert.deepEqual(a, b);
  const ran = [withLean.seen.lean - before.lean, withLean.seen.reference - before.reference];
  if (lean === true) assert.deepEqual(ran, [1, 0], "the lean path ran it");
  if (lean === false) assert.deepEqual(ran, [0, 1], "connect-es ran it");
  if (lean === undefined) assert.deepEqual(ran, [0, 0], "no handler ran");
  return a;
}

/** HTTP/1.1 has no pseudo-headers: a request's headers as request() makes them, without `te`. */
function h1(
  protocol: Protocol,
  command: string | Uint8Array,
  extra: http.OutgoingHttpHeaders = {},
): [http.OutgoingHttpHeaders, Uint8Array] {
  const [headers, body] = request(protocol, command, extra);
  const { te: _, ...rest } = headers;
  return [rest, body];
}

for (const protocol of ["connect", "grpc", "grpc-web"] as const) {
  const statusOf = (x: Exchange): string => {
    if (protocol === "connect") {
      if (x.status === 200) return "ok";
      const e = JSON.parse(Buffer.from(x.body, "hex").toString()) as { code: string };
      return e.code;
    }
    const trailers = protocol === "grpc" ? x.trailers : grpcWebTrailerOf(x.body);
    const status = trailers?.["grpc-status"];
    if (status === undefined) return "none";
    return status === "0" ? "OK" : (Code[Number(status)] ?? "unknown");
  };

  test(`${protocol} over HTTP/1.1: success with headers, set-cookie twice and trailers`, async () => {
    const x = await same(h1(protocol, "ok"), true);
    // gRPC's trailers over HTTP/1.1 (chunked): node's client reads them as connect-es sends them.
    assert.equal(statusOf(x), protocol === "connect" ? "ok" : "OK");
    assert.equal(x.headers["x-answer"], "yes");
    await same(h1(protocol, "cookies"), true);
    await same(h1(protocol, ""), true);
  });

  test(`${protocol} over HTTP/1.1: the handler reads the same request headers`, async () => {
    await same(h1(protocol, "request-headers", { "x-custom": "a value" }), true);
  });

  test(`${protocol} over HTTP/1.1: errors, a plain exception, a response over writeMaxBytes`, async () => {
    const failed = await same(h1(protocol, "fail"), true);
    assert.match(statusOf(failed), /^(failed_precondition|FailedPrecondition)$/);
    await same(h1(protocol, "throw"), true);
    const big = await same(h1(protocol, "too-big"), true);
    assert.match(statusOf(big), /^(resource_exhausted|ResourceExhausted)$/);
  });

  test(`${protocol} over HTTP/1.1: the deadline from the timeout header aborts the handler`, async () => {
    const timeout =
      protocol === "connect" ? { "connect-timeout-ms": "50" } : { "grpc-timeout": "50m" };
    const x = await same(h1(protocol, "slow", timeout), true);
    assert.match(statusOf(x), /^(deadline_exceeded|DeadlineExceeded)$/);
  });

  test(`${protocol} over HTTP/1.1: a request over readMaxBytes, and a compressed one, are connect-es'`, async () => {
    const over = await same(h1(protocol, new Uint8Array(READ_MAX + 10).fill(1)), undefined);
    assert.match(statusOf(over), /^(resource_exhausted|ResourceExhausted)$/);
    const payload = gzipSync(message("ok"));
    const [headers] = h1(protocol, "");
    await same(
      protocol === "connect"
        ? [{ ...headers, "content-encoding": "gzip" }, payload]
        : [{ ...headers, "grpc-encoding": "gzip" }, envelope(payload, 1)],
      false,
    );
  });

  test(`${protocol} over HTTP/1.1: a compressed response when the client accepts it`, async () => {
    const accept = protocol === "connect" ? "accept-encoding" : "grpc-accept-encoding";
    await same(h1(protocol, "big", { [accept]: "gzip" }), true);
    await same(h1(protocol, "ok", { [accept]: "br, gzip" }), true);
  });

  test(`${protocol} over HTTP/1.1: a client that goes away aborts the handler with Canceled`, async () => {
    const codes = [];
    for (const server of [withLean, without]) {
      const count = server.seen.aborted.length;
      const started = new Promise<void>((resolve) => (server.seen.started = resolve));
      const [headers, body] = h1(protocol, "hang");
      const req = http.request({
        host: "127.0.0.1",
        port: server.port,
        method: "POST",
        path: PATH,
        headers,
        agent: false,
      });
      req.on("error", () => {});
      req.end(body);
      await started;
      req.destroy();
      while (server.seen.aborted.length === count) await new Promise((r) => setImmediate(r));
      // The wording differs (the lean path's own, connect-es' AbortError), as over HTTP/2.
      codes.push(server.seen.aborted[count]?.code);
    }
    assert.deepEqual(codes, [Code.Canceled, Code.Canceled]);
    assert.ok(withLean.seen.lean > 0);
  });
}
