import { existsSync } from "node:fs";
import { lstat, readdir, readFile } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import { ManagementError } from "../manifest/errors.js";
import { filesFor, parseManifest } from "../manifest/manifest.js";
import { hostPlatform } from "../manifest/platform.js";
import { MANIFEST_FILES, SIGNATURE_FILE, type PluginManifest } from "../manifest/types.js";
import { sha256File } from "../manifest/digest.js";
import {
  parseSignature,
  verifyManifestSignature,
  type ManifestSignature,
  type TrustedKey,
} from "./signing.js";

/** A plugin directory's manifest, read and validated but not yet verified. */
export interface LoadedPlugin {
  readonly dir: string;
  readonly manifestFile: string;
  readonly manifest: PluginManifest;
  readonly signature: ManifestSignature | undefined;
}

/** How a plugin directory passed verification. */
export interface Verification {
  /** The trusted key that signed it, or undefined when unsigned plugins were allowed. */
  readonly signedBy: string | undefined;
  /** The files checked, with their digests. */
  readonly files: Readonly<Record<string, string>>;
  readonly platform: string;
}

export interface VerifyOptions {
  readonly trustedKeys: readonly TrustedKey[];
  /** Where trustedKeys were read from, named when a signer is not trusted. */
  readonly trustedKeysDir?: string;
  /** Run plugins without a signature. Off by default: unsigned plugins fail closed. */
  readonly allowUnsigned?: boolean;
  /** The platform whose files must be present. Defaults to this host's. */
  readonly platform?: string;
}

/**
 * The manifest file in `dir`, or undefined. Two (plugin.json beside a stale
 * plugin.yaml, say) are refused, naming both: which one counts would
 * otherwise depend on a lookup order, and the other would be a file that
 * signing leaves out of `files` and verification then refuses.
 */
export function findManifestFile(dir: string): string | undefined {
  const found = MANIFEST_FILES.filter((name) => existsSync(join(dir, name)));
  if (found.length > 1) {
    throw new ManagementError(
      "invalid-manifest",
      `${dir} has more than one manifest (${found.join(", ")}); keep one`,
    );
  }
  return found[0];
}

/** Reads and validates the manifest (and signature, if any) of a plugin directory. */
export async function loadPluginDir(dir: string): Promise<LoadedPlugin> {
  const manifestFile = findManifestFile(dir);
  if (manifestFile === undefined) {
    throw new ManagementError(
      "not-found",
      `${dir} is not a plugin directory: it has no ${MANIFEST_FILES.join(" or ")}`,
    );
  }
  const manifest = parseManifest(
    await readFile(join(dir, manifestFile), "utf8"),
    join(dir, manifestFile),
  );
  const sigPath = join(dir, SIGNATURE_FILE);
  const signature = existsSync(sigPath)
    ? parseSignature(await readFile(sigPath, "utf8"), sigPath)
    : undefined;
  return { dir, manifestFile, manifest, signature };
}

/** Every regular file under dir, as `/`-separated relative paths; symlinks are refused. */
async function listFiles(root: string, dir = root): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const rel = relative(root, path).split(sep).join("/");
    if (entry.isDirectory()) out.push(...(await listFiles(root, path)));
    else if (entry.isFile()) out.push(rel);
    else {
      const kind = (await lstat(path)).isSymbolicLink() ? "a symbolic link" : "not a regular file";
      throw new ManagementError(
        "verification-failed",
        `${path} is ${kind}; plugins ship only regular files`,
      );
    }
  }
  return out;
}

/**
 * Verifies a plugin directory before anything in it runs: the signature over
 * the manifest against the trusted keys (unless unsigned plugins are
 * allowed), then the sha256 of every file the platform needs, and that no
 * file is there that the manifest does not list. Fails closed with a
 * "verification-failed" error naming the plugin, the file, and the expected
 * and actual digests.
 */
export async function verifyPluginDir(
  loaded: LoadedPlugin,
  options: VerifyOptions,
): Promise<Verification> {
  const { manifest, dir } = loaded;
  const label = `plugin "${manifest.name}" ${manifest.version}`;
  let signedBy: string | undefined;
  if (loaded.signature === undefined) {
    if (options.allowUnsigned !== true) {
      throw new ManagementError(
        "verification-failed",
        `${label} at ${dir} is unsigned (no ${SIGNATURE_FILE}); refusing to run it. ` +
          `Sign it with 'connect-plugin sign', or allow unsigned plugins explicitly`,
      );
    }
  } else {
    signedBy = verifyManifestSignature(
      manifest,
      loaded.signature,
      options.trustedKeys,
      options.trustedKeysDir,
    ).keyId;
  }
  const platform = options.platform ?? hostPlatform();
  const needed = filesFor(manifest, platform);
  const present = new Set(await listFiles(dir));
  for (const name of [loaded.manifestFile, SIGNATURE_FILE]) present.delete(name);
  for (const file of present) {
    if (manifest.files[file] === undefined) {
      throw new ManagementError(
        "verification-failed",
        `${label}: file ${file} in ${dir} is not listed in the manifest`,
      );
    }
  }
  const files: Record<string, string> = {};
  for (const file of needed) {
    const expected = manifest.files[file] as string;
    if (!present.has(file)) {
      throw new ManagementError(
        "verification-failed",
        `${label}: file ${file} is missing from ${dir}`,
      );
    }
    const actual = await sha256File(join(dir, file));
    if (actual !== expected) {
      throw new ManagementError(
        "verification-failed",
        `${label}: file ${file} has digest ${actual}, but the manifest expects ${expected}`,
      );
    }
    files[file] = actual;
  }
  return { signedBy, files, platform };
}
