/**
 * GrowingBytes, and the host's lean readers that use it, over HTTP/2 and
 * HTTP/1.1, against real node:http2 and node:http servers (fake plugins)
 * that announce a huge message (an envelope's length, a Content-Length)
 * and send a few bytes of it: the client must not allocate what was only
 * announced.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { createUrlTransport } from "../../../src/transport/client-transport.js";
import { H2Session } from "../../../src/transport/h2-session.js";
import { createProtocolTransport } from "../../../src/transport/protocol-transport.js";
import { GrowingBytes, UPFRONT_BYTES } from "../../../src/transport/growing-bytes.js";
import { Bench } from "../../../bench/service.js";
import { gc } from "../../gc.js";

describe("GrowingBytes", () => {
  test("a message up to UPFRONT_BYTES gets its whole buffer at once, filled across chunks", () => {
    const g = new GrowingBytes(10);
    assert.equal(g.bytes().length, 10);
    const first = g.bytes();
    assert.equal(g.fill(new Uint8Array([9, 1, 2, 3]), 1), 3);
    assert.equal(g.whole, false);
    assert.equal(g.fill(new Uint8Array([4, 5, 6, 7, 8, 9, 10, 11, 12]), 0), 7);
    assert.equal(g.whole, true);
    assert.equal(g.bytes(), first, "no second buffer");
    assert.deepEqual([...g.bytes()], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  test("a larger message starts at UPFRONT_BYTES and grows with its bytes, to exactly its length", () => {
    const length = UPFRONT_BYTES * 5 + 3;
    const g = new GrowingBytes(length);
    assert.equal(g.bytes().length, UPFRONT_BYTES);
    const chunk = new Uint8Array(UPFRONT_BYTES + 7).map((_, i) => i & 0xff);
    let sent = 0;
    while (!g.whole) {
      sent += g.fill(chunk, 0);
      assert.ok(
        g.bytes().length <= Math.max(UPFRONT_BYTES, 2 * g.filled),
        "at most twice the bytes in",
      );
    }
    assert.equal(sent, length);
    assert.equal(g.bytes().length, length);
    const bytes = g.bytes();
    for (let at = 0; at < length; at += chunk.length) {
      const n = Math.min(chunk.length, length - at);
      assert.deepEqual(bytes.subarray(at, at + n), chunk.subarray(0, n));
    }
  });
});

describe("an announced 1 GiB message of which 10 bytes come (fake plugins)", () => {
  const ANNOUNCED = 1024 * 1024 * 1024;
  let server: http2.Http2Server;
  let h1Server: http.Server;
  let url: string;
  let h1Url: string;
  /** Resolves when the server has written the message's start for the call. */
  let written: () => void = () => {};
  /**
   * The answer's head and first bytes: an envelope announcing 1 GiB, or
   * for a Connect unary call (a bare message) a Content-Length of 1 GiB.
   */
  const answer = (contentType: string | undefined): [Record<string, string | number>, Buffer] => {
    if (contentType === "application/proto") {
      return [{ "content-type": contentType, "content-length": ANNOUNCED }, Buffer.alloc(10)];
    }
    const head = Buffer.alloc(15);
    head.writeUInt32BE(ANNOUNCED, 1);
    return [{ "content-type": contentType ?? "" }, head];
  };
  before(async () => {
    server = http2.createServer();
    server.on("stream", (stream, headers) => {
      const [head, bytes] = answer(headers["content-type"]);
      stream.respond({ ":status": 200, ...head });
      stream.write(bytes, () => written());
      stream.on("error", () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    h1Server = http.createServer((req, res) => {
      const [head, bytes] = answer(req.headers["content-type"]);
      res.writeHead(200, head);
      res.write(bytes, () => written());
      res.on("error", () => {});
    });
    await new Promise<void>((resolve) => h1Server.listen(0, "127.0.0.1", resolve));
    h1Url = `http://127.0.0.1:${(h1Server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.close();
    h1Server.closeAllConnections();
    h1Server.close();
  });

  /**
   * The ArrayBuffer bytes the process holds (after a full collection, so
   * only what is reachable) while `call` waits for the rest, then its
   * error. Absolute, not a difference: a closed stream of an earlier test
   * may stay reachable for a while. The test process holds a few MiB.
   */
  async function whileWaiting(
    call: (signal: AbortSignal) => Promise<unknown>,
  ): Promise<{ held: number; error: unknown }> {
    const sent = new Promise<void>((resolve) => (written = resolve));
    const controller = new AbortController();
    const pending = call(controller.signal).then(
      () => undefined,
      (e: unknown) => e,
    );
    await sent;
    // The bytes reach the client on loopback well within this.
    await new Promise((r) => setTimeout(r, 200));
    gc();
    const held = process.memoryUsage().arrayBuffers;
    controller.abort(new Error("test done"));
    return { held, error: await pending };
  }

  /**
   * The lean path, on a connection of its own. (connect-es' own envelope
   * decoder, which client and bidi streams used until session 19, gRPC-web
   * until session 21 and every call over HTTP/1.1 until session 22,
   * allocates the announced size at once: 1 GiB here, and so does its
   * unary body reader for a Content-Length, docs/http2-streams.md.)
   */
  const transport = (
    protocol: "connect" | "grpc" | "grpc-web",
    overH1: boolean,
  ): [Transport, () => void] => {
    if (overH1) {
      const t = createUrlTransport(new URL(h1Url), { protocol, httpVersion: "1.1" });
      return [t.transport, () => t.close()];
    }
    const session = new H2Session(url);
    return [createProtocolTransport(protocol, session, { baseUrl: url }), () => session.close()];
  };
  const cancelled = (e: unknown): void => {
    assert.ok(e instanceof ConnectError, String(e));
    assert.equal(Code[e.code], "Canceled", e.message);
  };

  /** A stream of each kind, its request one message. */
  const kinds = [
    ["server", Bench.method.stream, { value: 1n }],
    ["client", Bench.method.collect, { value: new Uint8Array([1]) }],
    ["bidi", Bench.method.echoStream, { value: new Uint8Array([1]) }],
  ] as const;
  const paths = [
    ["HTTP/2", false, ["connect", "grpc", "grpc-web"]],
    // Bidi streams need HTTP/2 (PluginClient refuses them over HTTP/1.1); gRPC too.
    ["HTTP/1.1", true, ["connect", "grpc-web"]],
  ] as const;
  for (const [version, overH1, protocols] of paths) {
    for (const protocol of protocols) {
      for (const [kind, method, message] of kinds) {
        if (overH1 && kind === "bidi") continue;
        test(`${protocol} over ${version}, lean: a ${kind} stream holds no more than the bytes that came`, async () => {
          const [t, close] = transport(protocol, overH1);
          try {
            const { held, error } = await whileWaiting(async (signal) => {
              const res = await t.stream(
                method as typeof Bench.method.echoStream,
                signal,
                undefined,
                undefined,
                (async function* () {
                  yield message as { value: Uint8Array };
                })(),
              );
              for await (const _ of res.message) {
                // none comes
              }
            });
            assert.ok(held < 64 * 1024 * 1024, `holds ${held} bytes`);
            cancelled(error);
          } finally {
            close();
          }
        });
      }

      test(`${protocol} over ${version}, lean: a unary call holds no more than the bytes that came`, async () => {
        const [t, close] = transport(protocol, overH1);
        try {
          const { held, error } = await whileWaiting((signal) =>
            t.unary(Bench.method.echo, signal, undefined, undefined, {
              value: new Uint8Array([1]),
            }),
          );
          assert.ok(held < 64 * 1024 * 1024, `holds ${held} bytes`);
          cancelled(error);
        } finally {
          close();
        }
      });
    }
  }
});
