/**
 * Security for remote plugins, against real network-mode servers on
 * loopback: bearer-token and API-key auth through interceptors on both
 * sides, per-client rate limits, request and response size limits, and
 * mutual TLS for a cluster with certificates read from files. Each failure
 * is checked word for word.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import * as net from "node:net";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import {
  apiKeyAuth,
  bearerAuth,
  cluster,
  rateLimit,
  remote,
  requireApiKey,
  requireBearer,
  serve,
  staticEndpoints,
  tlsFromFiles,
  type ServeHandle,
  type ServeOptions,
} from "../src/index.js";
import { kvPlugin } from "../examples/kv/definition.js";
import { kvClient, makeTestPki, waitFor } from "./helpers.js";

const servers: ServeHandle[] = [];
after(async () => {
  for (const s of servers) await s.shutdown("test done");
});

/** A KV plugin in network mode on a free loopback port, in this process. */
async function plugin(options: ServeOptions = {}): Promise<ServeHandle> {
  const handle = await serve(kvPlugin(), { listen: "127.0.0.1:0", exitProcess: false, ...options });
  servers.push(handle);
  return handle;
}

function expectError(code: Code, message: string | RegExp) {
  return (e: unknown): boolean => {
    const ce = ConnectError.from(e);
    assert.equal(ce.code, code, `got ${ce.message}`);
    if (typeof message === "string") assert.equal(ce.rawMessage, message);
    else assert.match(ce.rawMessage, message);
    return true;
  };
}

async function kvAt(url: string, interceptors: Interceptor[] = []) {
  const client = kvClient(remote(url), { interceptors, startTimeoutMs: 5_000 });
  return client;
}

test("bearer auth: the right token passes; a missing or wrong one fails with Unauthenticated", async () => {
  const server = await plugin({ interceptors: [requireBearer(["s3cret"])] });
  const good = await kvAt(server.url, [bearerAuth("s3cret")]);
  await good.start();
  await good.dispense("kv").put({ key: "a", value: new Uint8Array([1]) });
  await good.close();

  const none = await kvAt(server.url);
  await assert.rejects(none.start(), (e: Error) => {
    assert.equal(
      e.message,
      `could not complete the handshake with ${server.url}/: [unauthenticated] missing credentials: ` +
        "this plugin requires an `authorization: Bearer <token>` header",
    );
    return true;
  });
  await none.close();

  const wrong = await kvAt(server.url, [bearerAuth(() => "guess")]);
  await assert.rejects(wrong.start(), /\[unauthenticated\] invalid bearer token$/);
  await wrong.close();
});

test("API-key auth through a cluster: health checks stay open, calls need the key", async () => {
  const server = await plugin({
    interceptors: [requireApiKey(["k-123"], { header: "x-plugin-key" })],
  });
  const unhealthy: string[] = [];
  const good = kvClient(
    cluster({
      discovery: staticEndpoints([server.url]),
      interceptors: [apiKeyAuth("k-123", "x-plugin-key")],
      health: { intervalMs: 50, onUnhealthy: (id) => unhealthy.push(id) },
    }),
  );
  await good.start();
  await good.dispense("kv").put({ key: "a", value: new Uint8Array([1]) });
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(unhealthy, [], "health checks pass without the key");
  await good.close();

  const bad = kvClient(
    cluster({
      discovery: staticEndpoints([server.url]),
      interceptors: [apiKeyAuth("nope", "x-plugin-key")],
      health: false,
    }),
  );
  await assert.rejects(
    bad.start(),
    /\[unauthenticated\] invalid API key in the x-plugin-key header/,
  );
  await bad.close();
});

test("per-client rate limit: over the limit fails with ResourceExhausted, each client has its own bucket", async () => {
  const server = await plugin({
    // One token back every 5 s: a busy machine cannot refill the bucket
    // between the calls below, so the refusal does not depend on speed.
    interceptors: [requireApiKey(["alice", "bob"]), rateLimit({ perSecond: 0.2, burst: 3 })],
  });
  const alice = await kvAt(server.url, [apiKeyAuth("alice")]);
  const bob = await kvAt(server.url, [apiKeyAuth("bob")]);
  await alice.start(); // the handshake is call 1 of alice's burst
  await bob.start();
  try {
    const kvA = alice.dispense("kv");
    await kvA.get({ key: "x" });
    await kvA.get({ key: "x" });
    await assert.rejects(
      kvA.get({ key: "x" }),
      expectError(
        Code.ResourceExhausted,
        /^rate limit exceeded: this client may make 0\.2 calls per second \(burst 3\); retry in \d+ ms$/,
      ),
    );
    // Bob is another client: his bucket is untouched.
    await bob.dispense("kv").get({ key: "x" });
    // Alice's bucket refills in time: wait for that state, refused until then.
    await waitFor(
      "alice's next token",
      () =>
        kvA.get({ key: "x" }).then(
          () => true,
          (e: unknown) => expectError(Code.ResourceExhausted, /retry in \d+ ms$/)(e) && false,
        ),
      30_000,
    );
  } finally {
    await alice.close();
    await bob.close();
  }
});

test("size limits: a request over the plugin's readMaxBytes and a response over the host's fail with ResourceExhausted", async () => {
  const server = await plugin({ readMaxBytes: 1024 });
  const client = kvClient(
    cluster({ discovery: staticEndpoints([server.url]), health: false, readMaxBytes: 512 }),
  );
  await client.start();
  try {
    const kv = client.dispense("kv");
    await assert.rejects(
      kv.put({ key: "big", value: new Uint8Array(2_000) }),
      expectError(
        Code.ResourceExhausted,
        /^message size is larger than configured readMaxBytes 1024 \(instance 127\.0\.0\.1:\d+, attempt 1 of 3\)$/,
      ),
    );
    await kv.put({ key: "mid", value: new Uint8Array(800) });
    await assert.rejects(
      kv.get({ key: "mid" }),
      expectError(Code.ResourceExhausted, /is larger than configured readMaxBytes 512/),
    );
  } finally {
    await client.close();
  }
});

test("mutual TLS for a cluster, with certificates read from files", async () => {
  const dir = makeTestPki("cp-mtls-");
  const file = (name: string): string => join(dir, name);
  const server = await plugin({
    tls: {
      ...tlsFromFiles({ cert: file("server.crt"), key: file("server.key") }),
      clientCa: tlsFromFiles({ ca: file("ca.crt") }).ca,
    },
  });
  assert.match(server.url, /^https:/);
  const client = kvClient(
    cluster({
      discovery: staticEndpoints([server.url]),
      tls: tlsFromFiles({ ca: file("ca.crt"), cert: file("client.crt"), key: file("client.key") }),
      health: { intervalMs: 100 },
    }),
  );
  await client.start();
  try {
    await client.dispense("kv").put({ key: "tls", value: new Uint8Array([7]) });
    const res = await client.dispense("kv").get({ key: "tls" });
    assert.deepEqual([...res.value], [7]);
  } finally {
    await client.close();
  }
  assert.throws(
    () => tlsFromFiles({ ca: file("missing.crt") }),
    new RegExp(`^Error: cannot read the TLS ca file ${file("missing.crt")}: ENOENT`),
  );
});

test("a remote fallback gets the cluster's interceptors (its credentials), so it answers when the pool is down", async () => {
  const backup = await plugin({ interceptors: [requireBearer(["s3cret"])] });
  const deadPort = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
  const client = kvClient(
    cluster({
      discovery: staticEndpoints([`http://127.0.0.1:${deadPort}`]),
      health: false,
      interceptors: [bearerAuth("s3cret")],
      fallback: remote(backup.url),
    }),
  );
  await client.start();
  try {
    const kv = client.dispense("kv");
    await kv.put({ key: "fb", value: new Uint8Array([7]) });
    assert.deepEqual((await kv.get({ key: "fb" })).value, new Uint8Array([7]));
  } finally {
    await client.close();
  }
});

test("rate limit without auth keys by address: rotating junk credentials does not buy a fresh bucket", async () => {
  const server = await plugin({ interceptors: [rateLimit({ perSecond: 1, burst: 3 })] });
  let n = 0;
  const client = await kvAt(server.url, [bearerAuth(() => `junk-${n++}`)]);
  await client.start();
  try {
    const kv = client.dispense("kv");
    let limited = 0;
    for (let i = 0; i < 10; i++) {
      await kv.get({ key: "x" }).catch((e: unknown) => {
        if (ConnectError.from(e).code !== Code.ResourceExhausted) throw e;
        limited++;
      });
    }
    assert.ok(limited >= 6, `${limited} of 10 calls were limited`);
  } finally {
    await client.close();
  }
});
