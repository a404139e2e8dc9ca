import { existsSync, readFileSync } from "node:fs";
import { rename, writeFile } from "node:fs/promises";
import { ManagementError } from "../manifest/errors.js";

/**
 * One plugin pinned by a lockfile: installing it again fetches exactly
 * these bytes (the index digest pins the manifests, which pin every blob).
 */
export interface LockEntry {
  /** The reference it was installed from, e.g. `127.0.0.1:5000/plugins/kv:1.0.0`. */
  readonly reference: string;
  /** Digest of what the reference resolved to (the image index). */
  readonly digest: string;
  readonly version: string;
  readonly platform: string;
  /** Digest of the platform's image manifest. */
  readonly manifestDigest: string;
}

/** `connect-plugin.lock.json`. */
export interface Lockfile {
  readonly lockfileVersion: 1;
  readonly plugins: Readonly<Record<string, LockEntry>>;
}

export function readLockfile(path: string): Lockfile {
  if (!existsSync(path)) return { lockfileVersion: 1, plugins: {} };
  let value: Lockfile;
  try {
    value = JSON.parse(readFileSync(path, "utf8")) as Lockfile;
  } catch (e) {
    throw new ManagementError(
      "invalid-config",
      `lockfile ${path} is not JSON: ${(e as Error).message}`,
    );
  }
  if (value.lockfileVersion !== 1 || typeof value.plugins !== "object") {
    throw new ManagementError(
      "invalid-config",
      `lockfile ${path} is not a version 1 connect-plugin lockfile`,
    );
  }
  return value;
}

/** Writes the lockfile atomically, with plugins sorted by name for stable diffs. */
export async function writeLockfile(path: string, lock: Lockfile): Promise<void> {
  const plugins = Object.fromEntries(
    Object.entries(lock.plugins).sort(([a], [b]) => a.localeCompare(b)),
  );
  const temp = `${path}.tmp`;
  await writeFile(temp, JSON.stringify({ lockfileVersion: 1, plugins }, null, 2) + "\n");
  await rename(temp, path);
}
