/**
 * The lean path's per-session record under load (review16-unary): 64
 * concurrent calls on one session, handlers that set the response header
 * and trailer after an await (with and without interceptors), a third of
 * them reset by the client while the handler runs. Every answered call
 * carries what its handler set; afterwards the session's stream set
 * (closeWhenIdle's) is empty.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { test } from "node:test";
import { closeWhenIdle } from "../../../src/transport/h2-idle.js";
import { Bench } from "../../../bench/service.js";
import { listenAdapter, rawExchange, request, type Protocol } from "./command-routes.js";

for (const intercepted of [false, true]) {
  test(`64 callers, resets mid-handler, ${intercepted ? "with" : "no"} interceptors: headers reach the wire, the record empties`, async () => {
    const sessions: http2.ServerHttp2Session[] = [];
    const records: ReadonlySet<http2.ServerHttp2Stream>[] = [];
    const { server, url } = await listenAdapter(
      {
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
      },
      (s) => {
        sessions.push(s);
        records.push(closeWhenIdle(s, 60_000));
      },
    );
    const client = http2.connect(url);
    try {
      // Every third call is reset by the client while its handler runs.
      const one = async (i: number, protocol: Protocol): Promise<string> => {
        const x = await rawExchange(
          client,
          "/bench.v1.BenchService/Echo",
          ...request(protocol, new Uint8Array([i])),
          i % 3 === 2 ? 2 : undefined,
        );
        if (i % 3 === 2) return "reset";
        if (protocol === "connect") {
          return `${String(x.headers["x-n"])}/${String(x.headers["trailer-x-t"])}`;
        }
        return `${String(x.headers["x-n"])}/${String(x.trailers?.["x-t"])}/${String(x.trailers?.["grpc-status"])}`;
      };
      for (const protocol of ["connect", "grpc"] as const) {
        const got = await Promise.all(Array.from({ length: 64 }, (_, i) => one(i, protocol)));
        got.forEach((g, i) => {
          if (i % 3 === 2) return;
          assert.equal(g, protocol === "connect" ? `${i}/${i}` : `${i}/${i}/0`, `call ${i}`);
        });
      }
      assert.equal(sessions.length, 1);
      const record = records[0] as ReadonlySet<http2.ServerHttp2Stream>;
      // The server sees the last resets a turn or more after the client: wait for them (bounded).
      for (let i = 0; i < 200 && record.size !== 0; i++) {
        await new Promise((r) => setTimeout(r, 25));
      }
      assert.equal(record.size, 0, "no stream left in the set");
    } finally {
      client.close();
      server.close();
    }
  });
}
