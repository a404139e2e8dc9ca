import { X509Certificate, generateKeyPairSync, randomBytes, sign } from "node:crypto";

/**
 * A certificate and key for go-plugin's AutoMTLS.
 *
 * With AutoMTLS, host and plugin each make a throwaway self-signed
 * certificate when the plugin starts. The host passes its certificate to the
 * plugin in PLUGIN_CLIENT_CERT (PEM); the plugin answers with its own in the
 * handshake line (DER, unpadded base64). Each side then trusts exactly the
 * other's certificate and requires it on every connection, so that nothing
 * else on the machine can call the plugin or pose as the host, even over
 * loopback TCP. Nothing is written to disk and nothing outlives the process.
 *
 * The certificate is made as go-plugin's `generateCert` makes it (CN and
 * SAN "localhost", O "HashiCorp", a CA, client and server authentication),
 * because a Go peer checks it with crypto/tls against those expectations.
 * The key is go-plugin's ECDSA P-521 (signed with SHA-512) by default, or
 * P-256 (SHA-256), which crypto/tls and Node accept alike and which is
 * about 30 times cheaper to make and to sign with (see AutoMtlsKeyType).
 */
export interface AutoMtlsCertificate {
  /** The certificate, PEM encoded (what goes into PLUGIN_CLIENT_CERT). */
  readonly certPem: string;
  /** The PKCS#8 private key, PEM encoded. */
  readonly keyPem: string;
  /** The certificate's DER bytes. */
  readonly der: Uint8Array;
}

/** The server name both sides verify: go-plugin's certificates are for "localhost". */
export const AUTO_MTLS_SERVER_NAME = "localhost";

/** go-plugin's validity: from 30 s ago, for 262980 hours (30 years). */
const VALID_HOURS = 262_980;

/**
 * The key of an AutoMTLS certificate. "P-521" is go-plugin's: a P-521 key
 * takes about 4 ms to make and each TLS handshake signs and verifies with
 * it (about 3 ms each on a loaded 2-core machine), on a plugin's critical
 * path to its first call. "P-256" costs about 0.1 ms for each; connect-plugin
 * hosts and plugins use it between themselves.
 */
export type AutoMtlsKeyType = "P-521" | "P-256";

const KEY_TYPES = {
  "P-521": { curve: "secp521r1", hash: "sha512", algorithm: "1.2.840.10045.4.3.4" },
  "P-256": { curve: "prime256v1", hash: "sha256", algorithm: "1.2.840.10045.4.3.2" },
} as const;

/**
 * Makes a fresh AutoMTLS certificate and key (default: go-plugin's P-521).
 * node:crypto makes the key and the signature; the certificate around them
 * is a few fixed DER structures (see encodeTbs), so no X.509 library is
 * loaded.
 */
export function generateAutoMtlsCertificate(
  keyType: AutoMtlsKeyType = "P-521",
): AutoMtlsCertificate {
  const { curve, hash, algorithm } = KEY_TYPES[keyType];
  const signatureAlgorithm = seq(oid(algorithm));
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: curve });
  const now = Date.now();
  // A positive 128-bit random serial like Go's, minimally encoded (Go rejects
  // INTEGERs with redundant leading zero bytes).
  let serial = randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f;
  while (serial.length > 1 && serial[0] === 0 && ((serial[1] ?? 0) & 0x80) === 0) {
    serial = serial.subarray(1);
  }
  const tbs = encodeTbs({
    serial,
    notBefore: new Date(now - 30_000),
    notAfter: new Date(now + VALID_HOURS * 3_600_000),
    spki: publicKey.export({ type: "spki", format: "der" }),
    signatureAlgorithm,
  });
  const signature = sign(hash, tbs, { key: privateKey, dsaEncoding: "der" });
  const der = new Uint8Array(seq(tbs, signatureAlgorithm, bitString(signature)));
  return {
    certPem: derToPem(der),
    keyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    der,
  };
}

// --- DER, just enough for go-plugin's certificate ---------------------------

function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  const n = body.length;
  let length: Buffer;
  if (n < 0x80) length = Buffer.from([n]);
  else if (n < 0x100) length = Buffer.from([0x81, n]);
  else if (n < 0x10000) length = Buffer.from([0x82, n >> 8, n & 0xff]);
  else throw new RangeError("DER value too long");
  return Buffer.concat([Buffer.from([tag]), length, body]);
}

const seq = (...items: Buffer[]): Buffer => tlv(0x30, ...items);
const set = (...items: Buffer[]): Buffer => tlv(0x31, ...items);
const bitString = (bytes: Buffer, unusedBits = 0): Buffer =>
  tlv(0x03, Buffer.from([unusedBits]), bytes);
const octetString = (bytes: Buffer): Buffer => tlv(0x04, bytes);
const printable = (text: string): Buffer => tlv(0x13, Buffer.from(text, "ascii"));
const TRUE = tlv(0x01, Buffer.from([0xff]));

function oid(dotted: string): Buffer {
  const [a = 0, b = 0, ...rest] = dotted.split(".").map(Number);
  const bytes = [a * 40 + b];
  for (const n of rest) {
    const groups = [n & 0x7f];
    for (let v = Math.floor(n / 128); v > 0; v = Math.floor(v / 128)) {
      groups.unshift((v & 0x7f) | 0x80);
    }
    bytes.push(...groups);
  }
  return tlv(0x06, Buffer.from(bytes));
}

/** RFC 5280: UTCTime through 2049, GeneralizedTime from 2050. */
function time(date: Date): Buffer {
  const iso = date.toISOString().replace(/[-:T]/g, "").slice(0, 14); // YYYYMMDDHHMMSS
  return date.getUTCFullYear() < 2050
    ? tlv(0x17, Buffer.from(`${iso.slice(2)}Z`, "ascii"))
    : tlv(0x18, Buffer.from(`${iso}Z`, "ascii"));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), TRUE, octetString(value)) : seq(oid(id), octetString(value));
}

/** O=HashiCorp, CN=localhost, in the order Go writes them. */
const NAME = seq(
  set(seq(oid("2.5.4.10"), printable("HashiCorp"))),
  set(seq(oid("2.5.4.3"), printable(AUTO_MTLS_SERVER_NAME))),
);

/**
 * The TBSCertificate of go-plugin's generateCert: version 3, self-issued,
 * key usage digitalSignature | keyEncipherment | keyAgreement | keyCertSign
 * (critical), extended key usage clientAuth and serverAuth, basic
 * constraints CA (critical), and the DNS name "localhost".
 */
function encodeTbs(fields: {
  serial: Buffer;
  notBefore: Date;
  notAfter: Date;
  spki: Buffer;
  signatureAlgorithm: Buffer;
}): Buffer {
  const extensions = seq(
    // Bits 0, 2, 4 and 5 of the first byte: 1010 1100; the last 2 bits unused.
    extension("2.5.29.15", true, bitString(Buffer.from([0xac]), 2)),
    extension("2.5.29.37", false, seq(oid("1.3.6.1.5.5.7.3.2"), oid("1.3.6.1.5.5.7.3.1"))),
    extension("2.5.29.19", true, seq(TRUE)),
    extension("2.5.29.17", false, seq(tlv(0x82, Buffer.from(AUTO_MTLS_SERVER_NAME, "ascii")))),
  );
  return seq(
    tlv(0xa0, tlv(0x02, Buffer.from([2]))), // [0] EXPLICIT version v3
    tlv(0x02, fields.serial),
    fields.signatureAlgorithm,
    NAME,
    seq(time(fields.notBefore), time(fields.notAfter)),
    NAME,
    fields.spki,
    tlv(0xa3, extensions), // [3] EXPLICIT extensions
  );
}

/** The handshake line's certificate field: DER in unpadded standard base64. */
export function certificateForHandshake(der: Uint8Array): string {
  return Buffer.from(der).toString("base64").replace(/=+$/, "");
}

/**
 * Turns the handshake line's certificate field back into PEM. Throws a
 * readable error when the field is not a certificate.
 */
export function certificateFromHandshake(field: string): string {
  const der = Buffer.from(field, "base64");
  try {
    new X509Certificate(der);
  } catch (error) {
    throw new Error(
      `the certificate in the plugin's handshake line is not a valid X.509 certificate ` +
        `(${(error as Error).message})`,
    );
  }
  return derToPem(der);
}

/** PEM-encodes a DER certificate. */
export function derToPem(der: Uint8Array): string {
  return pem("CERTIFICATE", der);
}

function pem(label: string, der: Uint8Array): string {
  const body = Buffer.from(der).toString("base64").replace(/.{64}/g, "$&\n");
  return `-----BEGIN ${label}-----\n${body.endsWith("\n") ? body : `${body}\n`}-----END ${label}-----\n`;
}
