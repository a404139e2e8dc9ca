/**
 * The call semantics matrix, run against every transport the host can use:
 * framed over a unix socket, framed over mutual TLS, Connect over HTTP/2
 * (the fallback), and the direct in-process transport. Each one is driven
 * through createClient(), as PluginClient does, against the same service.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { StringValueSchema } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  createClient,
  type ConnectRouter,
  type HandlerContext,
  type Interceptor,
} from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  GetResponseSchema,
  KV,
  type GetRequest,
  type PutRequest,
  type WatchRequest,
} from "../examples/kv/gen/example/kv/v1/kv_pb.js";
import { createSocketTransport, type ClientTransport } from "../src/transport/client-transport.js";
import { createDirectTransport } from "../src/transport/direct.js";
import { createFramedTransport } from "../src/transport/framed/client.js";
import { FramedServer, type FramedTls } from "../src/transport/framed/server.js";
import { PluginHttpServer } from "../src/transport/http-server.js";
import { decode, encode, makeTestPki } from "./helpers.js";

/** What the server saw, for the assertions about cancellation and deadlines. */
const seen: string[] = [];
const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    });
  });
const value = (s: string) => create(GetResponseSchema, { found: true, value: encode(s) });

const routes = (router: ConnectRouter): void => {
  router.service(KV, {
    async get(req: GetRequest, ctx: HandlerContext) {
      switch (req.key) {
        case "headers":
          ctx.responseHeader.set("x-echo", ctx.requestHeader.get("x-echo") ?? "");
          ctx.responseTrailer.set("x-trailer", "t");
          return value("h");
        case "timeout":
          return value(String(ctx.timeoutMs() ?? -1));
        case "slow":
          ctx.signal.addEventListener("abort", () =>
            seen.push(`slow aborted: ${ConnectError.from(ctx.signal.reason).code}`),
          );
          await sleep(5_000, ctx.signal);
          return value("late");
        case "fail": {
          const error = new ConnectError("no such key: fail", Code.NotFound, { "x-reason": "r" });
          error.details.push({ desc: StringValueSchema, value: { value: "detail" } });
          throw error;
        }
        case "throw":
          throw new Error("plain error");
        default:
          return value(`v:${req.key}`);
      }
    },
    put: () => ({}),
    async *watch(req: WatchRequest, ctx: HandlerContext) {
      ctx.responseHeader.set("x-stream", "1");
      ctx.signal.addEventListener("abort", () => seen.push(`watch ${req.key} aborted`));
      try {
        for (let i = 0; ; i++) {
          if (req.key === "finite" && i === 3) return;
          if (req.key === "fail-after-2" && i === 2) {
            throw new ConnectError("stream broke", Code.DataLoss);
          }
          yield { key: req.key, value: encode(String(i)) };
          await new Promise((r) => setImmediate(r));
        }
      } finally {
        seen.push(`watch ${req.key} ended, aborted=${ctx.signal.aborted}`);
      }
    },
    async putMany(requests: AsyncIterable<PutRequest>) {
      let count = 0;
      for await (const _ of requests) count++;
      return { count };
    },
    async *exchange(requests: AsyncIterable<GetRequest>) {
      for await (const req of requests) yield value(`echo:${req.key}`);
    },
  });
};

interface Setup {
  transport: ClientTransport;
  stop: () => Promise<void>;
}

/**
 * An interceptor like the host's: it sees every call, and adds a header.
 * With "x-spread", it passes a copy of the request on ({...req}), which the
 * local transports must handle (their requests keep `signal` lazily, on the
 * prototype, so a copy has none; see lazy-abort.ts).
 */
const hostInterceptor: Interceptor = (next) => (req) => {
  req.header.set("x-echo", req.header.get("x-echo") ?? "from-interceptor");
  return next(req.header.has("x-spread") ? { ...req } : req);
};

/** The same on the plugin side: with "x-spread", the handler gets a copy of the request. */
const serverInterceptor: Interceptor = (next) => (req) =>
  next(req.header.has("x-spread") ? { ...req, header: new Headers(req.header) } : req);

let dir: string;
let tls: { ca: string; server: FramedTls; clientCert: string; clientKey: string };
before(() => {
  dir = makeTestPki("cpt-");
  const read = (f: string): string => readFileSync(join(dir, f), "utf8");
  tls = {
    ca: read("ca.crt"),
    server: { cert: read("server.crt"), key: read("server.key"), clientCa: read("ca.crt") },
    clientCert: read("client.crt"),
    clientKey: read("client.key"),
  };
});

const setups: Array<[string, () => Promise<Setup>]> = [
  [
    "framed over a unix socket",
    async () => {
      const path = join(dir, `f${Math.random().toString(36).slice(2, 8)}.sock`);
      const server = await FramedServer.listen(
        routes,
        { network: "unix", path },
        { interceptors: [serverInterceptor] },
      );
      const transport = createFramedTransport(
        { network: "unix", address: path },
        { interceptors: [hostInterceptor] },
      );
      return { transport, stop: () => (transport.close(), server.close()) };
    },
  ],
  [
    "framed over mutual TLS",
    async () => {
      const path = join(dir, `t${Math.random().toString(36).slice(2, 8)}.sock`);
      const server = await FramedServer.listen(
        routes,
        { network: "unix", path },
        { tls: tls.server, interceptors: [serverInterceptor] },
      );
      const transport = createFramedTransport(
        { network: "unix", address: path },
        {
          interceptors: [hostInterceptor],
          tls: { ca: tls.ca, cert: tls.clientCert, key: tls.clientKey },
        },
      );
      return { transport, stop: () => (transport.close(), server.close()) };
    },
  ],
  [
    "Connect over HTTP/2",
    async () => {
      const path = join(dir, `h${Math.random().toString(36).slice(2, 8)}.sock`);
      const server = await PluginHttpServer.listen(
        connectNodeAdapter({ routes, interceptors: [serverInterceptor] }),
        { network: "unix", path },
        { acceptHttp1: false },
      );
      const transport = createSocketTransport(
        { network: "unix", address: path },
        { interceptors: [hostInterceptor] },
      );
      return { transport, stop: () => (transport.close(), server.close()) };
    },
  ],
  [
    "direct in process",
    async () => {
      const transport = createDirectTransport(
        { routes, routerOptions: { interceptors: [serverInterceptor] } },
        { interceptors: [hostInterceptor] },
      );
      return { transport, stop: async () => {} };
    },
  ],
];

for (const [name, setup] of setups) {
  describe(`transport: ${name}`, () => {
    let s: Setup;
    let kv: ReturnType<typeof createClient<typeof KV>>;
    before(async () => {
      s = await setup();
      kv = createClient(KV, s.transport.transport);
    });
    after(() => s.stop());

    test("unary with request headers, response headers and trailers", async () => {
      let header: Headers | undefined;
      let trailer: Headers | undefined;
      const res = await kv.get(
        { key: "headers" },
        {
          headers: { "x-echo": "ping" },
          onHeader: (h) => (header = h),
          onTrailer: (t) => (trailer = t),
        },
      );
      assert.equal(decode(res.value), "h");
      assert.equal(header?.get("x-echo"), "ping");
      assert.equal(trailer?.get("x-trailer"), "t");
    });

    test("host interceptors run and their headers reach the plugin", async () => {
      let header: Headers | undefined;
      await kv.get({ key: "headers" }, { onHeader: (h) => (header = h) });
      assert.equal(header?.get("x-echo"), "from-interceptor");
    });

    test("server streaming, with response headers", async () => {
      let header: Headers | undefined;
      const got: string[] = [];
      for await (const e of kv.watch({ key: "finite" }, { onHeader: (h) => (header = h) })) {
        got.push(decode(e.value));
      }
      assert.deepEqual(got, ["0", "1", "2"]);
      assert.equal(header?.get("x-stream"), "1");
    });

    test("an error in the middle of a server stream", async () => {
      const got: string[] = [];
      await assert.rejects(
        (async () => {
          for await (const e of kv.watch({ key: "fail-after-2" })) got.push(decode(e.value));
        })(),
        (e: unknown) => {
          const ce = ConnectError.from(e);
          return ce.code === Code.DataLoss && ce.rawMessage === "stream broke";
        },
      );
      assert.deepEqual(got, ["0", "1"]);
    });

    test("client streaming", async () => {
      const res = await kv.putMany(
        (async function* () {
          for (let i = 0; i < 500; i++) yield { key: `k${i}`, value: encode("x") };
        })(),
      );
      assert.equal(res.count, 500);
    });

    test("bidi streaming, each request sent after the previous answer", async () => {
      const answers: string[] = [];
      let answered: () => void = () => {};
      const requests = (async function* () {
        for (const key of ["a", "b", "c"]) {
          const next = new Promise<void>((r) => (answered = r));
          yield { key };
          await next;
        }
      })();
      for await (const res of kv.exchange(requests)) {
        answers.push(decode(res.value));
        answered();
      }
      assert.deepEqual(answers, ["echo:a", "echo:b", "echo:c"]);
    });

    test("errors keep code, message, metadata and details", async () => {
      await assert.rejects(kv.get({ key: "fail" }), (e: unknown) => {
        const ce = ConnectError.from(e);
        const details = ce.findDetails(StringValueSchema);
        assert.equal(ce.code, Code.NotFound);
        assert.equal(ce.rawMessage, "no such key: fail");
        assert.equal(ce.metadata.get("x-reason"), "r");
        assert.deepEqual(
          details.map((d) => d.value),
          ["detail"],
        );
        return true;
      });
    });

    test("a plain exception becomes Internal, its message hidden (as connect-node does)", async () => {
      await assert.rejects(kv.get({ key: "throw" }), (e: unknown) => {
        const ce = ConnectError.from(e);
        return ce.code === Code.Internal && ce.rawMessage === "internal error";
      });
    });

    test("the deadline reaches the plugin, and a late call fails with DeadlineExceeded", async () => {
      const res = await kv.get({ key: "timeout" }, { timeoutMs: 5_000 });
      const left = Number(decode(res.value));
      assert.ok(left > 0 && left <= 5_000, `plugin saw ${left} ms left`);
      seen.length = 0;
      await assert.rejects(kv.get({ key: "slow" }, { timeoutMs: 100 }), (e: unknown) => {
        return ConnectError.from(e).code === Code.DeadlineExceeded;
      });
      await waitUntil(() => seen.some((s) => s.startsWith("slow aborted")));
    });

    test("cancellation fails the call with Canceled and aborts the handler", async () => {
      seen.length = 0;
      const abort = new AbortController();
      const call = kv.get({ key: "slow" }, { signal: abort.signal });
      setTimeout(() => abort.abort(), 50);
      await assert.rejects(call, (e: unknown) => ConnectError.from(e).code === Code.Canceled);
      await waitUntil(() => seen.includes(`slow aborted: ${Code.Canceled}`));
    });

    test("interceptors that copy the request keep deadlines, cancellation and headers", async () => {
      const spread = { "x-spread": "1" };
      let header: Headers | undefined;
      await kv.get(
        { key: "headers" },
        { headers: { ...spread, "x-echo": "copied" }, onHeader: (h) => (header = h) },
      );
      assert.equal(header?.get("x-echo"), "copied");
      const res = await kv.get({ key: "timeout" }, { timeoutMs: 5_000, headers: spread });
      const left = Number(decode(res.value));
      assert.ok(left > 0 && left <= 5_000, `plugin saw ${left} ms left`);
      seen.length = 0;
      await assert.rejects(
        kv.get({ key: "slow" }, { timeoutMs: 100, headers: spread }),
        (e: unknown) => ConnectError.from(e).code === Code.DeadlineExceeded,
      );
      await waitUntil(() => seen.some((s) => s.startsWith("slow aborted")));
      seen.length = 0;
      const abort = new AbortController();
      const call = kv.get({ key: "slow" }, { signal: abort.signal, headers: spread });
      setTimeout(() => abort.abort(), 50);
      await assert.rejects(call, (e: unknown) => ConnectError.from(e).code === Code.Canceled);
      await waitUntil(() => seen.includes(`slow aborted: ${Code.Canceled}`));
    });

    test("cancelling a server stream aborts the handler", async () => {
      seen.length = 0;
      const abort = new AbortController();
      let n = 0;
      await assert.rejects(
        (async () => {
          for await (const _ of kv.watch({ key: "endless" }, { signal: abort.signal })) {
            if (++n === 5) abort.abort();
          }
        })(),
        (e: unknown) => ConnectError.from(e).code === Code.Canceled,
      );
      assert.equal(n, 5);
      await waitUntil(() => seen.includes("watch endless aborted"));
    });

    test("many concurrent calls are each answered once", async () => {
      const keys = Array.from({ length: 200 }, (_, i) => `c${i}`);
      const res = await Promise.all(keys.map((key) => kv.get({ key })));
      assert.deepEqual(
        res.map((r) => decode(r.value)),
        keys.map((k) => `v:${k}`),
      );
    });

    test("a 1 MiB message goes through intact", async () => {
      const big = new Uint8Array(1024 * 1024).map((_, i) => i % 251);
      const res = await kv.putMany(
        (async function* () {
          yield { key: "big", value: big };
        })(),
      );
      assert.equal(res.count, 1);
    });
  });
}

describe("framed transport failures", () => {
  test("a method the plugin does not have is Unimplemented", async () => {
    const path = join(dir, "u.sock");
    const server = await FramedServer.listen(() => {}, { network: "unix", path });
    const transport = createFramedTransport({ network: "unix", address: path });
    try {
      await assert.rejects(
        createClient(KV, transport.transport).get({ key: "x" }),
        (e: unknown) => {
          const ce = ConnectError.from(e);
          return (
            ce.code === Code.Unimplemented &&
            /no method \/example.kv.v1.KV\/Get/.test(ce.rawMessage)
          );
        },
      );
    } finally {
      transport.close();
      await server.close();
    }
  });

  test("a TLS client without a certificate is refused, as Unavailable", async () => {
    const path = join(dir, "n.sock");
    const server = await FramedServer.listen(
      routes,
      { network: "unix", path },
      { tls: tls.server },
    );
    const transport = createFramedTransport(
      { network: "unix", address: path },
      { tls: { ca: tls.ca } },
    );
    try {
      await assert.rejects(
        createClient(KV, transport.transport).get({ key: "x" }),
        (e: unknown) => {
          const ce = ConnectError.from(e);
          assert.equal(ce.code, Code.Unavailable);
          assert.match(
            ce.rawMessage,
            /connection to the plugin failed|the plugin closed the connection/,
          );
          return true;
        },
      );
      assert.equal(transport.isBroken(), true);
    } finally {
      transport.close();
      await server.close();
    }
  });

  test("calls in flight fail with Unavailable when the server goes away", async () => {
    const path = join(dir, "g.sock");
    const server = await FramedServer.listen(routes, { network: "unix", path });
    const transport = createFramedTransport({ network: "unix", address: path });
    const kv = createClient(KV, transport.transport);
    const call = assert.rejects(kv.get({ key: "slow" }), (e: unknown) => {
      const ce = ConnectError.from(e);
      return ce.code === Code.Unavailable && ce.rawMessage === "the plugin closed the connection";
    });
    await new Promise((r) => setTimeout(r, 50));
    await server.close(0);
    await call;
    await assert.rejects(
      kv.get({ key: "x" }),
      (e: unknown) => ConnectError.from(e).code === Code.Unavailable,
    );
    transport.close();
  });
});

async function waitUntil(cond: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end)
      assert.fail(`condition not met within ${ms} ms; server saw ${JSON.stringify(seen)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
