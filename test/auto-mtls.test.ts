import assert from "node:assert/strict";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { test } from "node:test";
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
