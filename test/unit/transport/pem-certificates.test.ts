/**
 * pemCertificates reads a PEM bundle as Go's CertPool.AppendCertsFromPEM
 * does (go-plugin's PLUGIN_CLIENT_CERT): every CERTIFICATE block that
 * parses, one that does not skipped, other blocks ignored; it throws only
 * when no certificate parses.
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { test } from "node:test";
import { generateAutoMtlsCertificate } from "../../../src/security/auto-mtls.js";
import { pemCertificates } from "../../../src/transport/pem-certificates.js";

const BROKEN = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";

test("a bundle: every certificate, in order, a broken block and a key block skipped", () => {
  const a = generateAutoMtlsCertificate("P-256");
  const b = generateAutoMtlsCertificate("P-256");
  const found = pemCertificates(`${BROKEN}${a.certPem}\n${a.keyPem}\nsome text\n${b.certPem}`);
  assert.deepEqual(
    found.map((c) => c.fingerprint256),
    [a, b].map((c) => new X509Certificate(c.certPem).fingerprint256),
  );
});

test("a Buffer reads as its text", () => {
  const a = generateAutoMtlsCertificate("P-256");
  assert.equal(pemCertificates(Buffer.from(a.certPem)).length, 1);
});

test("no certificate that parses: throws (the block's error, or none found)", () => {
  assert.throws(
    () => pemCertificates(BROKEN + BROKEN),
    (e: unknown) => e instanceof Error,
  );
  assert.throws(() => pemCertificates("not PEM at all"), /no PEM certificate in it/);
  const key = generateAutoMtlsCertificate("P-256").keyPem;
  assert.throws(() => pemCertificates(key), /no PEM certificate in it/);
});
