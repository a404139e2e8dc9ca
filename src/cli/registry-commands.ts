/** Commands that may talk to a registry: inspect, install, pull, push. */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import { ManagementError } from "../manifest/errors.js";
import { pullPlugin, pushPlugin } from "../oci/artifact.js";
import { BlobCache } from "../oci/blob-cache.js";
import { formatReference, parseReference } from "../oci/reference.js";
import { extractArchive, Installer, type Installed } from "../manager/installer.js";
import { readLockfile, updateLockfile } from "../manager/lockfile.js";
import { isArchive, isLocal, localStat, resolveSource } from "../manager/resolver.js";
import type { PluginManifest } from "../manifest/types.js";
import { loadPluginDir, verifyPluginDir } from "../security/plugin-dir.js";
import {
  loadTrustedKeys,
  verifyManifestSignature,
  type ManifestSignature,
} from "../security/signing.js";
import { pluginDirFor } from "./local-commands.js";
import {
  action,
  globals,
  registryFor,
  signedText,
  verifyOptions,
  withProgress,
} from "./program.js";

export function registerRegistryCommands(program: Command): void {
  program
    .command("inspect")
    .argument("<plugin>", "installed name, plugin directory, .tar.gz archive, or OCI reference")
    .description("show a plugin's manifest: what it provides, its platforms and files")
    .action(
      action(async (what: string) => {
        const g = globals();
        let manifest;
        let from: string;
        if (isLocal(what) || existsSync(join(g.dir, what))) {
          const path = pluginDirFor(what, g.dir);
          manifest =
            isArchive(path) && localStat(path).isFile()
              ? await manifestOfArchive(path)
              : (await loadPluginDir(path)).manifest;
          from = path;
        } else {
          const ref = parseReference(what, g.registry);
          const pulled = await withProgress(g, (p) =>
            pullPlugin(registryFor(ref, g, p.listener), ref, g.platform, new BlobCache(g.cache)),
          );
          manifest = pulled.manifest;
          from = `${formatReference(ref)}@${pulled.digest}`;
        }
        const lines = [
          `${manifest.name} ${manifest.version} (${manifest.license}) from ${from}`,
          `  ${manifest.description}`,
          `  provides: ${manifest.plugins.map((p) => `${p.name} (${p.service}${p.capabilities?.length ? `; ${p.capabilities.join(", ")}` : ""})`).join(", ")}`,
          `  platforms: ${Object.keys(manifest.entrypoints).join(", ")}`,
          `  protocol versions: ${manifest.protocolVersions.join(", ")}; hosts: ${manifest.hostVersions}`,
          ...Object.entries(manifest.files).map(([f, d]) => `  file ${f} ${d}`),
        ];
        return { json: { from, manifest }, text: lines.join("\n") };
      }),
    );

  program
    .command("install")
    .argument(
      "<source>",
      "plugin directory, .tar.gz archive, OCI reference, or name in the default registry",
    )
    .option(
      "--update",
      "ignore the lockfile's pinned digest and take what the reference points at now",
    )
    .description("verify and install a plugin; OCI installs are pinned in the lockfile")
    .action(
      action(async (source: string, opts: { update?: boolean }) => {
        const g = globals();
        const installer = new Installer(g.dir, verifyOptions(g));
        const resolved = resolveSource(source, {
          ...(g.registry !== undefined && { defaultRegistry: g.registry }),
        });
        if (resolved.kind === "directory" || resolved.kind === "archive") {
          const done =
            resolved.kind === "directory"
              ? await installer.fromDirectory(resolved.path)
              : await installer.fromArchive(resolved.path);
          return {
            json: { installed: { ...done, source: resolved } },
            text: `${installedText(done)} into ${done.dir} (${signedText(done.verification.signedBy)})`,
          };
        }
        if (resolved.kind !== "oci")
          throw new ManagementError(
            "not-found",
            `cannot install built-in plugin "${resolved.name}"`,
          );
        const lock = readLockfile(g.lockfile);
        const wanted = formatReference(resolved.ref);
        // The pin is the index digest, valid on every platform the index has.
        const pinned = Object.entries(lock.plugins).find(([, e]) => e.reference === wanted);
        const ref =
          opts.update !== true && pinned !== undefined
            ? { ...resolved.ref, digest: pinned[1].digest }
            : resolved.ref;
        const pulled = await withProgress(g, (p) =>
          pullPlugin(registryFor(ref, g, p.listener), ref, g.platform, new BlobCache(g.cache)),
        );
        const done = await installer.fromPulled(pulled);
        const entry = {
          reference: wanted,
          digest: pulled.digest,
          version: pulled.manifest.version,
          platform: pulled.platform,
          manifestDigest: pulled.manifestDigest,
        };
        try {
          await updateLockfile(g.lockfile, (current) => ({
            lockfileVersion: 1,
            plugins: { ...current.plugins, [done.name]: entry },
          }));
        } catch (e) {
          const why =
            (e as NodeJS.ErrnoException).code === "ENOSPC"
              ? "no space left on device"
              : (e as Error).message;
          throw new ManagementError(
            "io",
            `installed ${done.name} ${done.version} into ${done.dir}, but could not pin it in ${g.lockfile}: ${why}`,
            { cause: e },
          );
        }
        return {
          json: {
            installed: { ...done, source: { kind: "oci", reference: wanted, via: resolved.via } },
            lock: entry,
            pinned: pinned !== undefined && opts.update !== true,
          },
          text: `${installedText(done)} from ${wanted}@${pulled.digest} into ${done.dir} (${signedText(done.verification.signedBy)}); locked in ${g.lockfile}`,
        };
      }),
    );

  program
    .command("pull")
    .argument("<reference>", "OCI reference")
    .description("download a plugin's blobs into the cache, verifying every digest")
    .action(
      action(async (reference: string) => {
        const g = globals();
        const ref = parseReference(reference, g.registry);
        const pulled = await withProgress(g, (p) =>
          pullPlugin(registryFor(ref, g, p.listener), ref, g.platform, new BlobCache(g.cache)),
        );
        const files = Object.fromEntries(pulled.files);
        const trust = signatureStatus(pulled.manifest, pulled.signature, g.trustedKeys);
        return {
          json: {
            reference: formatReference(ref),
            digest: pulled.digest,
            manifestDigest: pulled.manifestDigest,
            platform: pulled.platform,
            name: pulled.manifest.name,
            version: pulled.manifest.version,
            // True only for a signature by a trusted key that matches the manifest.
            signed: trust.signature === "valid",
            ...trust,
            files,
          },
          text:
            `pulled ${pulled.manifest.name} ${pulled.manifest.version} (${pulled.platform}) ` +
            `${formatReference(ref)}@${pulled.digest} into ${g.cache} (signature: ${trust.signature}` +
            `${trust.signedBy !== null ? `, key ${trust.signedBy}` : ""})`,
        };
      }),
    );

  program
    .command("push")
    .argument("<dir>", "plugin directory")
    .argument("<reference>", "OCI reference to push to (tag defaults to the plugin's version)")
    .description(
      "verify a plugin directory and push it as an OCI artifact with an index across its platforms",
    )
    .action(
      action(async (dir: string, reference: string) => {
        const g = globals();
        const loaded = await loadPluginDir(dir);
        // Digests must match; the signature is checked by whoever installs it.
        for (const platform of Object.keys(loaded.manifest.entrypoints)) {
          await verifyPluginDir(
            { ...loaded, signature: undefined },
            { trustedKeys: [], allowUnsigned: true, platform },
          );
        }
        const parsed = parseReference(reference, g.registry);
        const ref = reference.includes(":", reference.lastIndexOf("/"))
          ? parsed
          : { ...parsed, tag: loaded.manifest.version };
        const pushed = await withProgress(g, (p) =>
          pushPlugin(registryFor(ref, g, p.listener), ref, loaded),
        );
        return {
          json: pushed,
          text: `pushed ${loaded.manifest.name} ${loaded.manifest.version} to ${pushed.reference}@${pushed.digest}`,
        };
      }),
    );
}

/**
 * What a pulled plugin's signature is worth here: "valid" (by a trusted key,
 * matching the manifest), "untrusted-key", "invalid", or "none".
 */
function signatureStatus(
  manifest: PluginManifest,
  signature: ManifestSignature | undefined,
  trustedKeysDir: string,
): { signature: "valid" | "untrusted-key" | "invalid" | "none"; signedBy: string | null } {
  if (signature === undefined) return { signature: "none", signedBy: null };
  const trusted = loadTrustedKeys(trustedKeysDir);
  if (!trusted.some((k) => k.keyId === signature.keyId)) {
    return { signature: "untrusted-key", signedBy: null };
  }
  try {
    return {
      signature: "valid",
      signedBy: verifyManifestSignature(manifest, signature, trusted).keyId,
    };
  } catch {
    return { signature: "invalid", signedBy: null };
  }
}

/**
 * "installed kv 1.0.0", or, when that plugin was installed already, what
 * happened to the old one: "kv 1.0.0 was already installed; reinstalled it"
 * or "replaced kv 1.0.0 with 1.1.0".
 */
function installedText(done: Installed): string {
  const { name, version, previousVersion } = done;
  if (previousVersion === undefined) return `installed ${name} ${version}`;
  if (previousVersion === version)
    return `${name} ${version} was already installed; reinstalled it`;
  return `replaced ${name} ${previousVersion} with ${version}`;
}

/** The manifest of a plugin archive, read from a temporary extraction (nothing is installed). */
async function manifestOfArchive(archive: string): Promise<PluginManifest> {
  const dir = mkdtempSync(join(tmpdir(), "connect-plugin-inspect-"));
  try {
    await extractArchive(archive, dir, "refusing to read it");
    return (await loadPluginDir(dir)).manifest;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
