/**
 * TransportOptions.callHeaders (a subprocess's launch token) on every path
 * createProtocolTransport builds: Connect, gRPC and gRPC-web over an
 * H2Session (H2Target), Connect and gRPC-web over HTTP/1.1 (H1Target).
 * Each call (unary, and a server stream) carries exactly the header given,
 * over the caller's own, and the interceptors never see it. Real servers,
 * raw: what reaches the wire.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { BytesValueSchema, Int64ValueSchema } from "@bufbuild/protobuf/wkt";
import type { Interceptor, Transport } from "@connectrpc/connect";
import { H1Pool } from "../../../src/transport/h1-pool.js";
import { H2Session } from "../../../src/transport/h2-session.js";
import {
  createProtocolTransport,
  type RpcProtocol,
} from "../../../src/transport/protocol-transport.js";
import { Bench } from "../../../bench/service.js";

/** The `authorization` headers of each request received, in order (raw: a repeated one shows). */
const seen: (string | string[] | undefined)[] = [];

/** Answers every unary call with an empty message, in the protocol its content type names. */
function answer(
  contentType: string,
  respond: (status: number, headers: Record<string, string>, body: Buffer) => void,
): void {
  if (contentType === "application/connect+proto") {
    const end = Buffer.from("{}");
    respond(
      200,
      { "content-type": "application/connect+proto" },
      Buffer.concat([Buffer.from([2, 0, 0, 0, end.length]), end]),
    );
  } else if (contentType.startsWith("application/grpc-web")) {
    const trailer = Buffer.from("grpc-status: 0\r\n");
    const head = Buffer.from([0x80, 0, 0, 0, trailer.length]);
    respond(
      200,
      { "content-type": "application/grpc-web+proto" },
      Buffer.concat([Buffer.alloc(5), head, trailer]),
    );
  } else {
    respond(200, { "content-type": "application/proto" }, Buffer.alloc(0));
  }
}

let h1: http.Server;
let h2: http2.Http2Server;
let h1Url: string;
let h2Url: string;

before(async () => {
  h1 = http.createServer((req, res) => {
    seen.push(req.headers.authorization);
    req.resume();
    req.on("end", () =>
      answer(String(req.headers["content-type"]), (status, headers, body) => {
        res.writeHead(status, headers);
        res.end(body);
      }),
    );
  });
  h2 = http2.createServer();
  h2.on("stream", (stream, headers) => {
    seen.push(headers.authorization);
    stream.resume();
    stream.on("end", () => {
      const contentType = String(headers["content-type"]);
      if (contentType.startsWith("application/grpc+") || contentType === "application/grpc") {
        stream.respond(
          { ":status": 200, "content-type": "application/grpc+proto" },
          { waitForTrailers: true },
        );
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        stream.end(Buffer.alloc(5));
        return;
      }
      answer(contentType, (status, h, body) => {
        stream.respond({ ":status": status, ...h });
        stream.end(body);
      });
    });
  });
  await new Promise<void>((resolve) => h1.listen(0, "127.0.0.1", resolve));
  await new Promise<void>((resolve) => h2.listen(0, "127.0.0.1", resolve));
  h1Url = `http://127.0.0.1:${(h1.address() as AddressInfo).port}`;
  h2Url = `http://127.0.0.1:${(h2.address() as AddressInfo).port}`;
});
after(async () => {
  await new Promise<void>((resolve) => h1.close(() => resolve()));
  await new Promise<void>((resolve) => h2.close(() => resolve()));
});

const TOKEN = "Bearer the-launch-token";

/** Unary calls with and without headers (an `authorization` of the caller's) and timeouts. */
async function calls(transport: Transport): Promise<void> {
  const input = create(BytesValueSchema, { value: Uint8Array.of(1) });
  for (const [header, timeoutMs] of [
    [undefined, undefined],
    [undefined, 60_000],
    [{ authorization: "Bearer not-the-token", "x-mine": "1" }, undefined],
    [{ authorization: "Bearer not-the-token" }, 60_000],
  ] as const) {
    await transport.unary(Bench.method.echo, undefined, timeoutMs, header, input);
  }
  // A server stream, with the caller's own header.
  async function* one() {
    yield create(Int64ValueSchema, { value: 0n });
  }
  const res = await transport.stream(
    Bench.method.stream,
    undefined,
    undefined,
    { authorization: "Bearer not-the-token" },
    one(),
  );
  for await (const _ of res.message) void _;
}

const paths: { name: string; protocol: RpcProtocol; h1?: true }[] = [
  { name: "connect over HTTP/2", protocol: "connect" },
  { name: "gRPC over HTTP/2", protocol: "grpc" },
  { name: "gRPC-web over HTTP/2", protocol: "grpc-web" },
  { name: "connect over HTTP/1.1", protocol: "connect", h1: true },
  { name: "gRPC-web over HTTP/1.1", protocol: "grpc-web", h1: true },
];

for (const { name, protocol, h1: overH1 } of paths) {
  test(`callHeaders, ${name}: every call carries exactly the token, interceptors never see it`, async () => {
    const session = overH1 === true ? new H1Pool(h1Url) : new H2Session(h2Url);
    const viewed: (string | null)[] = [];
    const spy: Interceptor = (next) => (req) => {
      viewed.push(req.header.get("authorization"));
      return next(req);
    };
    try {
      const transport = createProtocolTransport(protocol, session, {
        baseUrl: overH1 === true ? h1Url : h2Url,
        interceptors: [spy],
        callHeaders: [["authorization", TOKEN]],
      });
      seen.length = 0;
      await calls(transport);
      assert.deepEqual(seen, [TOKEN, TOKEN, TOKEN, TOKEN, TOKEN], "the token on every call, once");
      const mine = "Bearer not-the-token";
      assert.deepEqual(viewed, [null, null, mine, mine, mine]);
    } finally {
      session.close();
    }
  });
}

for (const protocol of ["connect", "grpc"] as const) {
  test(`callHeaders, ${protocol} over HTTP/2: transports on one path keep their own, the shared headers unchanged`, async () => {
    const session = new H2Session(h2Url);
    try {
      const input = create(BytesValueSchema, { value: Uint8Array.of(1) });
      const of = (callHeaders?: [string, string][]): Transport =>
        createProtocolTransport(protocol, session, {
          baseUrl: h2Url,
          ...(callHeaders !== undefined && { callHeaders }),
        });
      const a = of([["authorization", "Bearer a"]]);
      const b = of([["authorization", "Bearer b"]]);
      const none = of();
      seen.length = 0;
      // Calls without headers of the caller's share one frozen object per path.
      for (const t of [a, b, none, a, none, b]) {
        await t.unary(Bench.method.echo, undefined, undefined, undefined, input);
      }
      assert.deepEqual(seen, [
        "Bearer a",
        "Bearer b",
        undefined,
        "Bearer a",
        undefined,
        "Bearer b",
      ]);
    } finally {
      session.close();
    }
  });
}
