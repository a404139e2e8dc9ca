import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ManagementError } from "../manifest/errors.js";
import type { PluginManifest } from "../manifest/types.js";
import { signedBytes } from "./canonical.js";

/** A detached manifest signature, stored as `plugin.sig` (JSON). */
export interface ManifestSignature {
  readonly algorithm: "ed25519";
  /** `sha256:<hex>` of the signing public key's SPKI DER encoding. */
  readonly keyId: string;
  /** base64 of the 64-byte ed25519 signature over signedBytes(manifest). */
  readonly signature: string;
}

/** An ed25519 key pair as PEM text (PKCS#8 private, SPKI public). */
export interface KeyPair {
  readonly privateKeyPem: string;
  readonly publicKeyPem: string;
  readonly keyId: string;
}

/** A public key the host trusts, with where it came from (for messages). */
export interface TrustedKey {
  readonly keyId: string;
  readonly key: KeyObject;
  readonly origin: string;
}

/** The key id of a public key: sha256 of its SPKI DER. */
export function keyIdOf(publicKey: KeyObject): string {
  const der = publicKey.export({ type: "spki", format: "der" });
  return `sha256:${createHash("sha256").update(der).digest("hex")}`;
}

/** Makes a new ed25519 key pair. */
export function generateKeyPair(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return {
    privateKeyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
    keyId: keyIdOf(publicKey),
  };
}

/**
 * Signs a manifest with an ed25519 private key (PEM). `origin` names the key
 * in errors (default "signing key"; the CLI passes the --key file).
 */
export function signManifest(
  manifest: PluginManifest,
  privateKeyPem: string,
  origin = "signing key",
): ManifestSignature {
  let key: KeyObject;
  try {
    key = createPrivateKey(privateKeyPem);
  } catch (e) {
    throw new ManagementError(
      "invalid-config",
      `${origin} is not a PEM private key (${(e as Error).message}); make one with connect-plugin keygen`,
      { cause: e },
    );
  }
  if (key.asymmetricKeyType !== "ed25519") {
    throw new ManagementError(
      "invalid-config",
      `${origin} is ${String(key.asymmetricKeyType)}, not ed25519`,
    );
  }
  return {
    algorithm: "ed25519",
    keyId: keyIdOf(createPublicKey(key)),
    signature: sign(null, signedBytes(manifest), key).toString("base64"),
  };
}

/** Parses a public key PEM into a TrustedKey. */
export function trustedKey(pem: string, origin: string): TrustedKey {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (e) {
    throw new ManagementError("invalid-config", `trusted key ${origin} is not a PEM public key`, {
      cause: e,
    });
  }
  if (key.asymmetricKeyType !== "ed25519") {
    throw new ManagementError("invalid-config", `trusted key ${origin} is not an ed25519 key`);
  }
  return { keyId: keyIdOf(key), key, origin };
}

/** Loads every `*.pub` / `*.pem` public key in a directory (missing dir: none). */
export function loadTrustedKeys(dir: string): TrustedKey[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return [];
    if (code === "ENOTDIR")
      throw new ManagementError(
        "invalid-config",
        `trusted keys directory ${dir} is not a directory`,
      );
    throw e;
  }
  const keyFiles = names.filter((n) => n.endsWith(".pub") || n.endsWith(".pem"));
  // Name order, so that messages list the keys the same way everywhere.
  // Stryker disable next-line MethodExpression: readdirSync already sorts (libuv's scandir); this keeps the order should that change.
  keyFiles.sort();
  return keyFiles.map((n) => trustedKey(readFileSync(join(dir, n)).toString(), join(dir, n)));
}

/**
 * The 64 signature bytes, or undefined unless `base64` is exactly their
 * padded base64: Node's decoder would skip stray characters and stop at
 * padding, so that many texts would pass as one signature.
 */
function signatureBytes(base64: string): Buffer | undefined {
  const bytes = Buffer.from(base64, "base64");
  return bytes.length === 64 && bytes.toString("base64") === base64 ? bytes : undefined;
}

/** Parses `plugin.sig` text. */
export function parseSignature(text: string, where: string): ManifestSignature {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ManagementError("verification-failed", `signature ${where} is not JSON`);
  }
  // JSON null is no signature either (a refusal, not a TypeError).
  const sig = (value ?? {}) as Partial<ManifestSignature>;
  if (
    sig.algorithm !== "ed25519" ||
    typeof sig.keyId !== "string" ||
    typeof sig.signature !== "string"
  ) {
    throw new ManagementError(
      "verification-failed",
      `signature ${where} must be {"algorithm":"ed25519","keyId":...,"signature":...}`,
    );
  }
  if (signatureBytes(sig.signature) === undefined) {
    throw new ManagementError(
      "verification-failed",
      `signature ${where}: "signature" must be the base64 of a 64-byte ed25519 signature`,
    );
  }
  return sig as ManifestSignature;
}

/**
 * Checks a manifest's signature against the trusted keys. Returns the key
 * that signed it; throws "verification-failed" naming the plugin and the key
 * when the key is not trusted or the signature does not match the manifest.
 */
export function verifyManifestSignature(
  manifest: PluginManifest,
  signature: ManifestSignature,
  trusted: readonly TrustedKey[],
  trustedKeysDir?: string,
): TrustedKey {
  const label = `plugin "${manifest.name}" ${manifest.version}`;
  const key = trusted.find((k) => k.keyId === signature.keyId);
  if (key === undefined) {
    const searched =
      trustedKeysDir === undefined
        ? trusted.length === 0
          ? " (no trusted keys are configured)"
          : ""
        : trusted.length === 0
          ? ` (no trusted keys in ${trustedKeysDir}: put the signer's .pub file there)`
          : ` (trusted keys in ${trustedKeysDir}: ${trusted.map((k) => k.keyId).join(", ")})`;
    throw new ManagementError(
      "verification-failed",
      `${label} is signed by key ${signature.keyId}, which is not a trusted key${searched}`,
    );
  }
  const bytes = signatureBytes(signature.signature);
  if (bytes === undefined) {
    throw new ManagementError(
      "verification-failed",
      `${label}: the signature by key ${signature.keyId} is not the base64 of a 64-byte ed25519 signature`,
    );
  }
  const ok = verify(null, signedBytes(manifest), key.key, bytes);
  if (!ok) {
    throw new ManagementError(
      "verification-failed",
      `${label}: the signature by key ${signature.keyId} does not match the manifest ` +
        `(the manifest was changed after signing)`,
    );
  }
  return key;
}
