/**
 * The lean path's per-session record under load (review16-unary): 64
 * concurrent calls on one session, handlers that set the response header
 * and trailer after an await (with and without interceptors), a third of
 * them reset by the client while the handler runs. Every answered call
 * carries what its handler set; afterwards the record counts no call in
 * flight and its stream set (closeWhenIdle's) is empty.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { BytesValueSchema } from "@bufbuild/protobuf/wkt";
import { createNodeAdapter } from "../../../src/transport/node-adapter.js";
import { closeWhenIdle, sessionStreams } from "../../../src/transport/h2-idle.js";
import { Bench } from "../../../bench/service.js";

for (const intercepted of [false, true]) {
  test(`64 callers, resets mid-handler, ${intercepted ? "with" : "no"} interceptors: headers reach the wire, the record empties`, async () => {
    const sessions: http2.ServerHttp2Session[] = [];
    const server = http2.createServer(
      createNodeAdapter({
        interceptors: intercepted ? [(next) => (req) => next(req)] : [],
        routes: (router) =>
          router.service(Bench, {
            echo: async (req, ctx) => {
              await new Promise((r) => setTimeout(r, 5 + ((req.value[0] ?? 0) % 7)));
              ctx.responseHeader.set("x-n", String(req.value[0]));
              ctx.responseTrailer.set("x-t", String(req.value[0]));
              return req;
            },
            stream: async function* () {},
          }),
      }),
    );
    server.on("session", (s) => {
      sessions.push(s);
      closeWhenIdle(s, 60_000);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    const client = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const one = (i: number, protocol: "connect" | "grpc"): Promise<string> =>
        new Promise((resolve, reject) => {
          const msg = toBinary(
            BytesValueSchema,
            create(BytesValueSchema, { value: new Uint8Array([i]) }),
          );
          const headers =
            protocol === "connect"
              ? { "content-type": "application/proto", "connect-protocol-version": "1" }
              : { "content-type": "application/grpc", te: "trailers" };
          const s = client.request({
            ":method": "POST",
            ":path": "/bench.v1.BenchService/Echo",
            ...headers,
          });
          let head: http2.IncomingHttpHeaders = {};
          let tail: http2.IncomingHttpHeaders = {};
          s.on("response", (h) => (head = h));
          s.on("trailers", (h: http2.IncomingHttpHeaders) => (tail = h));
          s.on("data", () => {});
          s.on("error", reject);
          s.on("close", () => {
            if (i % 3 === 2) resolve("reset");
            else if (protocol === "connect")
              resolve(`${String(head["x-n"])}/${String(head["trailer-x-t"])}`);
            else
              resolve(
                `${String(head["x-n"])}/${String(tail["x-t"])}/${String(tail["grpc-status"])}`,
              );
          });
          if (protocol === "connect") s.end(msg);
          else {
            const body = Buffer.alloc(5 + msg.length);
            body.writeUInt32BE(msg.length, 1);
            body.set(msg, 5);
            s.end(body);
          }
          if (i % 3 === 2) setTimeout(() => s.close(http2.constants.NGHTTP2_CANCEL), 2);
        });
      for (const protocol of ["connect", "grpc"] as const) {
        const got = await Promise.all(Array.from({ length: 64 }, (_, i) => one(i, protocol)));
        got.forEach((g, i) => {
          if (i % 3 === 2) return;
          assert.equal(g, protocol === "connect" ? `${i}/${i}` : `${i}/${i}/0`, `call ${i}`);
        });
      }
      assert.equal(sessions.length, 1);
      const record = sessionStreams(sessions[0] as http2.ServerHttp2Session);
      // The server sees the last resets a turn or more after the client: wait for them (bounded).
      for (let i = 0; i < 200 && (record.calls !== 0 || record.size !== 0); i++) {
        await new Promise((r) => setTimeout(r, 25));
      }
      assert.equal(record.calls, 0, "no lean call counted in flight");
      assert.equal(record.size, 0, "no stream left in the set");
    } finally {
      client.close();
      server.close();
    }
  });
}
