/**
 * The same typed client, the same calls and the same semantics in all three
 * locations: subprocess (framed, and HTTP/2 only), remote (network mode over
 * Connect, gRPC and gRPC-web on HTTP/2, Connect and gRPC-web on HTTP/1.1, and the
 * framed protocol negotiated on the same port, in cleartext and over mutual
 * TLS, where ALPN picks it) and in process.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { PluginClient, PluginError, cluster, silentLogger, staticEndpoints } from "../src/index.js";
import { inProcess, remote, type PluginSource } from "../src/index.js";
import { KV, handshake } from "../examples/kv/shared.js";
import { PutRequestSchema } from "../examples/kv/gen/example/kv/v1/kv_pb.js";

import { faultyKvDefinition } from "./fixtures/faulty-kv.js";
import {
  decode,
  encode,
  fixture,
  startNetworkPlugin,
  kvClient,
  makeTestPki,
  waitFor,
} from "./helpers.js";

const pki = makeTestPki("locations-tls-");
const pem = (name: string): Buffer => readFileSync(join(pki, name));
let network: Awaited<ReturnType<typeof startNetworkPlugin>>;
let networkTls: Awaited<ReturnType<typeof startNetworkPlugin>>;
before(async () => {
  network = await startNetworkPlugin();
  networkTls = await startNetworkPlugin("kv", {
    CONNECT_PLUGIN_TLS_CERT_FILE: join(pki, "server.crt"),
    CONNECT_PLUGIN_TLS_KEY_FILE: join(pki, "server.key"),
    CONNECT_PLUGIN_TLS_CLIENT_CA_FILE: join(pki, "ca.crt"),
  });
});
after(async () => {
  await network.stop();
  await networkTls.stop();
});

/**
 * `connectEs`: the plugin's unary handlers run in connect-es' own handler
 * (its HandlerContext, with connect-es' internals), not in one of ours
 * (gRPC-web and HTTP/1.1 unary calls take the plugin's lean path since
 * session 22).
 */
const locations: Array<[string, () => PluginSource, { bidi: boolean; connectEs?: boolean }]> = [
  ["subprocess", () => fixture("kv"), { bidi: true }],
  // A subprocess that speaks only HTTP/2 (as plugins in other languages do).
  [
    "subprocess over Connect on HTTP/2",
    () => fixture("kv", {}, { transports: ["connect"] }),
    { bidi: true },
  ],
  ["remote over HTTP/2", () => remote(network.url, { transport: "http" }), { bidi: true }],
  ["remote over gRPC on HTTP/2", () => remote(network.url, { protocol: "grpc" }), { bidi: true }],
  [
    "remote over gRPC-web on HTTP/2",
    () => remote(network.url, { protocol: "grpc-web" }),
    { bidi: true },
  ],
  [
    "remote over HTTP/2 with mutual TLS",
    () =>
      remote(networkTls.url, {
        transport: "http",
        tls: { ca: pem("ca.crt"), cert: pem("client.crt"), key: pem("client.key") },
      }),
    { bidi: true },
  ],
  [
    "remote over gRPC-web on HTTP/1.1",
    () => remote(network.url, { protocol: "grpc-web", httpVersion: "1.1" }),
    { bidi: false },
  ],
  // The default for a connect-plugin server in network mode: framed, negotiated on its port.
  ["remote over framed", () => remote(network.url, { transport: "framed" }), { bidi: true }],
  [
    "remote over framed with mutual TLS",
    () =>
      remote(networkTls.url, {
        transport: "framed",
        tls: { ca: pem("ca.crt"), cert: pem("client.crt"), key: pem("client.key") },
      }),
    { bidi: true },
  ],
  // Bidirectional streaming needs HTTP/2; HTTP/1.1 carries the rest.
  ["remote over HTTP/1.1", () => remote(network.url, { httpVersion: "1.1" }), { bidi: false }],
  ["in process", () => inProcess(faultyKvDefinition()), { bidi: true }],
  // Copies every message through its wire form, as a subprocess would.
  [
    "in process, serialize mode",
    () => inProcess(faultyKvDefinition(), { mode: "serialize" }),
    { bidi: true, connectEs: true },
  ],
];

for (const [where, source, { bidi, connectEs = false }] of locations) {
  describe(`KV plugin ${where}`, () => {
    let client: PluginClient<{ kv: typeof KV }>;
    before(async () => {
      client = kvClient(source());
      await client.start();
    });
    after(() => client.close());

    test("handshake reports version and plugins", () => {
      assert.equal(client.protocolVersion, 1);
      assert.deepEqual(client.availablePlugins, [
        { name: "kv", version: "0.0.1-test", capabilities: [], service: "example.kv.v1.KV" },
      ]);
    });

    test("unary calls", async () => {
      const kv = client.dispense("kv");
      await kv.put({ key: "k", value: encode(`v-${where}`) });
      const res = await kv.get({ key: "k" });
      assert.equal(res.found, true);
      assert.equal(decode(res.value), `v-${where}`);
      assert.equal((await kv.get({ key: "absent" })).found, false);
    });

    test("server streaming", async () => {
      const kv = client.dispense("kv");
      const abort = new AbortController();
      const key = `watch-${where}`;
      const seen: string[] = [];
      let ready!: () => void;
      const registered = new Promise<void>((r) => (ready = r));
      const watching = (async () => {
        try {
          for await (const e of kv.watch({ key }, { signal: abort.signal })) {
            seen.push(decode(e.value));
            if (seen.length === 1) ready();
            if (seen.length === 3) abort.abort();
          }
        } catch (e) {
          assert.equal(ConnectError.from(e).code, Code.Canceled);
        }
      })();
      await registered;
      await kv.put({ key, value: encode("1") });
      await kv.put({ key, value: encode("2") });
      await watching;
      assert.deepEqual(seen, ["", "1", "2"]);
    });

    test("leaving a server stream early (break) cancels it in the plugin", async () => {
      const kv = client.dispense("kv");
      const key = `mark:${where}`;
      for await (const e of kv.watch({ key })) {
        assert.equal(e.key, key);
        break;
      }
      // Before: the watch ran on until the plugin ended it (never).
      await waitFor("the plugin's watch handler to see its cancel", async () => {
        return (await kv.get({ key: `cancelled:${key}` })).found;
      });
    });

    test("leaving a server stream early (break) runs the plugin handler's finally", async () => {
      const kv = client.dispense("kv");
      const key = `mark:finally:${where}`;
      for await (const _ of kv.watch({ key })) break;
      await waitFor("the plugin's watch handler to run its finally", async () => {
        return (await kv.get({ key: `finally:${key}` })).found;
      });
      assert.equal((await kv.get({ key: `cancelled:${key}` })).found, true);
    });

    test(
      "leaving a bidi stream early (break) cancels it in the plugin and runs its finally",
      { skip: !bidi && "HTTP/1.1 cannot carry bidi streams" },
      async () => {
        const kv = client.dispense("kv");
        const key = `mark:bidi:${where}`;
        let release!: () => void;
        const released = new Promise<void>((r) => (release = r));
        try {
          for await (const res of kv.exchange(
            (async function* () {
              yield { key };
              // The request side stays open: only the break ends the call.
              await released;
            })(),
          )) {
            assert.equal(res.found, false);
            break;
          }
          await waitFor("the plugin's exchange handler to see its cancel", async () => {
            return (await kv.get({ key: `cancelled:${key}` })).found;
          });
          await waitFor("the plugin's exchange handler to run its finally", async () => {
            return (await kv.get({ key: `finally:${key}` })).found;
          });
        } finally {
          release();
        }
      },
    );

    test("return() before a server stream is read cancels it, and no rejection goes unhandled", async () => {
      const kv = client.dispense("kv");
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
      process.on("unhandledRejection", onUnhandled);
      try {
        const it = kv.watch({ key: `return:${where}` })[Symbol.asyncIterator]();
        assert.deepEqual(await it.return?.(), { done: true, value: undefined });
        assert.deepEqual(await it.next(), { done: true, value: undefined });
        // The cancel reaches the call's promise within a few turns of the loop.
        for (let i = 0; i < 5; i++) await new Promise(setImmediate);
      } finally {
        process.off("unhandledRejection", onUnhandled);
      }
      assert.deepEqual(unhandled.map(String), []);
    });

    test("client streaming", async () => {
      const kv = client.dispense("kv");
      const res = await kv.putMany(
        (async function* () {
          for (let i = 0; i < 100; i++) yield { key: `m${i}`, value: encode(String(i)) };
        })(),
      );
      assert.equal(res.count, 100);
      assert.equal(decode((await kv.get({ key: "m99" })).value), "99");
    });

    test("bidi streaming", { skip: !bidi && "HTTP/1.1 cannot carry bidi streams" }, async () => {
      const kv = client.dispense("kv");
      await kv.put({ key: "b1", value: encode("one") });
      const out: string[] = [];
      for await (const res of kv.exchange(
        (async function* () {
          yield { key: "b1" };
          yield { key: "nope" };
        })(),
      )) {
        out.push(res.found ? decode(res.value) : "-");
      }
      assert.deepEqual(out, ["one", "-"]);
    });

    test("errors keep their code, message and metadata", async () => {
      const kv = client.dispense("kv");
      await assert.rejects(kv.get({ key: "fail" }), (e: unknown) => {
        const ce = ConnectError.from(e);
        return (
          ce.code === Code.NotFound &&
          ce.rawMessage === "no such key: fail" &&
          ce.metadata.get("x-reason") === "fixture"
        );
      });
    });

    // In process nothing is serialized: the handler's object reaches the caller as it is.
    const serialized = where !== "in process" || "nothing is serialized in process";
    test(
      "a response the handler cannot serialize fails Internal 'serialize binary'",
      { skip: serialized !== true && serialized },
      async () => {
        const kv = client.dispense("kv");
        await assert.rejects(kv.get({ key: "unserializable" }), (e: unknown) => {
          const ce = ConnectError.from(e);
          assert.equal(ce.code, Code.Internal, ce.message);
          assert.match(ce.rawMessage, /^serialize binary: .*value/);
          return true;
        });
      },
    );

    test(
      "a request that cannot be serialized fails Internal 'serialize binary' before it is sent",
      { skip: serialized !== true && serialized },
      async () => {
        const kv = client.dispense("kv");
        const request = Object.assign(create(PutRequestSchema, { key: "never-sent" }), {
          value: "not bytes" as unknown as Uint8Array,
        });
        await assert.rejects(kv.put(request), (e: unknown) => {
          const ce = ConnectError.from(e);
          assert.equal(ce.code, Code.Internal, ce.message);
          assert.match(ce.rawMessage, /^serialize binary: .*value/);
          return true;
        });
        assert.equal((await kv.get({ key: "never-sent" })).found, false);
      },
    );

    test("headers and trailers travel both ways", async () => {
      const kv = client.dispense("kv");
      let header: Headers | undefined;
      let trailer: Headers | undefined;
      await kv.get(
        { key: "headers" },
        {
          headers: { "x-echo": "ping" },
          onHeader: (h) => (header = h),
          onTrailer: (t) => (trailer = t),
        },
      );
      assert.equal(header?.get("x-echo"), "ping");
      assert.equal(trailer?.get("x-echo-trailer"), "ping");
    });

    test("deadlines reach the plugin and are enforced", async () => {
      const kv = client.dispense("kv");
      const res = await kv.get({ key: "deadline" }, { timeoutMs: 5_000 });
      const remaining = Number(decode(res.value));
      assert.ok(remaining > 0 && remaining <= 5_000, `plugin saw ${remaining} ms left`);
      const start = performance.now();
      await assert.rejects(kv.get({ key: "slow:2000" }, { timeoutMs: 150 }), (e: unknown) => {
        return ConnectError.from(e).code === Code.DeadlineExceeded;
      });
      assert.ok(performance.now() - start < 1_000, "the deadline cut the call short");
    });

    // After a deadline, what the handler does is what its caller sees, in
    // every location as on connect-es' own path (docs/http2-server.md,
    // session 17). A host with a deadline of its own sees that deadline.
    test("a deadline of the host's own: deadline_exceeded, whatever the handler does after it", async () => {
      const kv = client.dispense("kv");
      const deadline = (e: unknown): boolean => ConnectError.from(e).code === Code.DeadlineExceeded;
      const watchLate = async (): Promise<void> => {
        for await (const e of kv.watch({ key: "late-error:400" }, { timeoutMs: 100 })) {
          assert.equal(e.key, "late-error:400");
        }
      };
      await Promise.all([
        ...["stuck:400", "late-error:400", "late-reason:400"].map((key) =>
          assert.rejects(kv.get({ key }, { timeoutMs: 100 }), deadline, key),
        ),
        assert.rejects(watchLate(), deadline, "watch"),
      ]);
    });

    test("no deadline of the host's, the plugin's from a timeout header: the handler's own error or value after it", async () => {
      const kv = client.dispense("kv");
      // Framed and in-process calls carry a deadline in no header: there the
      // handler runs without one, and its outcome must be the same.
      const headers = { "connect-timeout-ms": "50", "grpc-timeout": "50m" };
      const own = (e: unknown): boolean => {
        const ce = ConnectError.from(e);
        assert.equal(ce.code, Code.FailedPrecondition);
        assert.equal(ce.rawMessage, "the handler's own error");
        return true;
      };
      const seen: string[] = [];
      const watchLate = async (): Promise<void> => {
        for await (const e of kv.watch({ key: "late-error:300" }, { headers })) seen.push(e.key);
      };
      await Promise.all([
        assert.rejects(kv.get({ key: "late-error:300" }, { headers }), own),
        kv.get({ key: "stuck:300" }, { headers }).then((res) => assert.equal(res.found, false)),
        assert.rejects(watchLate(), own),
      ]);
      assert.deepEqual(seen, ["late-error:300"]);
    });

    test("a copy of the handler's context ({ ...ctx }) has every HandlerContext property", async () => {
      const kv = client.dispense("kv");
      const res = await kv.get({ key: "copy" }, { timeoutMs: 5_000 });
      assert.equal(decode(res.value), "", "properties the copy lacks or has otherwise");
    });

    test("a copy of the handler's context ({ ...ctx }) carries no transport state: only HandlerContext's keys", async () => {
      const kv = client.dispense("kv");
      const res = await kv.get({ key: "copy-keys" }, { timeoutMs: 5_000 });
      // connect-es' own context (createHandlerContext) copies its init and abort().
      const expected = connectEs
        ? "abort,contextValues,impl,kind,requestSignal,shutdownSignal;0"
        : "abort;0";
      assert.equal(decode(res.value), expected, "keys beyond HandlerContext's; symbol keys");
    });

    // connect-es' contexts have abort(); a handler written for them may call
    // it (it threw a TypeError through our context's Proxy).
    test("the handler's ctx.abort() aborts its signal, and a copy of the context has abort", async () => {
      const kv = client.dispense("kv");
      const res = await kv.get({ key: "ctx-abort" });
      assert.equal(decode(res.value), "true;true");
    });

    test("a timeout beyond setTimeout's 24.8 days is no deadline (it used to fire after 1 ms)", async () => {
      const kv = client.dispense("kv");
      const huge = 2 ** 31 * 10;
      await kv.put({ key: "slow:50", value: encode("later") });
      assert.equal(decode((await kv.get({ key: "slow:50" }, { timeoutMs: huge })).value), "later");
      assert.equal(decode((await kv.get({ key: "deadline" }, { timeoutMs: huge })).value), "-1");
    });

    test("health", async () => {
      assert.equal(await client.health(), "serving");
    });
  });
}

const everySource: Array<[string, () => PluginSource]> = [
  ...locations.map(([where, source]): [string, () => PluginSource] => [where, source]),
  ["cluster", () => cluster({ discovery: staticEndpoints([network.url]) })],
];

for (const [where, source] of everySource) {
  test(`start() fails with unknown-plugin when the plugin lacks a requested plugin (${where})`, async () => {
    const client = new PluginClient({
      handshake,
      plugins: { kv: KV, cache: KV },
      source: source(),
      logger: silentLogger,
    });
    await assert.rejects(client.start(), (e: unknown) => {
      assert.ok(e instanceof PluginError);
      assert.equal(e.kind, "unknown-plugin");
      assert.match(
        e.message,
        /^plugin .+ does not provide "cache" at protocol version 1 \(it provides: "kv"\)$/,
      );
      return true;
    });
    if (where === "subprocess") assert.ok(client.exit !== undefined, "the subprocess was stopped");
    assert.throws(() => client.dispense("kv"), /is not started/);
    await client.close();
  });
}

test("leaving a server stream early (break) cancels it in the plugin (cluster)", async () => {
  const client = kvClient(cluster({ discovery: staticEndpoints([network.url]) }));
  await client.start();
  try {
    const kv = client.dispense("kv");
    for await (const _ of kv.watch({ key: "mark:cluster" })) break;
    await waitFor("the plugin's watch handler to see its cancel", async () => {
      return (await kv.get({ key: "cancelled:mark:cluster" })).found;
    });
  } finally {
    await client.close();
  }
});

// A user interceptor that copies the request (`next({ ...req, header })`, a
// common connect-es pattern) must leave the request's signal, with the
// caller's cancel and deadline, to the interceptors after it and the call,
// on every location and a cluster, as connect-es' own transports do
// (issue 12: the copy had no `signal` in 8 of 11 locations).
for (const [where, source] of everySource) {
  test(`an interceptor that copies the request ({ ...req }) keeps the caller's cancel and deadline (${where})`, async () => {
    const spread: Interceptor = (next) => (req) =>
      next({ ...req, header: new Headers(req.header) });
    // Ends the call when its request's signal aborts, as an interceptor that races it would.
    const listen: Interceptor = (next) => (req) =>
      new Promise((resolve, reject) => {
        req.signal.addEventListener("abort", () => reject(req.signal.reason as Error));
        next(req).then(resolve, reject);
      });
    const client = kvClient(source(), { interceptors: [spread, listen] });
    await client.start();
    try {
      const kv = client.dispense("kv");
      const code = (want: Code) => (e: unknown) => {
        assert.equal(ConnectError.from(e).code, want, String(e));
        return true;
      };
      let start = performance.now();
      await assert.rejects(
        kv.get({ key: "slow:3000" }, { timeoutMs: 150 }),
        code(Code.DeadlineExceeded),
      );
      assert.ok(performance.now() - start < 1_500, "the deadline cut the call short");
      const abort = new AbortController();
      setTimeout(() => abort.abort(), 150);
      start = performance.now();
      await assert.rejects(
        kv.get({ key: "slow:3000" }, { signal: abort.signal }),
        code(Code.Canceled),
      );
      assert.ok(performance.now() - start < 1_500, "the cancel cut the call short");
      const watch = async (): Promise<void> => {
        // "slow:" ends with its signal's reason: a store watch ends with
        // events.on's AbortError, "internal error", which can reach the host
        // before its own deadline fires (the plugin's fires at the same time).
        for await (const _ of kv.watch({ key: "slow:3000" }, { timeoutMs: 150 }));
      };
      start = performance.now();
      await assert.rejects(watch(), code(Code.DeadlineExceeded), "watch");
      assert.ok(performance.now() - start < 1_500, "the deadline cut the stream short");
    } finally {
      await client.close();
    }
  });
}
