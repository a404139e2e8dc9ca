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
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}

/** The domain tag in front of the canonical manifest in signed bytes. */
export const SIGNATURE_DOMAIN = "connect-plugin-manifest-v1\n";

/** The exact bytes an ed25519 manifest signature is made over. */
export function signedBytes(manifest: unknown): Buffer {
  return Buffer.from(SIGNATURE_DOMAIN + canonicalJson(manifest), "utf8");
}
