/**
 * The lean unary path (H2Target on the CallRunner) against connect-es' own
 * Connect, gRPC and gRPC-web transports (createTransport over the same kind of HTTP/2
 * session), on the same real servers: every answer, success or failure,
 * must come out the same (message, code, message text, details, metadata).
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { BytesValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter, type Transport } from "@connectrpc/connect";
import { createH2Transport } from "../../../src/transport/client-transport.js";
import { createH2Client } from "../../../src/transport/h2-client.js";
import { H2Session } from "../../../src/transport/h2-session.js";
import { createNodeAdapter } from "../../../src/transport/node-adapter.js";
import { createProtocolTransport } from "../../../src/transport/protocol-transport.js";
import { Bench } from "../../../bench/service.js";
import { errorView, pairs } from "./call-views.js";
import { DETAIL, scenarios, startWireServer, type WireServer } from "./h2-wire-server.js";

const READ_MAX = 200;

/** What a caller can observe of a unary call's outcome. */
async function observe(
  transport: Transport,
  header: Record<string, string>,
  timeoutMs?: number,
): Promise<unknown> {
  try {
    const res = await transport.unary(Bench.method.echo, undefined, timeoutMs, header, {
      value: new Uint8Array([1]),
    });
    return {
      message: [...res.message.value],
      header: pairs(res.header),
      trailer: pairs(res.trailer),
    };
  } catch (e) {
    return errorView(e);
  }
}

interface Pair {
  readonly lean: Transport;
  readonly reference: Transport;
  close(): void;
}

function pair(url: string, protocol: "connect" | "grpc" | "grpc-web"): Pair {
  const lean = createH2Transport(url, {}, { protocol, readMaxBytes: READ_MAX });
  const session = new H2Session(url);
  const reference = createProtocolTransport(protocol, createH2Client(session), {
    baseUrl: url,
    readMaxBytes: READ_MAX,
  });
  return {
    lean: lean.transport,
    reference,
    close: () => {
      lean.close();
      session.close();
    },
  };
}

describe("lean unary path = connect-es' transport, hand-made wire answers", () => {
  let server: WireServer;
  before(async () => (server = await startWireServer()));
  after(() => server.close());

  for (const protocol of ["connect", "grpc", "grpc-web"] as const) {
    const prefix = protocol === "grpc-web" ? "web-" : `${protocol}-`;
    const names = Object.keys(scenarios).filter(
      (n) => n.startsWith(prefix) || n.startsWith("break-"),
    );
    for (const name of names) {
      test(`${protocol}: ${name}`, async () => {
        const p = pair(server.url, protocol);
        try {
          const lean = await observe(p.lean, { "x-scenario": name });
          const reference = await observe(p.reference, { "x-scenario": name });
          assert.deepEqual(lean, reference);
          if (name.endsWith("-ok")) assert.ok("message" in (lean as object), "a success");
        } finally {
          p.close();
        }
      });
    }
    for (const scenario of ["hang", "headers-hang"]) {
      test(`${protocol}: deadline on a server that never answers (${scenario})`, async () => {
        const p = pair(server.url, protocol);
        try {
          const lean = await observe(p.lean, { "x-scenario": scenario }, 100);
          const reference = await observe(p.reference, { "x-scenario": scenario }, 100);
          assert.deepEqual(lean, reference);
          assert.equal((lean as { code: string }).code, "DeadlineExceeded");
        } finally {
          p.close();
        }
      });
    }
  }
});

describe("lean unary path = connect-es' transport, a real Connect server", () => {
  let server: http2.Http2Server;
  let url: string;
  before(async () => {
    const routes = (router: ConnectRouter): void => {
      router.service(Bench, {
        async echo(req, ctx) {
          ctx.responseHeader.set("x-head", "h1");
          ctx.responseTrailer.set("x-tail", "t1");
          switch (ctx.requestHeader.get("x-real")) {
            case "error":
              throw new ConnectError(
                "bad input ✗ 100% a/b",
                Code.FailedPrecondition,
                { "x-meta": "m1" },
                [{ desc: BytesValueSchema, value: DETAIL }],
              );
            case "slow":
              await new Promise((r) => setTimeout(r, 2_000).unref());
              return req;
            case "big":
              return create(BytesValueSchema, { value: new Uint8Array(READ_MAX * 2) });
            default:
              return req;
          }
        },
        async *stream() {},
      });
    };
    server = http2.createServer(createNodeAdapter({ routes }));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  for (const protocol of ["connect", "grpc", "grpc-web"] as const) {
    for (const [name, timeoutMs] of [
      ["ok", undefined],
      ["error", undefined],
      ["big", undefined],
      ["slow", 100],
    ] as const) {
      test(`${protocol}: ${name}`, async () => {
        const p = pair(url, protocol);
        try {
          const lean = await observe(p.lean, { "x-real": name }, timeoutMs);
          const reference = await observe(p.reference, { "x-real": name }, timeoutMs);
          assert.deepEqual(lean, reference);
        } finally {
          p.close();
        }
      });
    }
  }
});
