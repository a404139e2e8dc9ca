/**
 * The lean unary path's request headers (RequestHeaders in
 * src/transport/unary-client-wire.ts: one frozen object per path for calls
 * without headers of the caller's) against connect-es' transports, over a
 * real HTTP/2 server: calls with and without headers and timeouts,
 * interleaved on one path and on two transports, each send exactly the
 * headers connect-es sends for that call, never another call's.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { BytesValueSchema } from "@bufbuild/protobuf/wkt";
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createH2Client } from "../../../src/transport/h2-client.js";
import { H2Session } from "../../../src/transport/h2-session.js";
import { createProtocolTransport } from "../../../src/transport/protocol-transport.js";
import { Bench } from "../../../bench/service.js";

let server: http2.Http2Server;
let url: string;
/** The headers of each request received, in order, without the timeout's value. */
const seen: Record<string, string>[] = [];

before(async () => {
  server = http2.createServer();
  server.on("stream", (stream, headers) => {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(headers)) {
      if (k === ":authority" || k === ":scheme") continue;
      // A timeout's value is the time left: only whether one was sent is compared.
      out[k] = k === "grpc-timeout" || k === "connect-timeout-ms" ? "(set)" : String(v);
    }
    seen.push(out);
    stream.resume();
    stream.on("end", () => {
      const type = String(headers["content-type"]);
      if (type.startsWith("application/grpc-web")) {
        // An empty message, then the trailer envelope (flag 0x80).
        const trailer = Buffer.from("grpc-status: 0\r\n");
        const end = Buffer.alloc(5);
        end[0] = 0x80;
        end.writeUInt32BE(trailer.length, 1);
        stream.respond({ ":status": 200, "content-type": "application/grpc-web+proto" });
        stream.end(Buffer.concat([Buffer.alloc(5), end, trailer]));
        return;
      }
      if (!type.startsWith("application/grpc")) {
        stream.respond({ ":status": 200, "content-type": "application/proto" });
        stream.end();
        return;
      }
      stream.respond(
        { ":status": 200, "content-type": "application/grpc+proto" },
        { waitForTrailers: true },
      );
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(Buffer.alloc(5));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));

interface Step {
  readonly header?: Record<string, string>;
  readonly timeoutMs?: number;
  /** An interceptor sets this header. */
  readonly intercepted?: string;
}

const steps: Step[] = [
  {},
  { timeoutMs: 60_000 },
  {},
  { header: { "x-call": "one", authorization: "Bearer secret" } },
  {},
  { header: { "x-call": "two" }, timeoutMs: 60_000 },
  { timeoutMs: 60_000 },
  { intercepted: "from-interceptor" },
  {},
  { header: { "user-agent": "mine/1" } },
  {},
  { header: { "x-user-agent": "theirs/2" } },
  {},
];

/** Runs the steps in order, all on the one path, and gives the headers each call sent. */
async function run(
  transportOf: (interceptors: Interceptor[]) => Transport,
): Promise<Record<string, string>[]> {
  const out: Record<string, string>[] = [];
  for (const [i, step] of steps.entries()) {
    const interceptors: Interceptor[] = [];
    if (step.intercepted !== undefined) {
      const value = step.intercepted;
      interceptors.push((next) => (req) => {
        req.header.set("x-intercepted", value);
        return next(req);
      });
    }
    await transportOf(interceptors).unary(
      Bench.method.echo,
      undefined,
      step.timeoutMs,
      step.header,
      create(BytesValueSchema, { value: Uint8Array.of(i) }),
    );
    assert.equal(seen.length, 1, `request ${i} received`);
    out.push(seen.pop() as Record<string, string>);
  }
  return out;
}

for (const protocol of ["connect", "grpc", "grpc-web"] as const) {
  test(`${protocol}: each call sends its own headers, as connect-es' transport does`, async () => {
    const leanSession = new H2Session(url);
    const refSession = new H2Session(url);
    try {
      const lean = await run((interceptors) =>
        createProtocolTransport(protocol, leanSession, { baseUrl: url, interceptors }),
      );
      const reference = await run((interceptors) =>
        createProtocolTransport(protocol, createH2Client(refSession), {
          baseUrl: url,
          interceptors,
        }),
      );
      assert.deepEqual(lean, reference);
      // Sanity: no call without headers of its own carried another call's.
      for (const [i, step] of steps.entries()) {
        const h = lean[i] as Record<string, string>;
        if (step.header === undefined) assert.equal(h["x-call"], undefined, `call ${i}`);
        if (step.header === undefined) assert.equal(h["authorization"], undefined, `call ${i}`);
        if (step.intercepted === undefined) assert.equal(h["x-intercepted"], undefined);
        const timeout = protocol === "connect" ? "connect-timeout-ms" : "grpc-timeout";
        assert.equal(h[timeout] !== undefined, step.timeoutMs !== undefined, `call ${i} timeout`);
      }
    } finally {
      leanSession.close();
      refSession.close();
    }
  });
}
