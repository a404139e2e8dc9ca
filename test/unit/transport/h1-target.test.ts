/**
 * The host's HTTP/1.1 client (createUrlTransport with httpVersion "1.1":
 * H1Target over an H1Pool) against fake plugins, real node:http and
 * node:http2 servers with one handler: HTTP status codes, size limits and
 * the deadline header come out exactly as over HTTP/2, and closing the
 * transport fails the calls in flight with its reason, as over HTTP/2.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { createUrlTransport } from "../../../src/transport/client-transport.js";
import { Bench } from "../../../bench/service.js";

type Handler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** The same handler on node:http (HTTP/1.1) and node:http2 (cleartext, prior knowledge). */
async function servers(handler: Handler): Promise<{ h1: string; h2: string; close(): void }> {
  const h1 = http.createServer(handler);
  const h2 = http2.createServer(handler);
  const urlOf = async (s: http.Server | http2.Http2Server): Promise<string> => {
    await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  };
  return {
    h1: await urlOf(h1),
    h2: await urlOf(h2),
    close() {
      h1.closeAllConnections();
      h1.close();
      h2.close();
    },
  };
}

/** A call's outcome as text: "ok", or the error's code and message. */
async function outcome(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return "ok";
  } catch (e) {
    const ce = ConnectError.from(e);
    return `${Code[ce.code]}: ${ce.rawMessage}`;
  }
}

const input = { value: new Uint8Array([1, 2, 3]) };

/** Reads a server stream of the bench service (its one request: 1) to its end or error. */
async function readStream(t: Transport): Promise<void> {
  const one = async function* (): AsyncGenerator<{ value: bigint }> {
    yield await Promise.resolve({ value: 1n });
  };
  const res = await t.stream(Bench.method.stream, undefined, undefined, undefined, one());
  for await (const _ of res.message);
}

describe("HTTP/1.1 and HTTP/2 alike (fake plugins)", () => {
  let urls: Awaited<ReturnType<typeof servers>>;
  /** The timeout header of each request, by protocol. */
  const timeouts: string[] = [];
  /** The authorization header of each request. */
  const auths: (string | undefined)[] = [];
  before(async () => {
    urls = await servers((req, res) => {
      const type = req.headers["content-type"] ?? "";
      auths.push(req.headers.authorization);
      timeouts.push(String(req.headers["connect-timeout-ms"] ?? req.headers["grpc-timeout"]));
      const status = Number(req.headers["x-status"] ?? 200);
      req.resume();
      req.on("end", () => {
        if (status !== 200) {
          res.writeHead(status, { "content-type": "text/plain" });
          res.end("not a plugin");
          return;
        }
        // A 1,000-byte message (BytesValue, field 1), bare or enveloped.
        const message = Buffer.concat([Buffer.from([10, 0xe5, 7]), Buffer.alloc(997)]);
        if (type === "application/proto") {
          res.writeHead(200, { "content-type": type, "content-length": message.length });
          res.end(message);
          return;
        }
        const envelope = (flags: number, data: Buffer): Buffer => {
          const head = Buffer.alloc(5);
          head[0] = flags;
          head.writeUInt32BE(data.length, 1);
          return Buffer.concat([head, data]);
        };
        // gRPC-web's status in its trailer envelope; Connect streams are not answered in full.
        const trailer = type.startsWith("application/grpc-web")
          ? envelope(0x80, Buffer.from("grpc-status: 0\r\n"))
          : Buffer.alloc(0);
        res.writeHead(200, { "content-type": type });
        res.end(Buffer.concat([envelope(0, message), trailer]));
      });
    });
  });
  after(() => urls.close());

  /** Each protocol's transport over each version, `limits` given. */
  function both(
    protocol: "connect" | "grpc-web",
    limits: { readMaxBytes?: number; writeMaxBytes?: number } = {},
  ): [Transport, Transport, () => void] {
    const one = createUrlTransport(new URL(urls.h1), { protocol, httpVersion: "1.1", ...limits });
    const two = createUrlTransport(new URL(urls.h2), { protocol, httpVersion: "2", ...limits });
    return [one.transport, two.transport, () => (one.close(), two.close())];
  }

  for (const protocol of ["connect", "grpc-web"] as const) {
    test(`${protocol}: HTTP status codes map to the same errors`, async () => {
      const [one, two, close] = both(protocol);
      try {
        for (const status of [400, 401, 403, 404, 408, 429, 500, 502, 503, 504]) {
          const call = (t: Transport): Promise<string> =>
            outcome(
              t.unary(
                Bench.method.echo,
                undefined,
                undefined,
                { "x-status": String(status) },
                input,
              ),
            );
          const [a, b] = [await call(one), await call(two)];
          assert.equal(a, b, `HTTP ${status}`);
          assert.notEqual(a, "ok");
        }
      } finally {
        close();
      }
    });

    test(`${protocol}: readMaxBytes and writeMaxBytes fail with the same ResourceExhausted`, async () => {
      const [one, two, close] = both(protocol, { readMaxBytes: 100, writeMaxBytes: 50 });
      try {
        const unary = (t: Transport, value: Uint8Array): Promise<string> =>
          outcome(t.unary(Bench.method.echo, undefined, undefined, undefined, { value }));
        const stream = (t: Transport): Promise<string> => outcome(readStream(t));
        const big = new Uint8Array(60);
        assert.match(await unary(one, big), /^ResourceExhausted: message size 62 is larger than/);
        assert.equal(await unary(one, big), await unary(two, big));
        assert.match(await unary(one, input.value), /^ResourceExhausted: message size 1000 is/);
        assert.equal(await unary(one, input.value), await unary(two, input.value));
        assert.match(await stream(one), /^ResourceExhausted: message size 1000 is larger than/);
        assert.equal(await stream(one), await stream(two));
      } finally {
        close();
      }
    });

    test(`${protocol}: the deadline goes in the same timeout header`, async () => {
      const [one, two, close] = both(protocol);
      try {
        timeouts.length = 0;
        for (const t of [one, two]) {
          assert.equal(
            await outcome(t.unary(Bench.method.echo, undefined, 60_000, undefined, input)),
            "ok",
          );
        }
        assert.equal(timeouts.length, 2);
        assert.equal(timeouts[0], timeouts[1]);
        assert.match(timeouts[0] ?? "", /^\d+m?$/);
      } finally {
        close();
      }
    });
  }

  test("a URL's user info goes as Basic auth over HTTP/1.1, as node:http sends it", async () => {
    const url = new URL(urls.h1);
    url.username = "us%20er";
    url.password = "p:w";
    const t = createUrlTransport(url, { httpVersion: "1.1" });
    try {
      auths.length = 0;
      assert.equal(
        await outcome(t.transport.unary(Bench.method.echo, undefined, undefined, undefined, input)),
        "ok",
      );
      assert.deepEqual(auths, [`Basic ${Buffer.from("us er:p:w").toString("base64")}`]);
    } finally {
      t.close();
    }
  });

  test("the URL's password is in no error message (an interceptor sends the call elsewhere)", async () => {
    for (const httpVersion of ["1.1", "2"] as const) {
      const url = new URL(httpVersion === "1.1" ? urls.h1 : urls.h2);
      url.username = "user";
      url.password = "s3cret";
      const t = createUrlTransport(url, {
        httpVersion,
        interceptors: [
          (next) => (req) => next({ ...req, url: req.url.replace("127.0.0.1", "localhost") }),
        ],
      });
      try {
        const got = await outcome(
          t.transport.unary(Bench.method.echo, undefined, undefined, undefined, input),
        );
        assert.match(got, /^Internal: cannot make a request to /);
        assert.doesNotMatch(got, /s3cret/, httpVersion);
      } finally {
        t.close();
      }
    }
  });
});

describe("closing an HTTP/1.1 transport (fake plugin that never answers)", () => {
  let server: http.Server;
  let url: string;
  let arrived: () => void = () => {};
  before(async () => {
    server = http.createServer((req) => {
      req.resume();
      arrived();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  test("fails the calls in flight with its reason at once, and every later call (as over HTTP/2)", async () => {
    const t = createUrlTransport(new URL(url), { httpVersion: "1.1" });
    const both = new Promise<void>((resolve) => {
      let n = 0;
      arrived = () => void (++n === 2 && resolve());
    });
    const unary = outcome(
      t.transport.unary(Bench.method.echo, undefined, undefined, undefined, input),
    );
    const stream = outcome(readStream(t.transport));
    await both;
    t.close(new ConnectError("plugin p was closed", Code.Unavailable));
    const late = new Promise<string>((resolve) =>
      setTimeout(() => resolve("still pending"), 2_000),
    );
    assert.equal(await Promise.race([unary, late]), "Unavailable: plugin p was closed");
    assert.equal(await Promise.race([stream, late]), "Unavailable: plugin p was closed");
    assert.equal(t.isBroken(), true);
    assert.equal(
      await outcome(t.transport.unary(Bench.method.echo, undefined, undefined, undefined, input)),
      "Unavailable: plugin p was closed",
    );
  });
});
