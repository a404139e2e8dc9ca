/**
 * A remote plugin over TLS and mutual TLS, with certificates from a private
 * CA made by openssl for the test, and the errors a user sees when trust or
 * the client certificate is missing.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import { join } from "node:path";
import { PluginError, remote, type ClientTls } from "../src/index.js";

import { decode, encode, startNetworkPlugin, kvClient, makeTestPki } from "./helpers.js";

const dir = makeTestPki("cp-tls-");
const file = (name: string): string => join(dir, name);

let tlsPlugin: Awaited<ReturnType<typeof startNetworkPlugin>>;
let mtlsPlugin: Awaited<ReturnType<typeof startNetworkPlugin>>;
before(async () => {
  const serverTls = {
    CONNECT_PLUGIN_TLS_CERT_FILE: file("server.crt"),
    CONNECT_PLUGIN_TLS_KEY_FILE: file("server.key"),
  };
  tlsPlugin = await startNetworkPlugin("kv", serverTls);
  mtlsPlugin = await startNetworkPlugin("kv", {
    ...serverTls,
    CONNECT_PLUGIN_TLS_CLIENT_CA_FILE: file("ca.crt"),
  });
});
after(async () => {
  await tlsPlugin.stop();
  await mtlsPlugin.stop();
});

const ca = (): Buffer => readFileSync(file("ca.crt"));
const clientCert = (): ClientTls => ({
  ca: ca(),
  cert: readFileSync(file("client.crt")),
  key: readFileSync(file("client.key")),
});

async function roundTrip(
  url: string,
  tls: ClientTls | undefined,
  httpVersion: "1.1" | "2" = "2",
): Promise<string> {
  const client = kvClient(remote(url, { httpVersion, ...(tls !== undefined && { tls }) }), {
    startTimeoutMs: 5_000,
  });
  await client.start();
  try {
    const kv = client.dispense("kv");
    await kv.put({ key: "secret", value: encode(`over ${httpVersion}`) });
    return decode((await kv.get({ key: "secret" })).value);
  } finally {
    await client.close();
  }
}

test("a network plugin serves https:// and says so", () => {
  assert.match(tlsPlugin.url, /^https:\/\/127\.0\.0\.1:\d+$/);
});

test("TLS with a private CA, over HTTP/2 and HTTP/1.1", async () => {
  assert.equal(await roundTrip(tlsPlugin.url, { ca: ca() }), "over 2");
  assert.equal(await roundTrip(tlsPlugin.url, { ca: ca() }, "1.1"), "over 1.1");
});

test("TLS to a server whose CA the host does not trust fails clearly", async () => {
  await assert.rejects(roundTrip(tlsPlugin.url, undefined), (e: unknown) => {
    return (
      e instanceof PluginError &&
      /could not complete the handshake with https:\/\/127\.0\.0\.1:\d+\/: .*(self-signed certificate|unable to verify)/.test(
        e.message,
      )
    );
  });
});

test("mutual TLS: with a client certificate the call goes through", async () => {
  assert.equal(await roundTrip(mtlsPlugin.url, clientCert()), "over 2");
});

test("mutual TLS: without a client certificate the host is turned away", async () => {
  await assert.rejects(roundTrip(mtlsPlugin.url, { ca: ca() }), (e: unknown) => {
    return (
      e instanceof PluginError && /could not complete the handshake with https:\/\//.test(e.message)
    );
  });
});

test("TLS options for a plain http:// URL are a mistake, said so", () => {
  assert.throws(
    () => remote("http://127.0.0.1:1", { tls: { ca: "x" } }),
    /TLS options were given for http:\/\/127\.0\.0\.1:1\/, which is not https:\/\//,
  );
});
