/**
 * The bytes a manifest signature covers. Canonical JSON: object keys sorted
 * by UTF-16 code units at every level, no whitespace, strings and numbers as
 * JSON.stringify writes them (manifests hold only strings, integers, booleans,
 * arrays and objects, so this matches RFC 8785 for them). A YAML manifest and
 * its JSON twin therefore have the same canonical bytes and one signature.
 * The bytes are prefixed with a domain tag, so that a signature over a
 * manifest can never be replayed as a signature over anything else.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") {
    if (typeof value === "number" && !Number.isFinite(value)) {
      throw new Error("canonical JSON has no representation for NaN or Infinity");
    }
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const record = value as Record<string, unknown>;
  // Array.prototype.sort's default order compares UTF-16 code units.
  const keys = Object.keys(record)
    .filter((k) => record[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(record[k])}`).join(",")}}`;
}

/** The domain tag in front of the canonical manifest in signed bytes. */
export const SIGNATURE_DOMAIN = "connect-plugin-manifest-v1\n";

/** The exact bytes an ed25519 manifest signature is made over. */
export function signedBytes(manifest: unknown): Buffer {
  return Buffer.from(SIGNATURE_DOMAIN + canonicalJson(manifest)); // UTF-8
}
