/**
 * Manifest signing and verification, with known answers made outside this
 * code (openssl, from RFC 8032's first test key): the key id, the signature
 * bytes, and every message a user sees when a key or a signature is refused.
 */
import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { ManagementError } from "../../../src/manifest/errors.js";
import { failsWith } from "../management-error.js";
import { validateManifest } from "../../../src/manifest/manifest.js";
import type { PluginManifest } from "../../../src/manifest/types.js";
import {
  generateKeyPair,
  keyIdOf,
  loadTrustedKeys,
  parseSignature,
  signManifest,
  trustedKey,
  verifyManifestSignature,
  type ManifestSignature,
} from "../../../src/security/signing.js";

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** RFC 8032 section 7.1 test 1: secret key, as PKCS#8 PEM. */
const rfcPrivatePem = createPrivateKey({
  key: Buffer.from(
    "302e020100300506032b657004220420" +
      "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    "hex",
  ),
  format: "der",
  type: "pkcs8",
})
  .export({ type: "pkcs8", format: "pem" })
  .toString();
/** Its public key (d75a9801...), as `openssl pkey -pubout` prints it. */
const rfcPublicPem =
  "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END PUBLIC KEY-----\n";
/** `openssl pkey -pubout -outform DER | sha256sum` */
const rfcKeyId = "sha256:06e3fd8fda29bb60ab59557de61edb0aecdb231134be30e75b455f8e1b792fa9";

const manifest = {
  schemaVersion: 1,
  name: "kv",
  version: "1.0.0",
  description: "kv store",
  license: "MIT",
  entrypoints: { "linux/amd64": { file: "kv" } },
  protocolVersions: [1],
  plugins: [{ name: "kv", service: "example.kv.v1.KV" }],
  hostVersions: ">=0.1.0",
  files: { kv: `sha256:${"a".repeat(64)}` },
} satisfies PluginManifest;

/**
 * `openssl pkeyutl -sign -rawin` over the domain tag and the canonical
 * manifest above (ed25519 signatures are deterministic).
 */
const rfcSignature =
  "k5nIuBawkiuL9HhPuV0HebYLCZXqV3+k6CbCrh2EyRXpcwthjZtw1U1pyCV5Om2f8kt1D27JcWVewRfs92nwCA==";

const fails = failsWith;

describe("key ids and key pairs", () => {
  test("the key id is sha256 of the public key's SPKI DER, as openssl computes it", () => {
    assert.equal(keyIdOf(createPublicKey(rfcPublicPem)), rfcKeyId);
    assert.equal(keyIdOf(createPublicKey(rfcPrivatePem)), rfcKeyId, "derived from the private key");
  });

  test("a new key pair is ed25519 PEM whose key id is that of its public key", () => {
    const pair = generateKeyPair();
    assert.match(
      pair.privateKeyPem,
      /^-----BEGIN PRIVATE KEY-----\n[\s\S]+-----END PRIVATE KEY-----\n$/,
    );
    assert.match(
      pair.publicKeyPem,
      /^-----BEGIN PUBLIC KEY-----\n[\s\S]+-----END PUBLIC KEY-----\n$/,
    );
    const pub = createPublicKey(pair.publicKeyPem);
    assert.equal(pub.asymmetricKeyType, "ed25519");
    assert.equal(createPrivateKey(pair.privateKeyPem).asymmetricKeyType, "ed25519");
    assert.equal(pair.keyId, keyIdOf(pub));
    assert.match(pair.keyId, /^sha256:[0-9a-f]{64}$/);
    // The two halves belong together, and every pair is new.
    const data = Buffer.from("x");
    assert.ok(verify(null, data, pub, sign(null, data, createPrivateKey(pair.privateKeyPem))));
    assert.notEqual(generateKeyPair().keyId, pair.keyId);
  });
});

describe("signing a manifest", () => {
  test("the signature is the known answer over the tagged canonical manifest", () => {
    assert.deepEqual(signManifest(manifest, rfcPrivatePem), {
      algorithm: "ed25519",
      keyId: rfcKeyId,
      signature: rfcSignature,
    });
    // Key order in the manifest does not change the signature.
    const reordered = Object.fromEntries(
      Object.entries(manifest).reverse(),
    ) as unknown as PluginManifest;
    assert.equal(signManifest(reordered, rfcPrivatePem).signature, rfcSignature);
  });

  test("a signing key that is not ed25519 is refused, naming its type", () => {
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" })
      .privateKey.export({ type: "pkcs8", format: "pem" })
      .toString();
    fails(() => signManifest(manifest, ec), "invalid-config", "signing key is ec, not ed25519");
    const x = generateKeyPairSync("x25519")
      .privateKey.export({ type: "pkcs8", format: "pem" })
      .toString();
    fails(() => signManifest(manifest, x), "invalid-config", "signing key is x25519, not ed25519");
  });
});

describe("trusted keys", () => {
  test("a public key PEM becomes a trusted key with its id and origin", () => {
    const k = trustedKey(rfcPublicPem, "keys/release.pub");
    assert.equal(k.keyId, rfcKeyId);
    assert.equal(k.origin, "keys/release.pub");
    assert.equal(k.key.asymmetricKeyType, "ed25519");
    assert.equal(k.key.type, "public");
  });

  test("text that is not a key is refused, naming where it came from", () => {
    assert.throws(
      () => trustedKey("not a key", "keys/bad.pub"),
      (e: unknown) => {
        assert.ok(e instanceof ManagementError);
        assert.equal(e.kind, "invalid-config");
        assert.equal(e.message, "trusted key keys/bad.pub is not a PEM public key");
        assert.ok(e.cause instanceof Error, "the parser's error is kept as the cause");
        return true;
      },
    );
  });

  test("a public key that is not ed25519 is refused", () => {
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" })
      .publicKey.export({ type: "spki", format: "pem" })
      .toString();
    fails(
      () => trustedKey(ec, "keys/ec.pub"),
      "invalid-config",
      "trusted key keys/ec.pub is not an ed25519 key",
    );
  });

  test("a directory's .pub and .pem files are loaded in name order; other files are not", () => {
    const dir = tempDir("cp-keys-");
    const second = generateKeyPair();
    writeFileSync(join(dir, "b.pem"), second.publicKeyPem);
    writeFileSync(join(dir, "a.pub"), rfcPublicPem);
    writeFileSync(join(dir, "notes.txt"), "not a key");
    writeFileSync(join(dir, "c.pub.bak"), "not a key either");
    writeFileSync(join(dir, "pub"), "no extension");
    const keys = loadTrustedKeys(dir);
    assert.deepEqual(
      keys.map((k) => [k.origin, k.keyId]),
      [
        [join(dir, "a.pub"), rfcKeyId],
        [join(dir, "b.pem"), second.keyId],
      ],
    );
  });

  test("a missing directory holds no keys; a bad key file is named", () => {
    const dir = tempDir("cp-keys-");
    assert.deepEqual(loadTrustedKeys(join(dir, "absent")), []);
    writeFileSync(join(dir, "broken.pub"), "-----BEGIN PUBLIC KEY-----\nxx\n");
    fails(
      () => loadTrustedKeys(dir),
      "invalid-config",
      `trusted key ${join(dir, "broken.pub")} is not a PEM public key`,
    );
  });

  test("a path that is not a directory is an error, not an empty key list", () => {
    const dir = tempDir("cp-keys-");
    writeFileSync(join(dir, "file"), "x");
    failsWith(
      () => loadTrustedKeys(join(dir, "file")),
      "invalid-config",
      `trusted keys directory ${join(dir, "file")} is not a directory`,
    );
    mkdirSync(join(dir, "empty"));
    assert.deepEqual(loadTrustedKeys(join(dir, "empty")), []);
  });
});

describe("plugin.sig", () => {
  test("a well-formed signature file parses", () => {
    const sig = { algorithm: "ed25519", keyId: rfcKeyId, signature: rfcSignature };
    assert.deepEqual(parseSignature(JSON.stringify(sig), "dir/plugin.sig"), sig);
  });

  test("text that is not JSON is refused, naming the file", () => {
    fails(
      () => parseSignature("{algorithm: ed25519", "dir/plugin.sig"),
      "verification-failed",
      "signature dir/plugin.sig is not JSON",
    );
  });

  test("any field missing or of the wrong type is refused with the expected shape", () => {
    const shape = `signature dir/plugin.sig must be {"algorithm":"ed25519","keyId":...,"signature":...}`;
    const good = { algorithm: "ed25519", keyId: rfcKeyId, signature: rfcSignature };
    for (const bad of [
      { ...good, algorithm: "rsa" },
      { keyId: good.keyId, signature: good.signature },
      { ...good, keyId: 7 },
      { algorithm: good.algorithm, signature: good.signature },
      { ...good, signature: ["x"] },
      { algorithm: good.algorithm, keyId: good.keyId },
      null,
      "ed25519",
    ]) {
      fails(
        () => parseSignature(JSON.stringify(bad), "dir/plugin.sig"),
        "verification-failed",
        shape,
      );
    }
  });

  test("a signature that is not the plain base64 of 64 bytes is refused, not decoded leniently", () => {
    // Node's base64 decoder skips characters outside the alphabet and stops at
    // padding, so each of these would otherwise decode to the valid signature
    // (or to a wrong-length one, reported as a changed manifest).
    const raw = Buffer.from(rfcSignature, "base64");
    const message = `signature dir/plugin.sig: "signature" must be the base64 of a 64-byte ed25519 signature`;
    for (const bad of [
      `!!!!${rfcSignature}`,
      `${rfcSignature}AAAA`,
      raw.toString("base64url"),
      ` ${rfcSignature}`,
      raw.subarray(0, 63).toString("base64"),
      Buffer.concat([raw, Buffer.from([0])]).toString("base64"),
      "",
    ]) {
      const text = JSON.stringify({ algorithm: "ed25519", keyId: rfcKeyId, signature: bad });
      fails(() => parseSignature(text, "dir/plugin.sig"), "verification-failed", message);
    }
  });
});

describe("verifying a manifest's signature", () => {
  const sig: ManifestSignature = { algorithm: "ed25519", keyId: rfcKeyId, signature: rfcSignature };
  const other = generateKeyPair();
  const otherKey = trustedKey(other.publicKeyPem, "other.pub");
  const rfcKey = trustedKey(rfcPublicPem, "release.pub");

  test("returns the trusted key that made the signature", () => {
    assert.equal(verifyManifestSignature(manifest, sig, [otherKey, rfcKey]), rfcKey);
    assert.equal(verifyManifestSignature(manifest, sig, [rfcKey, otherKey], "/keys"), rfcKey);
  });

  test("a new pair's signature verifies, whatever the key order of the manifest", () => {
    const own = signManifest(manifest, other.privateKeyPem);
    assert.equal(verifyManifestSignature(manifest, own, [rfcKey, otherKey]), otherKey);
    const reordered = Object.fromEntries(
      Object.entries(manifest).reverse(),
    ) as unknown as PluginManifest;
    assert.equal(verifyManifestSignature(reordered, own, [otherKey]), otherKey);
    assert.equal(verifyManifestSignature(reordered, sig, [rfcKey]), rfcKey);
  });

  test("a changed manifest, or another key's signature under this key id, does not verify", () => {
    const changed = `plugin "kv" 1.0.1: the signature by key ${rfcKeyId} does not match the manifest (the manifest was changed after signing)`;
    fails(
      () => verifyManifestSignature({ ...manifest, version: "1.0.1" }, sig, [rfcKey]),
      "verification-failed",
      changed,
    );
    const forged = signManifest(manifest, other.privateKeyPem).signature;
    fails(
      () => verifyManifestSignature(manifest, { ...sig, signature: forged }, [rfcKey]),
      "verification-failed",
      `plugin "kv" 1.0.0: the signature by key ${rfcKeyId} does not match the manifest (the manifest was changed after signing)`,
    );
  });

  test("Node.js options added to a signed manifest do not verify, though the manifest is valid", () => {
    const node = validateManifest({
      ...manifest,
      entrypoints: { "linux/amd64": { file: "kv", runtime: "node" } },
    });
    const signed = signManifest(node, rfcPrivatePem);
    assert.equal(verifyManifestSignature(node, signed, [rfcKey]), rfcKey);
    const widened = validateManifest({
      ...manifest,
      entrypoints: { "linux/amd64": { file: "kv", runtime: "node", nodeOptions: ["--no-opt"] } },
    });
    fails(
      () => verifyManifestSignature(widened, signed, [rfcKey]),
      "verification-failed",
      `plugin "kv" 1.0.0: the signature by key ${rfcKeyId} does not match the manifest (the manifest was changed after signing)`,
    );
  });

  test("a hand-built signature that is not the plain base64 of 64 bytes is refused", () => {
    fails(
      () =>
        verifyManifestSignature(manifest, { ...sig, signature: `${rfcSignature}AAAA` }, [rfcKey]),
      "verification-failed",
      `plugin "kv" 1.0.0: the signature by key ${rfcKeyId} is not the base64 of a 64-byte ed25519 signature`,
    );
  });

  test("an untrusted signer is named, with what the host searched", () => {
    const untrusted = `plugin "kv" 1.0.0 is signed by key ${rfcKeyId}, which is not a trusted key`;
    fails(
      () => verifyManifestSignature(manifest, sig, []),
      "verification-failed",
      `${untrusted} (no trusted keys are configured)`,
    );
    fails(
      () => verifyManifestSignature(manifest, sig, [otherKey]),
      "verification-failed",
      untrusted,
    );
    fails(
      () => verifyManifestSignature(manifest, sig, [], "/etc/cp/keys"),
      "verification-failed",
      `${untrusted} (no trusted keys in /etc/cp/keys: put the signer's .pub file there)`,
    );
    const third = trustedKey(generateKeyPair().publicKeyPem, "third.pub");
    fails(
      () => verifyManifestSignature(manifest, sig, [otherKey, third], "/etc/cp/keys"),
      "verification-failed",
      `${untrusted} (trusted keys in /etc/cp/keys: ${other.keyId}, ${third.keyId})`,
    );
  });
});
