import { X509Certificate } from "node:crypto";

/** A PEM certificate block (RFC 7468), its markers included. */
const BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/**
 * Every certificate of a PEM bundle, as go-plugin reads PLUGIN_CLIENT_CERT
 * (Go's CertPool.AppendCertsFromPEM): each CERTIFICATE block that parses,
 * a block that does not skipped. Throws when none parses (the first
 * block's error, or "no PEM certificate" without any), as go-plugin then
 * refuses the bundle. node's X509Certificate reads only a bundle's first.
 */
export function pemCertificates(pem: string | Buffer): X509Certificate[] {
  const blocks = pem.toString().match(BLOCK) ?? [];
  const certificates: X509Certificate[] = [];
  let firstError: unknown;
  for (const block of blocks) {
    try {
      certificates.push(new X509Certificate(block));
    } catch (error) {
      firstError ??= error;
    }
  }
  if (certificates.length === 0) {
    throw firstError instanceof Error ? firstError : new Error("no PEM certificate in it");
  }
  return certificates;
}
