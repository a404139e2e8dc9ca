/**
 * A bidi implementation whose response ends while it still reads the
 * request (a background reader): on connect-es' handler the reader gets
 * the messages the client sends after the response, then the end; the
 * lean path must not leave it waiting forever, nor cut the request short.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { after, before, describe, test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { BytesValueSchema } from "@bufbuild/protobuf/wkt";
import { ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { Bench } from "../../../bench/service.js";
import type { PluginHttpServer } from "../../../src/transport/http-server.js";
import { createNodeAdapter } from "../../../src/transport/node-adapter.js";
import { envelope, listenCounting, openRequest } from "./command-routes.js";

const ECHO_STREAM = "/bench.v1.BenchService/EchoStream";

interface Seen {
  compat: number;
  /** What each background reader got: its message count and how its input ended. */
  readers: Array<Promise<string>>;
}

function routes(seen: Seen): (router: ConnectRouter) => void {
  return (router) =>
    router.service(Bench, {
      echo: (req) => req,
      async *stream() {},
      // Reads one message and answers, neither reading the rest nor stopping the iterator.
      async collect(requests) {
        await requests[Symbol.asyncIterator]().next();
        return { value: 1n };
      },
      // eslint-disable-next-line require-yield -- the response is empty; the request is read after it
      async *echoStream(requests) {
        const it = requests[Symbol.asyncIterator]();
        const first = await it.next();
        let n = first.done === true ? 0 : 1;
        seen.readers.push(
          (async () => {
            try {
              for (;;) {
                const r = await it.next();
                if (r.done === true) return `${n} then end`;
                n++;
              }
            } catch (e) {
              return `${n} then ${ConnectError.from(e).message}`;
            }
          })(),
        );
      },
    });
}

async function start(
  leanStreams: boolean,
): Promise<{ port: number; seen: Seen; server: PluginHttpServer }> {
  const seen: Seen = { compat: 0, readers: [] };
  return listenCounting(createNodeAdapter({ routes: routes(seen), leanStreams }), seen, true);
}

function message(bytes: number[]): Buffer {
  const value = new Uint8Array(bytes);
  return Buffer.from(envelope(toBinary(BytesValueSchema, create(BytesValueSchema, { value })), 0));
}

/** Sends one message, waits for the whole response, then two more and the end; the reader's outcome. */
async function readerOutcome(port: number, protocol: "connect" | "grpc"): Promise<string> {
  const headers: http2.OutgoingHttpHeaders =
    protocol === "connect"
      ? { "content-type": "application/connect+proto", "connect-protocol-version": "1" }
      : { "content-type": "application/grpc", te: "trailers" };
  const session = http2.connect(`http://127.0.0.1:${port}`);
  try {
    const { req, done } = openRequest(session, ECHO_STREAM, headers);
    const ended = new Promise<void>((resolve) => req.on("end", resolve));
    req.write(message([1]));
    await ended;
    if (!req.destroyed) {
      req.write(message([2]));
      req.write(message([3]));
      req.end();
    }
    await done;
    return await readerOf(port);
  } finally {
    session.close();
  }
}

const servers = new Map<number, Seen>();

async function readerOf(port: number): Promise<string> {
  const reader = (servers.get(port) as Seen).readers.shift() as Promise<string>;
  return Promise.race([
    reader,
    new Promise<string>((r) => setTimeout(() => r("still waiting after 2 s"), 2000)),
  ]);
}

describe("a bidi implementation reading its request after its response ended", () => {
  let lean: { port: number; seen: Seen; server: PluginHttpServer };
  let reference: { port: number; seen: Seen; server: PluginHttpServer };
  before(async () => {
    lean = await start(true);
    reference = await start(false);
    servers.set(lean.port, lean.seen);
    servers.set(reference.port, reference.seen);
  });
  after(async () => {
    await lean.server.close();
    await reference.server.close();
  });

  for (const protocol of ["connect", "grpc"] as const) {
    test(`${protocol}: the reader gets what connect-es' reader gets`, async () => {
      const want = await readerOutcome(reference.port, protocol);
      const got = await readerOutcome(lean.port, protocol);
      assert.equal(lean.seen.compat, 0, "the lean path served it");
      assert.equal(got, want);
    });
  }
});

describe("a client stream answered after one message, the rest left unread", () => {
  let lean: { port: number; seen: Seen; server: PluginHttpServer };
  before(async () => {
    lean = await start(true);
  });
  after(() => lean.server.close());

  for (const protocol of ["connect", "grpc"] as const) {
    test(`${protocol}: the host's 16 MB request is not held back by flow control`, async () => {
      const headers: http2.OutgoingHttpHeaders =
        protocol === "connect"
          ? { "content-type": "application/connect+proto", "connect-protocol-version": "1" }
          : { "content-type": "application/grpc", te: "trailers" };
      const session = http2.connect(`http://127.0.0.1:${lean.port}`);
      session.on("error", () => {});
      try {
        const { req, done } = openRequest(session, "/bench.v1.BenchService/Collect", headers);
        const one = message(Array.from({ length: 1000 }, () => 7));
        void (async () => {
          for (let i = 0; i < 16 * 1024 && !req.destroyed; i++) {
            if (!req.write(one)) await new Promise((r) => req.once("drain", r));
          }
          req.end();
        })();
        const x = await Promise.race([
          done,
          new Promise<string>((r) =>
            setTimeout(() => r("the stream is still open after 5 s"), 5000),
          ),
        ]);
        assert.equal(typeof x === "string" ? x : x.status, 200);
      } finally {
        session.close();
      }
    });
  }
});
