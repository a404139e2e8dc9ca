import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, copyFile, mkdir, readdir, rename, rm, writeFile } from "node:fs/promises";
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
}

/**
 * Installs plugins into a plugins directory (`<dir>/<name>/`) so that an
 * install either completes or leaves nothing behind: files go to a staging
 * directory inside the plugins directory, the staged copy is verified
 * (signature and every digest), and only then renamed into place, replacing
 * any previous version. Any failure (bad digest, full disk, traversal)
 * removes the staging directory.
 */
export class Installer {
  constructor(
    readonly pluginsDir: string,
    private readonly verify: VerifyOptions,
  ) {}

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
        await copyFile(join(source, file), join(staging, file));
      }
    });
  }

  /** Installs a `.tar.gz` archive whose root holds the manifest and files. */
  async fromArchive(archive: string): Promise<Installed> {
    if (!existsSync(archive))
      throw new ManagementError("not-found", `archive ${archive} does not exist`);
    const unsafe: string[] = [];
    await tar
      .t({
        file: archive,
        onReadEntry: (entry) => {
          const path = entry.path.replace(/^\.\//, "").replace(/\/$/, "");
          if (path === "" || path === ".") return;
          const bad = unsafePath(path);
          if (bad !== undefined) unsafe.push(`${JSON.stringify(entry.path)} (${bad})`);
          else if (entry.type !== "File" && entry.type !== "Directory") {
            unsafe.push(`${JSON.stringify(entry.path)} (a ${entry.type}, not a regular file)`);
          }
        },
      })
      .catch((e: unknown) => {
        throw new ManagementError("io", `cannot read archive ${archive}: ${(e as Error).message}`);
      });
    if (unsafe.length > 0) {
      throw new ManagementError(
        "verification-failed",
        `archive ${archive} has unsafe entries, nothing was installed: ${unsafe.join(", ")}`,
      );
    }
    return this.stage(undefined, async (staging) => {
      // As root, node-tar would keep the archive's owners: files a local user could rewrite.
      await tar.x({ file: archive, cwd: staging, strict: true, preserveOwner: false });
    });
  }

  /** Installs a plugin pulled into the blob cache. */
  async fromPulled(pulled: PulledPlugin): Promise<Installed> {
    return this.stage(
      pulled.manifest.name,
      async (staging) => {
        await writeFile(
          join(staging, "plugin.json"),
          JSON.stringify(pulled.manifest, null, 2) + "\n",
        );
        if (pulled.signature !== undefined) {
          await writeFile(join(staging, SIGNATURE_FILE), JSON.stringify(pulled.signature) + "\n");
        }
        for (const [file, blob] of pulled.files) {
          await mkdir(dirname(join(staging, file)), { recursive: true });
          await copyFile(blob, join(staging, file));
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
    try {
      await mkdir(staging, { recursive: true });
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
      const old = `${target}.old-${randomBytes(6).toString("hex")}`;
      const replacing = existsSync(target);
      if (replacing) await rename(target, old);
      await rename(staging, target);
      if (replacing) await rm(old, { recursive: true, force: true });
      return { name, version: loaded.manifest.version, dir: target, verification };
    } catch (e) {
      await rm(staging, { recursive: true, force: true }).catch(() => undefined);
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

/** The directories in `pluginsDir` that are installed plugins (staging dirs excluded). */
export async function installedNames(pluginsDir: string): Promise<string[]> {
  try {
    const entries = await readdir(pluginsDir, { withFileTypes: true });
    return entries
      .filter((e) => e.isDirectory() && !e.name.startsWith(".") && !e.name.includes(".old-"))
      .map((e) => e.name)
      .sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw e;
  }
}
