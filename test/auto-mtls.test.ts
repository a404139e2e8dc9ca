import assert from "node:assert/strict";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Health } from "../src/gen/grpc/health/v1/health_pb.js";
import { subprocess } from "../src/index.js";
import { createGoPluginTransport, type PeerTls } from "../src/transport/goplugin-dial.js";
import { createFramedTransport, type FramedClientTls } from "../src/transport/framed/client.js";
import { KV } from "../examples/kv/shared.js";
import { MemoryLogger, decode, encode, kvClient, kvPluginMain, signedBy } from "./helpers.js";
import {
  certificateForHandshake,
  certificateFromHandshake,
  generateAutoMtlsCertificate,
} from "../src/security/auto-mtls.js";
import { parseHandshakeLine, formatHandshakeLine } from "../src/protocol/handshake-line.js";

test("the AutoMTLS certificate is made as go-plugin's generateCert makes it", () => {
  const { certPem, keyPem, der } = generateAutoMtlsCertificate();
  const cert = new X509Certificate(certPem);
  assert.deepEqual(new Uint8Array(cert.raw), der);
  assert.equal(cert.subject, "O=HashiCorp\nCN=localhost");
  assert.equal(cert.issuer, cert.subject, "self-signed");
  assert.equal(cert.subjectAltName, "DNS:localhost");
  assert.equal(cert.ca, true);
  assert.deepEqual(cert.keyUsage, ["1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.1"]); // client, server auth
  assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, "secp521r1");
  assert.ok(cert.verify(cert.publicKey), "signed by its own key");
  assert.ok(cert.checkPrivateKey(createPrivateKey(keyPem)), "the key belongs to the certificate");
  const now = Date.now();
  assert.ok(Date.parse(cert.validFrom) <= now - 29_000, "valid from 30 s ago");
  const years = (Date.parse(cert.validTo) - now) / (365.25 * 86_400_000);
  assert.ok(years > 29.9 && years < 30.1, `valid for 30 years, got ${years}`);
  assert.notEqual(generateAutoMtlsCertificate().certPem, certPem, "a fresh key every time");
});

test("a P-256 AutoMTLS certificate has the same fields, a P-256 key and an ECDSA-SHA256 signature", () => {
  const { certPem, keyPem, der } = generateAutoMtlsCertificate("P-256");
  const cert = new X509Certificate(certPem);
  assert.deepEqual(new Uint8Array(cert.raw), der);
  assert.equal(cert.subject, "O=HashiCorp\nCN=localhost");
  assert.equal(cert.subjectAltName, "DNS:localhost");
  assert.equal(cert.ca, true);
  assert.deepEqual(cert.keyUsage, ["1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.1"]);
  assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, "prime256v1");
  // AlgorithmIdentifier ecdsa-with-SHA256 (1.2.840.10045.4.3.2), in the TBS and after it.
  const sha256 = Buffer.from("06082a8648ce3d040302", "hex");
  assert.equal(Buffer.from(der).toString("hex").split(sha256.toString("hex")).length - 1, 2);
  assert.ok(cert.verify(cert.publicKey), "signed by its own key");
  assert.ok(cert.checkPrivateKey(createPrivateKey(keyPem)), "the key belongs to the certificate");
});

test("the certificate travels in the handshake line as unpadded base64 DER", () => {
  const { certPem, der } = generateAutoMtlsCertificate();
  const field = certificateForHandshake(der);
  assert.ok(!field.includes("=") && !field.includes("|") && !field.includes("\n"));
  const line = formatHandshakeLine({
    protocolVersion: 1,
    network: "unix",
    address: "/tmp/x.sock",
    protocol: "grpc",
    serverCert: field,
    multiplex: false,
  });
  const parsed = parseHandshakeLine(line);
  assert.equal(parsed.serverCert, field);
  assert.equal(certificateFromHandshake(field), certPem);
});

test("a handshake certificate that is not one is reported", () => {
  assert.throws(() => certificateFromHandshake("A".repeat(60)), {
    message: /^the certificate in the plugin's handshake line is not a valid X\.509 certificate \(/,
  });
});

/** Starts the KV example plugin as a go-plugin host would, with AutoMTLS. */
async function launchWithClientCert(certPem: string, env: Record<string, string> = {}) {
  const main = fileURLToPath(new URL("../examples/kv/plugin.js", import.meta.url));
  const child = spawn(process.execPath, [main], {
    env: { ...process.env, KV_PLUGIN: "hello", PLUGIN_CLIENT_CERT: certPem, ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  const line = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes("\n")) resolve(out.slice(0, out.indexOf("\n")));
    });
    child.once("exit", (code) => reject(new Error(`plugin exited with ${code}`)));
  });
  return { child, handshake: parseHandshakeLine(line) };
}

/** A health check of a launched plugin as a go-plugin host makes it (`tls`: its AutoMTLS side): the status, or the failure's code. */
async function healthCheck(
  handshake: ReturnType<typeof parseHandshakeLine>,
  tls: PeerTls | undefined,
): Promise<string> {
  const transport = createGoPluginTransport(handshake, tls === undefined ? {} : { tls });
  try {
    const res = await createClient(Health, transport.transport).check(
      { service: "plugin" },
      { timeoutMs: 10_000 },
    );
    return `status ${res.status}`;
  } catch (error) {
    return `failed: ${ConnectError.from(error).code}`;
  } finally {
    transport.close();
  }
}

test("a plugin given PLUGIN_CLIENT_CERT serves mutual TLS that only the host's certificate passes", async () => {
  const host = generateAutoMtlsCertificate();
  const { child, handshake } = await launchWithClientCert(host.certPem);
  try {
    assert.equal(handshake.protocol, "grpc");
    assert.ok(handshake.serverCert !== undefined, "the line carries the plugin's certificate");
    const peerCertPem = certificateFromHandshake(handshake.serverCert);
    assert.equal(
      new X509Certificate(peerCertPem).publicKey.asymmetricKeyDetails?.namedCurve,
      "secp521r1",
      "a go-plugin host gets go-plugin's own P-521 certificate",
    );
    const check = (tls: PeerTls | undefined): Promise<string> => healthCheck(handshake, tls);
    assert.equal(
      await check({ certPem: host.certPem, keyPem: host.keyPem, peerCertPem }),
      "status 1",
    );
    // Each refusal ends the call without an answer; the code depends on
    // where TLS gives up (with TLS 1.3 the server checks the client's
    // certificate after the client's side of the handshake is done).
    const refused = /^failed: \d+$/;
    const stranger = generateAutoMtlsCertificate();
    assert.match(
      await check({ certPem: stranger.certPem, keyPem: stranger.keyPem, peerCertPem }),
      refused,
      "a certificate other than the host's is refused",
    );
    assert.match(
      await check({ certPem: host.certPem, keyPem: host.keyPem, peerCertPem: stranger.certPem }),
      refused,
      "the host refuses a plugin whose certificate is not the one announced",
    );
    assert.match(await check(undefined), refused, "plaintext is refused");
  } finally {
    child.kill("SIGKILL");
  }
});

test("connect-plugin subprocesses use AutoMTLS by default, and not with autoMTLS: false", async () => {
  for (const autoMTLS of [undefined, false]) {
    const logger = new MemoryLogger();
    const client = kvClient(subprocess(process.execPath, [kvPluginMain], { autoMTLS }), { logger });
    try {
      await client.start();
      await client.dispense("kv").put({ key: "k", value: encode("v") });
      assert.equal(decode((await client.dispense("kv").get({ key: "k" })).value), "v");
    } finally {
      await client.close();
    }
    assert.equal(
      logger.messages("stderr").includes("configuring server automatic mTLS"),
      autoMTLS === undefined,
      `autoMTLS: ${autoMTLS}`,
    );
  }
});

test("the default framed transport over AutoMTLS refuses a stranger's certificate and plaintext", async () => {
  // A connect-plugin host's certificate (auto-mtls-launch.ts).
  const host = generateAutoMtlsCertificate("P-256");
  // What a connect-plugin host offers by default (DEFAULT_LOCAL_TRANSPORTS).
  const { child, handshake } = await launchWithClientCert(host.certPem, {
    CONNECT_PLUGIN_TRANSPORTS: "framed,connect",
  });
  try {
    assert.equal(handshake.protocol, "framed");
    assert.ok(handshake.serverCert !== undefined, "the line carries the plugin's certificate");
    const peerCertPem = certificateFromHandshake(handshake.serverCert);
    assert.equal(
      new X509Certificate(peerCertPem).publicKey.asymmetricKeyDetails?.namedCurve,
      "prime256v1",
      "a connect-plugin host gets a P-256 certificate, cheaper to make and to sign with",
    );
    const call = async (tls: FramedClientTls | undefined): Promise<string> => {
      const transport = createFramedTransport(handshake, tls === undefined ? {} : { tls });
      const t0 = Date.now();
      try {
        const res = await createClient(KV, transport.transport).get(
          { key: "none" },
          { timeoutMs: 30_000 },
        );
        return `answered ${JSON.stringify(decode(res.value))}`;
      } catch (error) {
        const code = ConnectError.from(error).code;
        // A refusal, not a timeout: the TLS handshake fails at once.
        assert.ok(Date.now() - t0 < 20_000, `refused after ${Date.now() - t0} ms`);
        // Refused at the connection: Unavailable, never an answer from the plugin.
        return code === Code.Unavailable
          ? "refused"
          : `code ${Code[code]}: ${ConnectError.from(error).message}`;
      } finally {
        transport.close();
      }
    };
    assert.equal(
      await call({ ca: peerCertPem, cert: host.certPem, key: host.keyPem }),
      'answered ""',
    );
    const stranger = generateAutoMtlsCertificate();
    assert.equal(
      await call({ ca: peerCertPem, cert: stranger.certPem, key: stranger.keyPem }),
      "refused",
      "a certificate other than the host's is refused",
    );
    assert.equal(
      await call({ ca: peerCertPem }),
      "refused",
      "a TLS client without a certificate is refused",
    );
    const child = signedBy(host);
    assert.equal(
      await call({ ca: peerCertPem, cert: child.certPem, key: child.keyPem }),
      "refused",
      "a certificate the host's key signed is refused: only the host's own is accepted",
    );
    assert.equal(await call(undefined), "refused", "plaintext is refused");
  } finally {
    child.kill("SIGKILL");
  }
});

test("a PLUGIN_CLIENT_CERT bundle pins every certificate in it (go-plugin trusts them all); a stranger is refused, said why", async () => {
  const first = generateAutoMtlsCertificate();
  const second = generateAutoMtlsCertificate();
  const { child, handshake } = await launchWithClientCert(`${first.certPem}\n${second.certPem}`);
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  try {
    const peerCertPem = certificateFromHandshake(handshake.serverCert as string);
    const check = (host: { certPem: string; keyPem: string }): Promise<string> =>
      healthCheck(handshake, { certPem: host.certPem, keyPem: host.keyPem, peerCertPem });
    assert.equal(await check(second), "status 1", "the bundle's second certificate");
    assert.equal(await check(first), "status 1", "the bundle's first certificate");
    assert.match(await check(generateAutoMtlsCertificate()), /^failed: \d+$/, "a stranger's");
    for (const end = Date.now() + 5_000; !stderr.includes("refused");) {
      if (Date.now() > end) assert.fail(`no refusal logged: ${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.match(
      stderr,
      /refused: the client's certificate \(O=HashiCorp, CN=localhost\) is not the host's/,
    );
  } finally {
    child.kill("SIGKILL");
  }
});
