/**
 * The framed protocol on a network-mode port, negotiated beside Connect,
 * gRPC and gRPC-web (issue 12, item 3): real servers on loopback port 0,
 * real sockets. Which protocol carried each call is checked on the server
 * (an HTTP call always has a content-type header; a framed call has only
 * the caller's headers) and on the client (negotiatedProtocol), so that a
 * silent fallback to HTTP fails these tests.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import {
  bearerAuth,
  cluster,
  remote,
  requireBearer,
  serve,
  staticEndpoints,
  type ServeHandle,
  type ServeOptions,
} from "../src/index.js";
import { KV } from "../examples/kv/shared.js";
import { kvPlugin } from "../examples/kv/definition.js";
import {
  createNetworkTransport,
  negotiatedProtocol,
  type NetworkTransport,
} from "../src/transport/framed/network.js";
import { FRAMED_PREFACE } from "../src/transport/framed/preface.js";
import { PluginHttpServer } from "../src/transport/http-server.js";
import { FramedServer } from "../src/transport/framed/server.js";
import { createNodeAdapter } from "../src/transport/node-adapter.js";
import { PluginServer } from "../src/plugin/plugin-server.js";
import { kvClient, makeTestPki, MemoryLogger } from "./helpers.js";

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** What arrived on the server: "framed" or the content-type of an HTTP call. */
function recorder(): { seen: string[]; interceptor: Interceptor } {
  const seen: string[] = [];
  return {
    seen,
    interceptor: (next) => (req) => {
      seen.push(req.header.get("content-type") ?? "framed");
      return next(req);
    },
  };
}

async function plugin(
  options: ServeOptions = {},
): Promise<{ handle: ServeHandle; seen: string[] }> {
  const r = recorder();
  const handle = await serve(kvPlugin(), {
    listen: "127.0.0.1:0",
    exitProcess: false,
    ...options,
    interceptors: [r.interceptor, ...(options.interceptors ?? [])],
  });
  cleanups.push(() => handle.shutdown("test done"));
  return { handle, seen: r.seen };
}

function kvOver(url: string, transport: NetworkTransport, extra: object = {}) {
  const t = createNetworkTransport(new URL(url), { transport, ...extra });
  cleanups.push(() => t.close());
  return { t, kv: createClient(KV, t.transport) };
}

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

test("cleartext: auto speaks framed to a network-mode plugin; HTTP/1.1 and HTTP/2 clients are answered on the same port meanwhile", async () => {
  const { handle, seen } = await plugin();
  const framed = kvOver(handle.url, "auto");
  await framed.kv.put({ key: "a", value: bytes("1") });
  assert.equal(negotiatedProtocol(framed.t.transport), "framed");
  // The framed connection stays open while other clients use the port.
  const h2 = kvOver(handle.url, "http");
  assert.equal(new TextDecoder().decode((await h2.kv.get({ key: "a" })).value), "1");
  const h1 = await fetch(`${handle.url}/${KV.typeName}/Get`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ key: "a" }),
  });
  assert.equal(h1.status, 200);
  assert.deepEqual(await h1.json(), { value: Buffer.from("1").toString("base64"), found: true });
  await framed.kv.put({ key: "b", value: bytes("2") });
  assert.deepEqual(seen, ["framed", "application/proto", "application/json", "framed"]);
});

test("a PluginClient on remote(url) uses framed by default, and its handshake and calls work", async () => {
  const { handle, seen } = await plugin();
  const client = kvClient(remote(handle.url));
  cleanups.push(() => client.close());
  await client.start();
  await client.dispense("kv").put({ key: "k", value: bytes("v") });
  assert.ok(seen.length >= 2);
  assert.ok(
    seen.every((s) => s === "framed"),
    `every call framed: ${seen.join(",")}`,
  );
});

test("TLS: ALPN picks framed; mTLS refuses a client without a certificate; h2 still works on the port", async () => {
  const pki = makeTestPki("netframed-tls-");
  const f = (n: string): Buffer => readFileSync(join(pki, n));
  const { handle, seen } = await plugin({
    tls: { cert: f("server.crt"), key: f("server.key"), clientCa: f("ca.crt") },
  });
  assert.match(handle.url, /^https:/);
  const tls = { ca: f("ca.crt"), cert: f("client.crt"), key: f("client.key") };
  const framed = kvOver(handle.url, "framed", { tls });
  await framed.kv.put({ key: "t", value: bytes("x") });
  assert.equal(negotiatedProtocol(framed.t.transport), "framed");
  const h2 = kvOver(handle.url, "http", { tls });
  await h2.kv.get({ key: "t" });
  assert.deepEqual(seen, ["framed", "application/proto"]);

  const noCert = kvOver(handle.url, "framed", { tls: { ca: f("ca.crt") } });
  await assert.rejects(noCert.kv.get({ key: "t" }), (e: unknown) => {
    const ce = ConnectError.from(e);
    assert.equal(ce.code, Code.Unavailable, ce.message);
    assert.match(ce.rawMessage, /certificate|handshake|closed the connection|socket hang up/i);
    return true;
  });
  assert.equal(seen.length, 2, "the call without a client certificate reached no handler");
});

test("auth interceptors refuse a framed call without a token with the same error as over HTTP", async () => {
  const { handle } = await plugin({ interceptors: [requireBearer(["tok"])] });
  const errors: string[] = [];
  for (const kind of ["framed", "http"] as const) {
    const { kv } = kvOver(handle.url, kind);
    const e = await kv.get({ key: "x" }).then(
      () => assert.fail("answered without a token"),
      (error: unknown) => ConnectError.from(error),
    );
    assert.equal(e.code, Code.Unauthenticated);
    errors.push(e.rawMessage);
  }
  assert.equal(errors[0], errors[1]);
  const ok = kvOver(handle.url, "framed", { interceptors: [bearerAuth("tok")] });
  await ok.kv.put({ key: "x", value: bytes("1") });
});

/** A server that speaks only HTTP/2 (node:http2 without TLS, Connect routes): no framed. */
async function http2Only(): Promise<string> {
  const server = new PluginServer(kvPlugin(), {});
  const h2 = http2.createServer(
    createNodeAdapter({ routes: server.routes, ...server.routerOptions }),
  );
  await new Promise<void>((resolve) => h2.listen(0, "127.0.0.1", resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        h2.close(() => resolve());
        void server.shutdown("test done", 0);
      }),
  );
  return `http://127.0.0.1:${(h2.address() as net.AddressInfo).port}`;
}

test("auto falls back to HTTP/2 against a server that speaks only HTTP/2, logs why once, and remembers it", async () => {
  const url = await http2Only();
  const logged: string[] = [];
  const first = kvOver(url, "auto", { log: (m: string) => logged.push(m) });
  await first.kv.put({ key: "f", value: bytes("1") });
  assert.equal(negotiatedProtocol(first.t.transport), "http");
  assert.equal(logged.length, 1);
  assert.match(
    logged[0]!,
    /^http:\/\/127\.0\.0\.1:\d+ does not speak the framed protocol \(it answered the framed preface with an HTTP\/2 SETTINGS frame \(an HTTP\/2 server\)\); using HTTP\/2 for it$/,
  );
  // The next transport to that authority goes straight to HTTP/2.
  const second = kvOver(url, "auto", { log: (m: string) => logged.push(m) });
  await second.kv.get({ key: "f" });
  assert.equal(logged.length, 1);
  assert.equal(negotiatedProtocol(second.t.transport), "http");
});

// The call's signal goes on to the HTTP transport of a fallback, also for a
// request copied by an interceptor (`next({ ...req, header })`): on main a
// copy had no signal, and a cancelled stream hung on the fallback.
for (const [name, interceptor] of [
  ["bearerAuth (the project's, signal-blind)", bearerAuth("tok")],
  ["a user's", ((next) => (req) => next({ ...req })) as Interceptor],
] as const) {
  test(`auto's HTTP/2 fallback: the caller's cancel ends a stream through ${name} copy of the request`, async () => {
    const url = await http2Only();
    const { t, kv } = kvOver(url, "auto", { interceptors: [interceptor] });
    await kv.put({ key: "fb", value: bytes("1") });
    assert.equal(negotiatedProtocol(t.transport), "http");
    const abort = new AbortController();
    const watching = (async () => {
      for await (const _ of kv.watch({ key: "fb" }, { signal: abort.signal })) abort.abort();
    })();
    const late = new Promise((resolve) => setTimeout(resolve, 2_000, "still running"));
    const outcome = await Promise.race([
      watching.then(
        () => "ended",
        (e: unknown) => ConnectError.from(e),
      ),
      late,
    ]);
    assert.ok(outcome instanceof ConnectError, String(outcome));
    assert.equal(outcome.code, Code.Canceled);
  });
}

test('"framed" against a server that does not speak it fails with a clear message', async () => {
  const url = await http2Only();
  const { kv } = kvOver(url, "framed");
  await assert.rejects(kv.get({ key: "f" }), (e: unknown) => {
    const ce = ConnectError.from(e);
    assert.equal(ce.code, Code.Unavailable);
    assert.match(
      ce.rawMessage,
      /^http:\/\/127\.0\.0\.1:\d+ does not speak the framed protocol \(it answered the framed preface with an HTTP\/2 SETTINGS frame \(an HTTP\/2 server\)\); use transport "auto" to fall back to HTTP, or "http"$/,
    );
    return true;
  });
});

test("auto against an HTTP/1.1 server: the 400 it answers is named, then HTTP is used", async () => {
  const h1 = http.createServer((_req, res) => res.end());
  await new Promise<void>((resolve) => h1.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => new Promise<void>((resolve) => h1.close(() => resolve())));
  const url = `http://127.0.0.1:${(h1.address() as net.AddressInfo).port}`;
  const { kv } = kvOver(url, "framed");
  await assert.rejects(
    kv.get({ key: "f" }),
    /it answered the framed preface with "HTTP\/1\.1 400 Bad Request"/,
  );
});

test("hostile peers: a wrong preface is cut off at once, a partial one after the preface timeout, without growing memory", async () => {
  const cutOffs: string[] = [];
  const framed = FramedServer.detached(() => {}, {});
  const server = await PluginHttpServer.listen(
    (_req, res) => res.end(),
    { network: "tcp", host: "127.0.0.1", port: 0 },
    {
      acceptHttp1: true,
      framed,
      prefaceTimeoutMs: 300,
      onPeerCutOff: (reason) => cutOffs.push(reason),
    },
  );
  cleanups.push(() => server.close());
  const port = (server.bound as { port: number }).port;
  const closedAfter = (send: Buffer): Promise<{ ms: number; answer: Buffer }> =>
    new Promise((resolve) => {
      const started = Date.now();
      const socket = net.connect({ host: "127.0.0.1", port }, () => socket.write(send));
      const got: Buffer[] = [];
      socket.on("data", (c: Buffer) => got.push(c));
      socket.on("error", () => {});
      socket.on("close", () => resolve({ ms: Date.now() - started, answer: Buffer.concat(got) }));
    });
  // The first byte of the preface, then 1 MiB of garbage: one read decides.
  const garbage = await closedAfter(
    Buffer.concat([Buffer.from([0x89]), Buffer.alloc(1024 * 1024, 0x41)]),
  );
  assert.equal(garbage.answer.length, 0, "nothing answered to a wrong preface");
  assert.ok(garbage.ms < 5_000);
  const partial = await closedAfter(FRAMED_PREFACE.subarray(0, 5));
  assert.equal(partial.answer.length, 0);
  assert.ok(partial.ms >= 250 && partial.ms < 5_000, `closed after ${partial.ms} ms`);
  assert.equal(cutOffs.length, 2);
  assert.match(cutOffs[0]!, /cut off: not a protocol preface this port speaks$/);
  assert.match(cutOffs[1]!, /cut off: no protocol preface within 300 ms$/);
});

test("cluster: instances are called over framed (balancing, health checks), and a stopped instance's calls fail over", async () => {
  const a = await plugin();
  const b = await plugin();
  const logger = new MemoryLogger();
  const events: string[] = [];
  const client = kvClient(
    cluster({
      discovery: staticEndpoints([a.handle.url, b.handle.url]),
      balancer: "round-robin",
      health: { intervalMs: 100 },
      onEvent: (e) => events.push(e.type),
    }),
    { logger },
  );
  cleanups.push(() => client.close());
  await client.start();
  const kv = client.dispense("kv");
  for (let i = 0; i < 6; i++) await kv.put({ key: `k${i}`, value: bytes("v") });
  assert.ok(a.seen.includes("framed") && b.seen.includes("framed"), "both instances took calls");
  assert.ok(
    [...a.seen, ...b.seen].every((s) => s === "framed" || s === "application/grpc"),
    `only framed calls and gRPC health checks: ${[...new Set([...a.seen, ...b.seen])].join(",")}`,
  );
  assert.ok(!events.includes("http-fallback"));
  // One instance goes away: Get (idempotent) fails over to the other.
  await a.handle.shutdown("test: instance stopped");
  const before = b.seen.length;
  for (let i = 0; i < 4; i++) await kv.get({ key: `k${i}` }).catch(() => undefined);
  for (let i = 0; i < 4; i++) await kv.put({ key: `n${i}`, value: bytes("v") });
  assert.ok(b.seen.length >= before + 4);
});

test("close() during a dial to a server that never answers the preface fails the waiting call at once and closes the socket (it stayed open until the preface timeout)", async () => {
  const accepted: net.Socket[] = [];
  // Reads (so that it sees the client's FIN) and never answers.
  const silent = net.createServer((socket) => accepted.push(socket.resume()));
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of accepted) s.destroy();
        silent.close(() => resolve());
      }),
  );
  const url = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
  const t = createNetworkTransport(new URL(url), { transport: "auto", prefaceTimeoutMs: 30_000 });
  const kv = createClient(KV, t.transport);
  const call = kv.get({ key: "x" });
  while (accepted.length === 0) await new Promise((r) => setTimeout(r, 10));
  const serverSaw = new Promise<number>((resolve) => {
    const started = Date.now();
    accepted[0]!.on("error", () => {});
    accepted[0]!.once("close", () => resolve(Date.now() - started));
  });
  const started = Date.now();
  t.close();
  await assert.rejects(call, (e: unknown) => {
    assert.equal(ConnectError.from(e).code, Code.Unavailable);
    return true;
  });
  assert.ok(
    Date.now() - started < 2_000,
    `the call failed ${Date.now() - started} ms after close()`,
  );
  const closedMs = await Promise.race([
    serverSaw,
    new Promise<number>((r) => setTimeout(() => r(-1), 3_000)),
  ]);
  assert.ok(closedMs >= 0 && closedMs < 2_000, `the dial socket closed after ${closedMs} ms`);
});
