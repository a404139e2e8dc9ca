/**
 * The lean unary path over HTTP/1.1 (what a browser speaks to a plugin over
 * cleartext) against connect-es' handlers (`lean: false`): the same raw
 * HTTP/1.1 requests, sent by node:http's client, must get the same status,
 * headers (but `date`), body bytes and trailers, in Connect, gRPC and
 * gRPC-web; each case checks which path ran the handler.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import * as tls from "node:tls";
import { gzipSync } from "node:zlib";
import { Code } from "@connectrpc/connect";
import { createNodeAdapter } from "../../../src/transport/node-adapter.js";
import { selfSignedCert } from "../../helpers.js";
import * as routes from "./command-routes.js";

const { envelope, grpcWebTrailerOf, message, request } = routes;
const ECHO = "/bench.v1.BenchService/Echo";
const LIMITS = { readMaxBytes: 1024, writeMaxBytes: 4096 };

/** A node:http server (HTTP/1.1 only) on loopback with the adapter, and what its handler saw. */
async function http1Server(
  lean: boolean,
): Promise<{ port: number; seen: routes.HandlerSeen; server: http.Server }> {
  const seen: routes.HandlerSeen = { lean: 0, reference: 0, aborted: [] };
  const routed = routes.commandRoutes(seen, LIMITS.writeMaxBytes);
  const server = http.createServer(createNodeAdapter({ routes: routed, ...LIMITS, lean }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as AddressInfo).port, seen, server };
}

let withLean: Awaited<ReturnType<typeof http1Server>>;
let without: typeof withLean;
before(async () => {
  [withLean, without] = await Promise.all([http1Server(true), http1Server(false)]);
});
after(async () => {
  for (const { server } of [withLean, without]) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

/** A POST to Echo on a connection of its own (no agent). */
const post = (port: number, headers: http.OutgoingHttpHeaders): http.RequestOptions => ({
  host: "127.0.0.1",
  port,
  method: "POST",
  path: ECHO,
  headers,
  agent: false,
});

/** What an HTTP/1.1 exchange got back. */
interface Exchange {
  status: number;
  headers: Record<string, unknown>;
  body: string;
  trailers: Record<string, unknown>;
}

/** One HTTP/1.1 POST to Echo on a connection of its own. */
function exchange(
  port: number,
  headers: http.OutgoingHttpHeaders,
  body: Uint8Array,
): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const req = http.request(post(port, headers), (res) => {
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
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** The same request to both servers: the same answer, and the path the lean server took. */
async function same(
  [headers, body]: [http.OutgoingHttpHeaders, Uint8Array],
  lean: boolean | undefined,
): Promise<Exchange> {
  const { lean: leanBefore, reference: referenceBefore } = withLean.seen;
  const [a, b] = [
    await exchange(withLean.port, headers, body),
    await exchange(without.port, headers, body),
  ];
  assert.deepEqual(a, b);
  const expected = { true: [1, 0], false: [0, 1], undefined: [0, 0] }[String(lean)];
  assert.deepEqual(
    [withLean.seen.lean - leanBefore, withLean.seen.reference - referenceBefore],
    expected,
    `which path ran it (lean, connect-es; lean expected: ${String(lean)})`,
  );
  return a;
}

/** HTTP/1.1 has no pseudo-headers: a request's headers as request() makes them, without `te`. */
function h1(
  protocol: routes.Protocol,
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

  test(`${protocol} over HTTP/1.1: the handler's context names the request's URL, scheme and path`, async () => {
    const x = await same(h1(protocol, "url"), true);
    assert.match(
      Buffer.from(x.body, "hex").toString("latin1"),
      /http:\/bench\.v1\.BenchService\/Echo/,
    );
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
    const over = await same(
      h1(protocol, new Uint8Array(LIMITS.readMaxBytes + 10).fill(1)),
      undefined,
    );
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
    /** The code the handler's signal gives when its client's connection goes mid-call. */
    const abortedWith = async (server: typeof withLean): Promise<Code | undefined> => {
      const { aborted } = server.seen;
      const count = aborted.length;
      const started = new Promise<void>((resolve) => (server.seen.started = resolve));
      const [headers, body] = h1(protocol, "hang");
      const req = http.request(post(server.port, headers));
      req.on("error", () => {});
      req.end(body);
      await started;
      req.destroy();
      while (aborted.length === count) await new Promise((r) => setImmediate(r));
      return aborted[count]?.code;
    };
    const lean = withLean.seen.lean;
    // The wording differs (the lean path's own, connect-es' AbortError), as over HTTP/2.
    assert.deepEqual(
      [await abortedWith(withLean), await abortedWith(without)],
      [Code.Canceled, Code.Canceled],
    );
    assert.equal(withLean.seen.lean, lean + 1, "the lean path ran it");
  });
}

test("pipelined HTTP/1.1 requests over TLS: each handler's URL says https, as connect-es' (fake certificate)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "lean-h1-tls-"));
  try {
    const { certFile, keyFile } = selfSignedCert(dir, "server", "/CN=127.0.0.1");
    const tlsOptions = { cert: readFileSync(certFile), key: readFileSync(keyFile) };
    /** The bodies two pipelined "url" calls get from a TLS server with the adapter (`lean` or not). */
    const urls = async (lean: boolean): Promise<string> => {
      const seen: routes.HandlerSeen = { lean: 0, reference: 0, aborted: [] };
      const adapter = createNodeAdapter({ routes: routes.commandRoutes(seen, 4096), lean });
      const server = https.createServer(tlsOptions, adapter);
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      try {
        const [headers, body] = h1("connect", "url");
        const head =
          `POST ${ECHO} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
          `content-type: ${String(headers["content-type"])}\r\ncontent-length: ${body.length}\r\n\r\n`;
        const one = Buffer.concat([Buffer.from(head), body]);
        const socket = tls.connect({
          host: "127.0.0.1",
          port: (server.address() as AddressInfo).port,
          rejectUnauthorized: false,
        });
        // Both requests in one write: node:http queues the second response behind the first.
        socket.write(Buffer.concat([one, one]));
        let text = "";
        const found = (): string[] =>
          [...text.matchAll(/https?:\/bench\.v1\.BenchService\/Echo/g)].map((m) => m[0]);
        for await (const chunk of socket) {
          text += (chunk as Buffer).toString("latin1");
          if (found().length === 2) break;
        }
        socket.destroy();
        assert.equal(seen.lean, lean ? 2 : 0, "which path ran them");
        return found().join(" ");
      } finally {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    };
    const [a, b] = [await urls(true), await urls(false)];
    assert.equal(b, `https:${ECHO} https:${ECHO}`);
    assert.equal(a, b);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
