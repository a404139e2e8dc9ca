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
import {
  commandRoutes,
  listenAdapter,
  rawExchange,
  request,
  type HandlerSeen,
  type Protocol,
} from "./command-routes.js";

const PATH = "/bench.v1.BenchService/Echo";
const CALLS = 3;

let server: http2.Http2Server;
let session: http2.ClientHttp2Session;
const seen: HandlerSeen = { lean: 0, reference: 0, aborted: [] };
before(async () => {
  let url: string;
  ({ server, url } = await listenAdapter({ routes: commandRoutes(seen, 1 << 20), lean: true }));
  session = http2.connect(url);
  session.on("error", () => {});
});
after(() => {
  session.close();
  server.close();
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
