/**
 * src/transport/tls-defaults.ts: our TLS ends refuse anything below TLS 1.2
 * (TLS 1.3 when the operator raised node's floor), prefer
 * TLS_AES_128_GCM_SHA256 and drop nothing. Real sockets: the framed server picks AES-128-GCM for a
 * client with Node's default order (AES-256 first), still serves a client
 * that offers only AES-256-GCM or only TLS 1.2; the framed client offers
 * AES-128-GCM first. A list the operator set in tls.DEFAULT_CIPHERS (after
 * our import) is used as it is, by the server and the client.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import * as tls from "node:tls";
import type { AddressInfo } from "node:net";
import { createClient } from "@connectrpc/connect";
import { FramedServer } from "../../../src/transport/framed/server.js";
import { createFramedTransport } from "../../../src/transport/framed/client.js";
import { PREFERRED_CIPHERS, preferFirst } from "../../../src/transport/tls-defaults.js";
import { Bench } from "../../../bench/service.js";
import { serve } from "../../../src/index.js";
import { kvPlugin } from "../../../examples/kv/definition.js";
import { makeTestPki } from "../../helpers.js";

const dir = makeTestPki("cp-ciphers-");
const pem = (name: string): Buffer => readFileSync(join(dir, name));

test("preferFirst moves the suite first and keeps every other entry in order", () => {
  assert.equal(preferFirst("A:B:C:!D", "C"), "C:A:B:!D");
  assert.equal(preferFirst("A:B", "Z"), "A:B"); // absent: unchanged, nothing added
  const ours = PREFERRED_CIPHERS.split(":");
  assert.equal(ours[0], "TLS_AES_128_GCM_SHA256");
  assert.deepEqual([...ours].sort(), tls.DEFAULT_CIPHERS.split(":").sort());
});

/** The suite a framed server over TLS negotiates with a client of `options`. */
async function negotiated(options: tls.ConnectionOptions): Promise<string> {
  const server = await FramedServer.listen(
    () => {},
    { network: "tcp", host: "127.0.0.1", port: 0 },
    { tls: { cert: pem("server.crt"), key: pem("server.key") } },
  );
  try {
    const address = server.bound.address;
    return await suiteAt(Number(address.slice(address.lastIndexOf(":") + 1)), options);
  } finally {
    await server.close();
  }
}

/** The suite a TLS client of `options` negotiates with the server at 127.0.0.1:`port`. */
async function suiteAt(port: number, options: tls.ConnectionOptions): Promise<string> {
  const socket = tls.connect({ host: "127.0.0.1", port, ca: pem("ca.crt"), ...options });
  try {
    await once(socket, "secureConnect");
    return socket.getCipher().standardName;
  } finally {
    socket.destroy();
  }
}

test("the framed server picks AES-128-GCM over a client's AES-256-first default order", async () => {
  assert.equal(tls.DEFAULT_CIPHERS.split(":")[0], "TLS_AES_256_GCM_SHA384"); // Node's default
  assert.equal(await negotiated({}), "TLS_AES_128_GCM_SHA256");
});

test("the framed server still serves a client that offers only AES-256-GCM", async () => {
  assert.equal(await negotiated({ ciphers: "TLS_AES_256_GCM_SHA384" }), "TLS_AES_256_GCM_SHA384");
});

test("the framed server still serves a TLS 1.2 client", async () => {
  const suite = await negotiated({ maxVersion: "TLSv1.2" });
  assert.match(suite, /^TLS_ECDHE_(ECDSA|RSA)_WITH_AES_128_GCM_SHA256$/);
});

test("the framed client offers AES-128-GCM first", async (t) => {
  // A server that follows the client's order (a node server's default is its own) and reads no frames.
  const server = tls.createServer({
    cert: pem("server.crt"),
    key: pem("server.key"),
    honorCipherOrder: false,
  });
  const accepted = once(server, "secureConnection") as Promise<[tls.TLSSocket]>;
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.after(() => server.close());
  const { port } = server.address() as AddressInfo;
  const transport = createFramedTransport(
    { network: "tcp", address: `127.0.0.1:${port}` },
    { tls: { ca: pem("ca.crt") } },
  );
  const call = createClient(Bench, transport.transport).echo({ value: new Uint8Array(1) });
  const [socket] = await accepted;
  const suite = socket.getCipher().standardName;
  socket.destroy(); // the call fails: the server speaks no framed protocol
  await assert.rejects(call);
  transport.close();
  assert.equal(suite, "TLS_AES_128_GCM_SHA256");
});

/**
 * A default of node:tls (DEFAULT_CIPHERS, DEFAULT_MIN_VERSION) as an
 * operator sets it at run time, which node documents (an ES module's own
 * code runs after its imports, so after ours were loaded): `value` for the
 * duration of `body`.
 */
async function withTlsDefault<T>(
  name: "DEFAULT_CIPHERS" | "DEFAULT_MIN_VERSION",
  value: string,
  body: () => Promise<T>,
): Promise<T> {
  // The module namespace of node:tls is read-only; the module object itself is not.
  const mutable = createRequire(import.meta.url)("node:tls") as Record<typeof name, string>;
  const before = mutable[name];
  mutable[name] = value;
  try {
    return await body();
  } finally {
    mutable[name] = before;
  }
}

/** What a client gets from `negotiate`: "accepted with <suite>" or "refused: <message>". */
function outcomeOf(negotiate: Promise<string>): Promise<string> {
  return negotiate.then(
    (suite) => `accepted with ${suite}`,
    (error: Error) => `refused: ${error.message}`,
  );
}

test("an operator's tls.DEFAULT_CIPHERS, set after our import, still restricts the framed server", async () => {
  // Without AES-128-GCM (a policy of AES-256 only, say): a client that offers only it is refused.
  const outcome = await withTlsDefault(
    "DEFAULT_CIPHERS",
    "TLS_AES_256_GCM_SHA384:ECDHE-ECDSA-AES256-GCM-SHA384",
    () => outcomeOf(negotiated({ ciphers: "TLS_AES_128_GCM_SHA256" })),
  );
  assert.match(outcome, /^refused: .*handshake failure/);
});

test("an operator's tls.DEFAULT_CIPHERS, set after our import, is the framed client's offer, in its order", async (t) => {
  const server = tls.createServer({
    cert: pem("server.crt"),
    key: pem("server.key"),
    ciphers: "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384",
    honorCipherOrder: false, // the client's order decides
  });
  const accepted = once(server, "secureConnection") as Promise<[tls.TLSSocket]>;
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.after(() => server.close());
  const { port } = server.address() as AddressInfo;
  const suite = await withTlsDefault(
    "DEFAULT_CIPHERS",
    "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:ECDHE-ECDSA-AES256-GCM-SHA384",
    async () => {
      const transport = createFramedTransport(
        { network: "tcp", address: `127.0.0.1:${port}` },
        { tls: { ca: pem("ca.crt") } },
      );
      const call = createClient(Bench, transport.transport).echo({ value: new Uint8Array(1) });
      const [socket] = await accepted;
      const chosen = socket.getCipher().standardName;
      socket.destroy();
      await assert.rejects(call);
      transport.close();
      return chosen;
    },
  );
  assert.equal(suite, "TLS_AES_256_GCM_SHA384");
});

/** The suite the network-mode TLS port of serve() (ALPN router) negotiates with a client of `options`. */
async function negotiatedNetworkMode(options: tls.ConnectionOptions): Promise<string> {
  const handle = await serve(kvPlugin(), {
    listen: "127.0.0.1:0",
    exitProcess: false,
    tls: { cert: pem("server.crt"), key: pem("server.key") },
  });
  try {
    return await suiteAt(Number(new URL(handle.url).port), options);
  } finally {
    await handle.shutdown("test done");
  }
}

test("the network-mode TLS port prefers AES-128-GCM, serves AES-256-only clients, and keeps an operator's list", async () => {
  assert.equal(await negotiatedNetworkMode({}), "TLS_AES_128_GCM_SHA256");
  assert.equal(
    await negotiatedNetworkMode({ ciphers: "TLS_AES_256_GCM_SHA384" }),
    "TLS_AES_256_GCM_SHA384",
  );
  const outcome = await withTlsDefault(
    "DEFAULT_CIPHERS",
    "TLS_AES_256_GCM_SHA384:ECDHE-ECDSA-AES256-GCM-SHA384",
    () => outcomeOf(negotiatedNetworkMode({ ciphers: "TLS_AES_128_GCM_SHA256" })),
  );
  assert.match(outcome, /^refused: .*handshake failure/);
});

const TLS12_ONLY: tls.ConnectionOptions = { minVersion: "TLSv1.2", maxVersion: "TLSv1.2" };

test("an operator's TLS 1.3 floor (tls.DEFAULT_MIN_VERSION) holds on the framed server and the network-mode port", async () => {
  // Control: with node's default floor, the same client is served.
  assert.match(await outcomeOf(negotiated(TLS12_ONLY)), /^accepted with TLS_ECDHE_/);
  const [framed, network] = await withTlsDefault("DEFAULT_MIN_VERSION", "TLSv1.3", async () => [
    await outcomeOf(negotiated(TLS12_ONLY)),
    await outcomeOf(negotiatedNetworkMode(TLS12_ONLY)),
  ]);
  // Before tls-defaults.ts read the floor, an explicit minVersion "TLSv1.2" lowered it again.
  assert.match(framed, /^refused: .*(protocol version|handshake failure)/);
  assert.match(network, /^refused: .*(protocol version|handshake failure)/);
});

test("an operator's TLS 1.3 floor holds on the framed client", async (t) => {
  const server = tls.createServer({
    cert: pem("server.crt"),
    key: pem("server.key"),
    minVersion: "TLSv1.2",
    maxVersion: "TLSv1.2",
  });
  // It speaks no framed protocol: a handshake that succeeds ends the call at once.
  server.on("secureConnection", (socket: tls.TLSSocket) => socket.destroy());
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.after(() => server.close());
  const { port } = server.address() as AddressInfo;
  const failure = await withTlsDefault("DEFAULT_MIN_VERSION", "TLSv1.3", async () => {
    const transport = createFramedTransport(
      { network: "tcp", address: `127.0.0.1:${port}` },
      { tls: { ca: pem("ca.crt") } },
    );
    try {
      await createClient(Bench, transport.transport).echo({ value: new Uint8Array(1) });
      return "the call was answered";
    } catch (error) {
      return String(error);
    } finally {
      transport.close();
    }
  });
  assert.match(failure, /protocol version|unsupported protocol|handshake failure/i);
});

test("a floor the operator lowered (TLS 1.0) is not followed: our ends still ask for TLS 1.2", async () => {
  const { minTlsVersion } = await import("../../../src/transport/tls-defaults.js");
  assert.equal(minTlsVersion(), "TLSv1.2");
  assert.equal(
    await withTlsDefault("DEFAULT_MIN_VERSION", "TLSv1", async () => minTlsVersion()),
    "TLSv1.2",
  );
  assert.equal(
    await withTlsDefault("DEFAULT_MIN_VERSION", "TLSv1.3", async () => minTlsVersion()),
    "TLSv1.3",
  );
});
