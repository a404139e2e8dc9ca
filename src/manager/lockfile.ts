import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { open, rename, rm, stat, writeFile } from "node:fs/promises";
import { ManagementError } from "../manifest/errors.js";
import { syntaxErrorText } from "../manifest/syntax-error.js";

/**
 * One plugin pinned by a lockfile: installing it again fetches exactly
 * these bytes (the index digest pins the manifests, which pin every blob).
 */
export interface LockEntry {
  /** The reference it was installed from, e.g. `127.0.0.1:5000/plugins/kv:1.0.0`. */
  readonly reference: string;
  /**
   * Digest of what the reference resolved to (the image index, the same on
   * every platform, so one pin serves a team on several platforms).
   */
  readonly digest: string;
  readonly version: string;
  /** The platform of the install that last wrote this entry. */
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
  const text = readFileSync(path, "utf8");
  try {
    value = JSON.parse(text) as Lockfile;
  } catch (e) {
    throw new ManagementError(
      "invalid-config",
      `lockfile ${path} is not JSON: ${syntaxErrorText(text, e)}`,
    );
  }
  if (
    typeof value !== "object" ||
    value === null ||
    value.lockfileVersion !== 1 ||
    typeof value.plugins !== "object" ||
    value.plugins === null ||
    Array.isArray(value.plugins)
  ) {
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
  // A unique temp name: concurrent writers never share (and lose) one.
  const temp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    await writeFile(temp, JSON.stringify({ lockfileVersion: 1, plugins }, null, 2) + "\n");
    await rename(temp, path);
  } catch (e) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw e;
  }
}

/** A lock older than this is taken to be left by a killed process. */
const STALE_LOCK_MS = 30_000;

/**
 * Read-modify-write of the lockfile under an advisory lock (`<path>.lock`,
 * created with O_EXCL), so that concurrent installs sharing a lockfile do
 * not lose each other's entries. Waits up to `waitMs` for the lock; a lock
 * older than 30 s is taken to be stale and removed.
 */
export async function updateLockfile(
  path: string,
  update: (lock: Lockfile) => Lockfile,
  waitMs = 15_000,
): Promise<Lockfile> {
  const lockPath = `${path}.lock`;
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const handle = await open(lockPath, "wx");
      await handle.close();
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const st = await stat(lockPath).catch(() => undefined);
      if (st !== undefined && Date.now() - st.mtimeMs > STALE_LOCK_MS) {
        await rm(lockPath, { force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new ManagementError(
          "io",
          `lockfile ${path} is locked by another install (${lockPath}); remove it if no install is running`,
        );
      }
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 30));
    }
  }
  try {
    const next = update(readLockfile(path));
    await writeLockfile(path, next);
    return next;
  } finally {
    await rm(lockPath, { force: true });
  }
}
