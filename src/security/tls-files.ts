import { readFileSync } from "node:fs";

/**
 * Reads PEM files for the TLS options of `remote()`, `cluster()` and
 * `serve()`, which take PEM contents: `tls: tlsFromFiles({ ca: "ca.pem",
 * cert: "client.pem", key: "client-key.pem" })`. Files are read once, when
 * called; a missing file fails here with its path in the message rather than
 * at the first call.
 */
export function tlsFromFiles<K extends string>(
  files: Readonly<Record<K, string | undefined>>,
): Record<K, Buffer> {
  const out = {} as Record<K, Buffer>;
  for (const [name, path] of Object.entries(files) as [K, string | undefined][]) {
    if (path === undefined) continue;
    try {
      out[name] = readFileSync(path);
    } catch (error) {
      throw new Error(`cannot read the TLS ${name} file ${path}: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }
  return out;
}
