import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ManagementError } from "../manifest/errors.js";
import { isDigest, sha256 } from "../manifest/digest.js";

/**
 * A content-addressed blob cache: `<dir>/blobs/sha256/<hex>`, the OCI image
 * layout's blob path. A blob is written to a temporary name and renamed
 * into place only after its digest matched, so the cache never holds a
 * partial or corrupt blob under a digest's name, and readers check again.
 */
export class BlobCache {
  constructor(readonly dir: string) {}

  /**
   * The blob's path. Refuses anything but `sha256:<64 hex>`, so that no
   * digest taken from a registry can name a path outside the cache.
   */
  path(digest: string): string {
    if (!isDigest(digest)) {
      throw new ManagementError(
        "verification-failed",
        `refusing malformed digest ${JSON.stringify(digest.slice(0, 100))}: expected sha256:<64 hex digits>`,
      );
    }
    return join(this.dir, "blobs", "sha256", digest.replace(/^sha256:/, ""));
  }

  has(digest: string): boolean {
    return existsSync(this.path(digest));
  }

  /** The cached blob, re-verified; undefined when absent or corrupt (then removed). */
  async get(digest: string): Promise<Buffer | undefined> {
    if (!this.has(digest)) return undefined;
    const data = await readFile(this.path(digest));
    if (sha256(data) === digest) return data;
    await rm(this.path(digest), { force: true });
    return undefined;
  }

  async put(digest: string, data: Buffer): Promise<string> {
    const actual = sha256(data);
    if (actual !== digest) {
      throw new ManagementError(
        "verification-failed",
        `refusing to cache blob ${digest}: its content has digest ${actual}`,
      );
    }
    const target = this.path(digest);
    await mkdir(join(this.dir, "blobs", "sha256"), { recursive: true });
    const temp = `${target}.${randomBytes(6).toString("hex")}.tmp`;
    try {
      await writeFile(temp, data);
      await rename(temp, target);
    } catch (e) {
      await rm(temp, { force: true });
      throw ioError(e, `caching blob ${digest} in ${this.dir}`);
    }
    return target;
  }
}

/** A ManagementError("io") for a failed file operation, naming what was being done. */
export function ioError(e: unknown, doing: string): ManagementError {
  if (e instanceof ManagementError) return e;
  const err = e as NodeJS.ErrnoException;
  const why = err.code === "ENOSPC" ? "no space left on device" : err.message;
  return new ManagementError("io", `${doing}: ${why}`, { cause: e });
}
