import { readdir } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import { sha256File } from "./digest.js";
import { MANIFEST_FILES, SIGNATURE_FILE } from "./types.js";

/**
 * The `files` map for a plugin directory: every regular file except the
 * manifest and the signature, by `/`-separated relative path, with its sha256.
 */
export async function computeFiles(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const skip = new Set<string>([...MANIFEST_FILES, SIGNATURE_FILE]);
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      const rel = relative(dir, path).split(sep).join("/");
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile() && !skip.has(rel)) out[rel] = await sha256File(path);
    }
  };
  await walk(dir);
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)));
}
