/**
 * The hint a host adds when a remote plugin's TLS handshake fails: a real
 * KV plugin in network mode with TLS (one without, one whose certificate
 * names another host) on loopback, a real PluginClient with remote(), each
 * failure's message word for word up to Node's own text, which is kept.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { tlsHint } from "../../../src/security/tls-hint.js";
import { cluster, remote, type ClientTls } from "../../../src/host/sources.js";
import { staticEndpoints } from "../../../src/discovery/discovery.js";
import { PluginError } from "../../../src/protocol/errors.js";
import { serve, type ServeHandle } from "../../../src/plugin/serve.js";
import { tlsFromFiles } from "../../../src/security/tls-files.js";
import { kvPlugin } from "../../../examples/kv/definition.js";
import { kvClient, makeTestPki, signedBy } from "../../helpers.js";

/** start() of a client for `url`; the PluginError it fails with. */
async function startFails(url: string, tls?: ClientTls): Promise<PluginError> {
  const client = kvClient(remote(url, tls === undefined ? {} : { tls }), {
    startTimeoutMs: 10_000,
  });
  try {
    await client.start();
  } catch (e) {
    assert.ok(e instanceof PluginError, String(e));
    return e;
  } finally {
    await client.close();
  }
  assert.fail(`start() with ${url} succeeded`);
}

describe("TLS failures of a remote plugin say which option fixes them", () => {
  let pki: string;
  let mtls: ServeHandle;
  let plain: ServeHandle;
  before(async () => {
    pki = makeTestPki("cp-tls-hint-");
    mtls = await serve(kvPlugin(), {
      listen: "127.0.0.1:0",
      exitProcess: false,
      tls: tlsFromFiles({
        cert: join(pki, "server.crt"),
        key: join(pki, "server.key"),
        clientCa: join(pki, "ca.crt"),
      }),
    });
    plain = await serve(kvPlugin(), { listen: "127.0.0.1:0", exitProcess: false });
  });
  after(async () => {
    await mtls.shutdown("test done");
    await plain.shutdown("test done");
  });

  test("no CA for a plugin whose certificate a private CA signed", async () => {
    const e = await startFails(mtls.url);
    assert.equal(e.kind, "unreachable");
    assert.equal(
      e.message,
      `could not complete the handshake with ${mtls.url}/: [unavailable] self-signed certificate ` +
        "in certificate chain; this host does not trust the plugin's certificate: give remote() " +
        'the CA that signed it, remote(url, { tls: tlsFromFiles({ ca: "ca.pem" }) })',
    );
  });

  test("no client certificate for a plugin that requires one", async () => {
    const e = await startFails(mtls.url, tlsFromFiles({ ca: join(pki, "ca.crt") }));
    assert.equal(e.kind, "unreachable");
    assert.match(e.message, /alert certificate required/);
    assert.ok(
      e.message.endsWith(
        "; the plugin requires a client certificate " +
          "(CONNECT_PLUGIN_TLS_CLIENT_CA_FILE): give remote() one, remote(url, { tls: " +
          'tlsFromFiles({ ca: "ca.pem", cert: "client.pem", key: "client-key.pem" }) })',
      ),
      e.message,
    );
  });

  test("https:// to a plugin that serves plain HTTP", async () => {
    const url = plain.url.replace("http://", "https://");
    const e = await startFails(url, tlsFromFiles({ ca: join(pki, "ca.crt") }));
    assert.equal(e.kind, "unreachable");
    assert.match(e.message, /wrong version number/);
    assert.ok(
      e.message.endsWith(
        `; ${new URL(url).host} did not answer TLS: if the plugin serves plain HTTP ` +
          "(no CONNECT_PLUGIN_TLS_CERT_FILE), its URL is http://",
      ),
      e.message,
    );
  });

  test("a certificate issued for other names than the URL's host", async () => {
    // The CA's certificate for CN=localhost, with no subjectAltName: not for 127.0.0.1.
    const other = signedBy({
      certPem: readFileSync(join(pki, "ca.crt"), "utf8"),
      keyPem: readFileSync(join(pki, "ca.key"), "utf8"),
    });
    const server = await serve(kvPlugin(), {
      listen: "127.0.0.1:0",
      exitProcess: false,
      tls: { cert: other.certPem, key: other.keyPem },
    });
    try {
      const e = await startFails(server.url, tlsFromFiles({ ca: join(pki, "ca.crt") }));
      assert.equal(e.kind, "unreachable");
      assert.match(e.message, /Hostname\/IP does not match certificate's altnames/);
      assert.ok(
        e.message.endsWith(
          "; the plugin's certificate is not issued for 127.0.0.1: use a URL whose host is " +
            "one of the certificate's subjectAltName entries",
        ),
        e.message,
      );
    } finally {
      await server.shutdown("test done");
    }
  });

  test("a cluster instance's failed handshake says which cluster() option fixes it", async () => {
    const client = kvClient(cluster({ discovery: staticEndpoints([mtls.url]) }), {
      startTimeoutMs: 3_000,
    });
    try {
      await assert.rejects(client.start(), (e: unknown) => {
        assert.ok(e instanceof PluginError, String(e));
        assert.ok(
          e.message.includes(
            "handshake failed: [unavailable] self-signed certificate in certificate chain; " +
              "this host does not trust the plugin's certificate: give cluster() the CA that " +
              'signed it, cluster({ discovery, tls: tlsFromFiles({ ca: "ca.pem" }) })',
          ),
          e.message,
        );
        return true;
      });
    } finally {
      await client.close();
    }
  });

  test("errors that are not TLS failures get no hint", () => {
    const url = new URL("https://kv.internal:8443");
    const refused = Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
    assert.equal(tlsHint(refused, url), undefined);
    // Message text alone never picks a hint.
    assert.equal(
      tlsHint(new Error("self-signed certificate in certificate chain"), url),
      undefined,
    );
  });
});
