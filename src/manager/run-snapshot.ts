import { constants } from "node:fs";
import { existsSync } from "node:fs";
import { chmod, lstat, mkdir, mkdtemp, open, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, parse } from "node:path";
import { ManagementError } from "../manifest/errors.js";
import { entrypointFor, filesFor } from "../manifest/manifest.js";
import { canonicalJson } from "../security/canonical.js";
import { sha256 } from "../manifest/digest.js";
import type { LoadedPlugin } from "../security/plugin-dir.js";

/**
 * The default root for run snapshots: a per-user directory under the
 * system's temporary directory, which must be ours and 0700.
 */
export function defaultRunRoot(): string {
  const uid = typeof process.getuid === "function" ? process.getuid() : "user";
  return join(tmpdir(), `connect-plugin-run-${uid}`);
}

/**
 * Makes (or reuses) a private, verified copy of the files a plugin needs on
 * `platform`, and returns its directory; the plugin is launched from there,
 * never from its installed directory.
 *
 * Why: hashing files in the plugin directory and then exec'ing them by path
 * lets anyone who can write that directory swap a file between the check
 * and the exec (or between the exec and a later `import()`). Here each file
 * is opened once (O_NOFOLLOW), read into memory, hashed, compared with the
 * manifest (whose signature the caller has verified), and only those bytes
 * are written into a directory that only this user can write. What runs is
 * therefore exactly what was hashed, whatever happens to the plugin
 * directory afterwards.
 *
 * Snapshots are content-addressed by the manifest (which lists every file's
 * digest) and the platform, so restarts reuse them; they are written to a
 * temporary name and renamed into place. The entrypoint of an `exec` plugin
 * is made 0555, every other file 0444, whatever modes the installed copy
 * had (OCI layers and archives do not carry modes the signature covers).
 *
 * For `runtime: "node"` plugins, Node resolves bare imports through the
 * `node_modules` of every ancestor of the snapshot: those files are not
 * verified, so a start is refused when such a directory exists above the
 * run root.
 */
export async function snapshotForRun(
  loaded: LoadedPlugin,
  platform: string,
  runRoot: string,
): Promise<string> {
  const { manifest } = loaded;
  const label = `plugin "${manifest.name}" ${manifest.version}`;
  await ensurePrivateRoot(runRoot);
  const entry = entrypointFor(manifest, platform);
  if (entry.runtime === "node") refuseAncestorNodeModules(runRoot, label);
  const key = sha256(canonicalJson({ manifest, platform })).slice("sha256:".length, 39);
  const target = join(runRoot, `${manifest.name}-${key}`);
  if (await isDir(target)) return target;
  const temp = await mkdtemp(join(runRoot, ".tmp-"));
  try {
    for (const file of filesFor(manifest, platform)) {
      const data = await readRegular(join(loaded.dir, file), label, file);
      const actual = sha256(data);
      const expected = manifest.files[file];
      if (actual !== expected) {
        throw new ManagementError(
          "verification-failed",
          `${label}: file ${file} has digest ${actual}, but the manifest expects ${expected ?? "(unlisted)"}` +
            ` (it changed while being copied for the run)`,
        );
      }
      const dest = join(temp, file);
      await mkdir(dirname(dest), { recursive: true, mode: 0o700 });
      const executable = file === entry.file && entry.runtime !== "node";
      await writeFile(dest, data, { flag: "wx", mode: executable ? 0o555 : 0o444 });
      await chmod(dest, executable ? 0o555 : 0o444); // umask-proof
    }
    await writeFile(join(temp, "plugin.json"), JSON.stringify(manifest, null, 2) + "\n", {
      mode: 0o444,
    });
    try {
      await rename(temp, target);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if ((code === "ENOTEMPTY" || code === "EEXIST") && (await isDir(target))) {
        await rm(temp, { recursive: true, force: true });
        return target; // another start made the same snapshot first
      }
      throw e;
    }
    return target;
  } catch (e) {
    await rm(temp, { recursive: true, force: true }).catch(() => undefined);
    if (e instanceof ManagementError) throw e;
    const err = e as NodeJS.ErrnoException;
    throw new ManagementError(
      "io",
      `${label}: cannot make its private run copy in ${runRoot}: ` +
        (err.code === "ENOSPC" ? "no space left on device" : err.message),
      { cause: e },
    );
  }
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await lstat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** Reads a regular file through one descriptor, refusing symlinks and special files. */
async function readRegular(path: string, label: string, file: string): Promise<Buffer> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ManagementError(
      "verification-failed",
      code === "ELOOP"
        ? `${label}: file ${file} is a symbolic link; plugins ship only regular files`
        : `${label}: cannot read file ${file}: ${(e as Error).message}`,
    );
  }
  try {
    if (!(await handle.stat()).isFile()) {
      throw new ManagementError(
        "verification-failed",
        `${label}: file ${file} is not a regular file; plugins ship only regular files`,
      );
    }
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

/** Creates the run root 0700, or checks that an existing one is ours, a real directory, and 0700. */
async function ensurePrivateRoot(root: string): Promise<void> {
  await mkdir(root, { recursive: true, mode: 0o700 });
  const st = await lstat(root);
  const uid = typeof process.getuid === "function" ? process.getuid() : undefined;
  if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o077) !== 0) {
    throw new ManagementError(
      "verification-failed",
      `refusing the plugin run directory ${root}: it must be a directory owned by this user ` +
        `with mode 0700 (it is ${st.isDirectory() ? "a directory" : "not a directory"}, ` +
        `owner ${st.uid}, mode ${(st.mode & 0o777).toString(8)})`,
    );
  }
}

function refuseAncestorNodeModules(runRoot: string, label: string): void {
  const { root } = parse(runRoot);
  for (let dir = runRoot; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules");
    if (existsSync(candidate)) {
      throw new ManagementError(
        "verification-failed",
        `${label} is a node plugin and would run from ${runRoot}, but ${candidate} exists: ` +
          `Node would load unverified code from it for any bare import the plugin does not bundle. ` +
          `Remove it, or give the manager a runDir with no node_modules above it`,
      );
    }
    if (dir === root) return;
  }
}
