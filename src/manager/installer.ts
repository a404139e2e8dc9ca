import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import * as fsp from "node:fs/promises";
import { chmod, mkdir, readdir, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import * as tar from "tar";
import { ManagementError } from "../manifest/errors.js";
import { unsafePath } from "../manifest/manifest.js";
import { SIGNATURE_FILE } from "../manifest/types.js";
import { ioError } from "../oci/blob-cache.js";
import type { PulledPlugin } from "../oci/artifact.js";
import {
  loadPluginDir,
  verifyPluginDir,
  type LoadedPlugin,
  type Verification,
  type VerifyOptions,
} from "../security/plugin-dir.js";

/** What an install put where. */
export interface Installed {
  readonly name: string;
  readonly version: string;
  readonly dir: string;
  readonly verification: Verification;
  /** The version this install replaced, if the plugin was installed already. */
  readonly previousVersion?: string;
}

/**
 * The file operations an install writes with. A seam for tests that inject
 * the failures a real disk gives rarely (ENOSPC, a failing rename); the
 * defaults are node:fs/promises.
 */
export interface InstallFileOps {
  readonly copyFile: (from: string, to: string) => Promise<void>;
  readonly writeFile: (path: string, data: string) => Promise<void>;
  readonly rename: (from: string, to: string) => Promise<void>;
}

const realOps: InstallFileOps = {
  copyFile: (from, to) => fsp.copyFile(from, to),
  writeFile: (path, data) => fsp.writeFile(path, data),
  rename: (from, to) => fsp.rename(from, to),
};

/** Leftover `.staging-*` and `.old-*` directories older than this are swept. */
const STALE_MS = 10 * 60_000;

/**
 * Installs plugins into a plugins directory (`<dir>/<name>/`) so that an
 * install either completes or leaves the previous install in place: files
 * go to a staging directory inside the plugins directory, the staged copy is
 * verified (signature and every digest), and only then renamed into place.
 * Replacing moves the old version aside (`.old-<name>-<rand>`), renames the
 * new one in, and removes the old one; if the second rename fails the old
 * version is moved back. Any failure (bad digest, full disk, traversal)
 * removes the staging directory. One window remains: a process killed
 * between the two renames leaves the plugin missing and its old version in
 * `.old-<name>-*`; the next install into the directory sweeps such
 * leftovers once they are ten minutes old (a rename, not a symlink swap,
 * so this is not atomic across a crash).
 */
export class Installer {
  private readonly ops: InstallFileOps;

  constructor(
    readonly pluginsDir: string,
    private readonly verify: VerifyOptions,
    ops: Partial<InstallFileOps> = {},
  ) {
    this.ops = { ...realOps, ...ops };
  }

  /** Installs a copy of a plugin directory. */
  async fromDirectory(source: string): Promise<Installed> {
    const loaded = await loadPluginDir(source);
    return this.stage(loaded.manifest.name, async (staging) => {
      for (const file of [
        loaded.manifestFile,
        SIGNATURE_FILE,
        ...Object.keys(loaded.manifest.files),
      ]) {
        if (!existsSync(join(source, file))) continue;
        await mkdir(dirname(join(staging, file)), { recursive: true });
        await this.ops.copyFile(join(source, file), join(staging, file));
      }
    });
  }

  /**
   * Installs a `.tar.gz` archive whose root holds the manifest and files.
   * The archive is read once: each entry is checked as it is extracted
   * (unsafe ones are not written), and any unsafe entry fails the install,
   * which removes the staging directory. Owners are not kept (as root,
   * node-tar would otherwise give files the archive's owners).
   */
  async fromArchive(archive: string): Promise<Installed> {
    if (!existsSync(archive))
      throw new ManagementError("not-found", `archive ${archive} does not exist`);
    return this.stage(undefined, (staging) => extractArchive(archive, staging));
  }

  /** Installs a plugin pulled into the blob cache. */
  async fromPulled(pulled: PulledPlugin): Promise<Installed> {
    return this.stage(
      pulled.manifest.name,
      async (staging) => {
        await this.ops.writeFile(
          join(staging, "plugin.json"),
          JSON.stringify(pulled.manifest, null, 2) + "\n",
        );
        if (pulled.signature !== undefined) {
          await this.ops.writeFile(
            join(staging, SIGNATURE_FILE),
            JSON.stringify(pulled.signature) + "\n",
          );
        }
        for (const [file, blob] of pulled.files) {
          await mkdir(dirname(join(staging, file)), { recursive: true });
          await this.ops.copyFile(blob, join(staging, file));
        }
      },
      pulled.platform,
    );
  }

  /** Removes an installed plugin; false when it was not installed. */
  async remove(name: string): Promise<boolean> {
    if (unsafePath(name) !== undefined || name.includes("/")) {
      throw new ManagementError("not-found", `"${name}" is not a plugin name`);
    }
    const dir = join(this.pluginsDir, name);
    if (!existsSync(dir)) return false;
    await rm(dir, { recursive: true, force: true });
    return true;
  }

  private async stage(
    expectedName: string | undefined,
    fill: (staging: string) => Promise<void>,
    platform?: string,
  ): Promise<Installed> {
    const staging = join(this.pluginsDir, `.staging-${randomBytes(6).toString("hex")}`);
    let restore: (() => Promise<void>) | undefined;
    try {
      await mkdir(staging, { recursive: true });
      await this.sweep();
      await fill(staging);
      const loaded: LoadedPlugin = await loadPluginDir(staging);
      const name = loaded.manifest.name;
      if (expectedName !== undefined && name !== expectedName) {
        throw new ManagementError(
          "invalid-manifest",
          `expected plugin "${expectedName}", found "${name}"`,
        );
      }
      const verification = await verifyPluginDir(loaded, {
        ...this.verify,
        ...(platform !== undefined && { platform }),
      });
      await setModes(staging, loaded);
      const target = join(this.pluginsDir, name);
      // A leading dot: no plugin name can have one, so scan() never lists it.
      const old = join(this.pluginsDir, `.old-${name}-${randomBytes(6).toString("hex")}`);
      const replacing = existsSync(target);
      const previousVersion = replacing
        ? await loadPluginDir(target).then(
            (p) => p.manifest.version,
            () => undefined,
          )
        : undefined;
      if (replacing) {
        await this.ops.rename(target, old);
        restore = async () => {
          if (existsSync(old) && !existsSync(target)) await this.ops.rename(old, target);
        };
      }
      await this.ops.rename(staging, target);
      restore = undefined;
      if (replacing) await rm(old, { recursive: true, force: true });
      return {
        name,
        version: loaded.manifest.version,
        dir: target,
        verification,
        ...(previousVersion !== undefined && { previousVersion }),
      };
    } catch (e) {
      await rm(staging, { recursive: true, force: true }).catch(() => undefined);
      if (restore !== undefined) await restore().catch(() => undefined);
      if (e instanceof ManagementError) {
        throw new ManagementError(
          e.kind,
          `${e.message}; nothing was installed in ${this.pluginsDir}`,
          { cause: e },
        );
      }
      throw ioError(e, `installing into ${this.pluginsDir} failed, nothing was installed`);
    }
  }

  /** Removes `.staging-*` and `.old-*` leftovers of killed installs, once they are stale. */
  private async sweep(): Promise<void> {
    const entries = await readdir(this.pluginsDir).catch(() => [] as string[]);
    for (const entry of entries) {
      if (!entry.startsWith(".staging-") && !entry.startsWith(".old-")) continue;
      const path = join(this.pluginsDir, entry);
      const st = await stat(path).catch(() => undefined);
      if (st !== undefined && Date.now() - st.mtimeMs > STALE_MS) {
        await rm(path, { recursive: true, force: true }).catch(() => undefined);
      }
    }
  }
}

/**
 * Blobs and archive entries carry no mode the signature covers: make every
 * `exec` entrypoint present 0755 and every other file 0644, so that a
 * native or script plugin pulled from a registry can be started.
 */
async function setModes(staging: string, loaded: LoadedPlugin): Promise<void> {
  const executables = new Set(
    Object.values(loaded.manifest.entrypoints)
      .filter((e) => e.runtime !== "node")
      .map((e) => e.file),
  );
  for (const file of Object.keys(loaded.manifest.files)) {
    const path = join(staging, file);
    if (existsSync(path)) await chmod(path, executables.has(file) ? 0o755 : 0o644);
  }
}

/** The directories in `pluginsDir` that are installed plugins (dot-named staging and aside dirs excluded). */
export async function installedNames(pluginsDir: string): Promise<string[]> {
  try {
    const entries = await readdir(pluginsDir, { withFileTypes: true });
    return entries
      .filter((e) => e.isDirectory() && !e.name.startsWith("."))
      .map((e) => e.name)
      .sort();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return [];
    if (code === "ENOTDIR")
      throw new ManagementError(
        "invalid-config",
        `plugins directory ${pluginsDir} is not a directory`,
      );
    throw e;
  }
}

/**
 * Extracts a `.tar.gz` plugin archive into `dest`, reading it once: each
 * entry is checked as it is extracted (unsafe ones are not written), and any
 * unsafe entry fails with "verification-failed" (saying `refusal`) after the read. Owners are
 * not kept (as root, node-tar would otherwise give files the archive's
 * owners).
 */
export async function extractArchive(
  archive: string,
  dest: string,
  refusal = "nothing was installed",
): Promise<void> {
  const unsafe: string[] = [];
  await tar
    .x({
      file: archive,
      cwd: dest,
      strict: true,
      preserveOwner: false,
      filter: (entryPath, entry) => {
        const path = entryPath.replace(/^\.\//, "").replace(/\/$/, "");
        if (path === "" || path === ".") return true;
        const bad = unsafePath(path);
        const type = "type" in entry ? entry.type : "File";
        if (bad !== undefined) unsafe.push(`${JSON.stringify(entryPath)} (${bad})`);
        else if (type !== "File" && type !== "Directory") {
          unsafe.push(`${JSON.stringify(entryPath)} (a ${type}, not a regular file)`);
        } else return true;
        return false;
      },
    })
    .catch((e: unknown) => {
      throw new ManagementError("io", `cannot read archive ${archive}: ${(e as Error).message}`);
    });
  if (unsafe.length > 0) {
    throw new ManagementError(
      "verification-failed",
      `archive ${archive} has unsafe entries, ${refusal}: ${unsafe.join(", ")}`,
    );
  }
}
