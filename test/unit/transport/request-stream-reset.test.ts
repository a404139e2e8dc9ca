/**
 * A client or bidi stream whose HTTP/2 stream the host resets mid-request
 * (RST_STREAM without END_STREAM, or the connection gone): node:http2 ends
 * a reset stream's readable side too, and the handler must not take that
 * end for a whole request: its read rejects with Aborted (and its signal
 * aborts), on the lean path and on connect-es' handlers (`leanStreams:
 * false`) alike. A real node:http2 client against the real adapter.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { addAbortSignal } from "node:stream";
import { after, before, test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { BytesValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { Bench } from "../../../bench/service.js";
import { createNodeAdapter } from "../../../src/transport/node-adapter.js";
import type { PluginHttpServer } from "../../../src/transport/http-server.js";
import { envelope, listenCounting } from "./command-routes.js";

const PATHS = {
  client: "/bench.v1.BenchService/Collect",
  bidi: "/bench.v1.BenchService/EchoStream",
} as const;

/** What the handlers saw: how each one's request iterator ended ("end", or its error's code). */
interface Seen {
  compat: number;
  inputs: string[];
  started?: () => void;
  /** When set, the handler waits for it after the first message (a slow reader). */
  release?: Promise<void>;
}

/** Reads every request message, recording how the input ended. */
async function readAll(seen: Seen, requests: AsyncIterable<unknown>): Promise<void> {
  try {
    for await (const _ of requests) {
      seen.started?.();
      await seen.release;
    }
    seen.inputs.push("end");
  } catch (e) {
    seen.inputs.push(Code[ConnectError.from(e).code]);
    throw e;
  }
}

function routes(seen: Seen): (router: ConnectRouter) => void {
  return (router) =>
    router.service(Bench, {
      echo: (req) => req,
      async *stream() {},
      async *echoStream(requests) {
        await readAll(seen, requests);
        yield { value: new Uint8Array() };
      },
      async collect(requests) {
        await readAll(seen, requests);
        return { value: 1n };
      },
    });
}

/** The plugin on each path: the lean path, and connect-es' handlers. */
const servers = new Map<
  "lean" | "connect-es",
  { port: number; seen: Seen; server: PluginHttpServer }
>();
before(async () => {
  for (const [name, leanStreams] of [
    ["lean", true],
    ["connect-es", false],
  ] as const) {
    const seen: Seen = { compat: 0, inputs: [] };
    servers.set(
      name,
      await listenCounting(createNodeAdapter({ routes: routes(seen), leanStreams }), seen, true),
    );
  }
});
after(async () => {
  for (const { server } of servers.values()) await server.close();
});

const MESSAGE = Buffer.from(
  envelope(toBinary(BytesValueSchema, create(BytesValueSchema, { value: new Uint8Array([1]) }))),
);

const HEADERS = {
  connect: { "content-type": "application/connect+proto", "connect-protocol-version": "1" },
  grpc: { "content-type": "application/grpc", te: "trailers" },
} as const;

/** How the host goes: a reset without END_STREAM (node's own AbortError: CANCEL), or the connection. */
const CUTS = {
  "RST_STREAM CANCEL": (req: http2.ClientHttp2Stream) => addAbortSignal(AbortSignal.abort(), req),
  "the connection destroyed": (req: http2.ClientHttp2Stream) => req.session?.destroy(),
};

for (const name of ["lean", "connect-es"] as const) {
  for (const protocol of ["connect", "grpc"] as const) {
    for (const [kind, path] of Object.entries(PATHS)) {
      for (const [cutName, cut] of Object.entries(CUTS)) {
        for (const slow of [false, true]) {
          const reader = slow ? ", the handler reading the rest after it" : "";
          test(`${name}, ${protocol} ${kind} stream, ${cutName} mid-request${reader}: the handler's read rejects with Aborted`, async () => {
            const { port, seen } = servers.get(name) ?? assert.fail("no server");
            const count = seen.inputs.length;
            const session = http2.connect(`http://127.0.0.1:${port}`);
            session.on("error", () => {});
            const started = new Promise<void>((resolve) => (seen.started = resolve));
            let release = (): void => {};
            seen.release = slow ? new Promise<void>((resolve) => (release = resolve)) : undefined;
            const req = session.request({ ":method": "POST", ":path": path, ...HEADERS[protocol] });
            req.on("error", () => {});
            req.on("data", () => {});
            // A slow reader has the 2nd and 3rd messages queued unread when the host goes.
            req.write(slow ? Buffer.concat([MESSAGE, MESSAGE, MESSAGE]) : MESSAGE);
            await started;
            if (slow) await new Promise((r) => setTimeout(r, 50));
            cut(req);
            if (slow) {
              await new Promise((r) => setTimeout(r, 50));
              release();
            }
            for (const end = Date.now() + 3000; seen.inputs.length === count;) {
              if (Date.now() > end) assert.fail("the handler's read never ended");
              await new Promise((r) => setTimeout(r, 5));
            }
            session.destroy();
            assert.deepEqual(seen.inputs.slice(count), ["Aborted"]);
          });
        }
      }
    }
  }
}
