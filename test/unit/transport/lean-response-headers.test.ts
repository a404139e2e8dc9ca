/**
 * The lean path's response header and trailer (lazy-response-headers.ts):
 * a call whose handler leaves them alone makes no fetch `Headers` for them
 * (two per call before, docs/http2-server.md, session 23), while a
 * handler still sees `Headers` (lean-unary.test.ts compares the wire and
 * `instanceof` with connect-es' answers).
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { after, before, test } from "node:test";
import type { PluginHttpServer } from "../../../src/transport/http-server.js";
import { createNodeAdapter } from "../../../src/transport/node-adapter.js";
import {
  commandRoutes,
  envelope,
  listenAdapter,
  listenCounting,
  rawExchange,
  request,
  type HandlerSeen,
  type Protocol,
} from "./command-routes.js";

const PATH = "/bench.v1.BenchService/Echo";
const STREAM = "/bench.v1.BenchService/Stream";
/** A server stream's request (an empty Int64Value) for each protocol. */
const streamRequest: Record<Protocol, http2.OutgoingHttpHeaders> = {
  connect: { "content-type": "application/connect+proto", "connect-protocol-version": "1" },
  grpc: { "content-type": "application/grpc", te: "trailers" },
  "grpc-web": { "content-type": "application/grpc-web+proto" },
};
const CALLS = 3;

let server: http2.Http2Server;
let session: http2.ClientHttp2Session;
const seen: HandlerSeen = { lean: 0, reference: 0, aborted: [] };
/**
 * The plugin's own server (PluginHttpServer, streams claimed from the bare
 * stream, as serve() runs it): the lean stream path is taken only there.
 */
let claimed: PluginHttpServer;
let claimedSession: http2.ClientHttp2Session;
const claimedSeen = { lean: 0, reference: 0, aborted: [], compat: 0 };
before(async () => {
  let url: string;
  ({ server, url } = await listenAdapter({ routes: commandRoutes(seen, 1 << 20), lean: true }));
  session = http2.connect(url);
  session.on("error", () => {});
  const adapter = createNodeAdapter({ routes: commandRoutes(claimedSeen, 1 << 20), lean: true });
  let port: number;
  ({ server: claimed, port } = await listenCounting(adapter, claimedSeen, true));
  claimedSession = http2.connect(`http://127.0.0.1:${port}`);
  claimedSession.on("error", () => {});
});
after(async () => {
  session.close();
  server.close();
  claimedSession.close();
  await claimed.close();
});

/**
 * How many `new Headers(...)` ran (through the global, as the context made
 * its response header and trailer) while `run` ran.
 */
async function headersMade(run: () => Promise<void>): Promise<number> {
  const Real = globalThis.Headers;
  let made = 0;
  globalThis.Headers = class extends Real {
    constructor(init?: ConstructorParameters<typeof Headers>[0]) {
      super(init);
      made++;
    }
  };
  try {
    await run();
  } finally {
    globalThis.Headers = Real;
  }
  return made;
}

for (const protocol of ["connect", "grpc", "grpc-web"] as Protocol[]) {
  test(`${protocol}: a lean call whose handler leaves its response headers alone makes no Headers`, async () => {
    const lean = seen.lean;
    const made = await headersMade(async () => {
      for (let i = 0; i < CALLS; i++) {
        const x = await rawExchange(session, PATH, ...request(protocol, "echo me"));
        assert.equal(x.status, 200);
      }
    });
    assert.equal(seen.lean - lean, CALLS, "the lean path ran them");
    assert.equal(made, 0);
  });

  test(`${protocol}: a handler that sets them gets them on the wire`, async () => {
    const x = await rawExchange(session, PATH, ...request(protocol, "ok"));
    assert.equal(x.headers["x-answer"], "yes");
    assert.equal(x.headers["x-many"], "1, 2");
  });
}

for (const protocol of ["connect", "grpc", "grpc-web"] as Protocol[]) {
  // The plugin's server, unary (sendOnStream) and server stream (the
  // stream handler's own writers, stream-handler.ts): none made either.
  // connect-es' handler, had it served a call, would have made its own
  // through the global (a request Headers and the context's two).
  test(`${protocol}: on the plugin's server, lean unary calls and server streams that leave their response headers alone make no Headers`, async () => {
    const compat = claimedSeen.compat;
    const lean = claimedSeen.lean;
    const made = await headersMade(async () => {
      for (let i = 0; i < CALLS; i++) {
        const x = await rawExchange(claimedSession, PATH, ...request(protocol, "echo me"));
        assert.equal(x.status, 200);
        const s = await rawExchange(
          claimedSession,
          STREAM,
          streamRequest[protocol],
          envelope(new Uint8Array(0)),
        );
        assert.equal(s.status, 200);
        if (protocol === "grpc") assert.equal(s.trailers?.["grpc-status"], "0");
      }
    });
    assert.equal(claimedSeen.compat - compat, 0, "every call taken from the bare stream");
    assert.equal(claimedSeen.lean - lean, CALLS, "the lean path ran the unary calls");
    assert.equal(made, 0);
  });
}
