/** Commands on local plugin directories and keys: list, verify, remove, keygen, sign, pack. */
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import * as tar from "tar";
import { ManagementError } from "../manifest/errors.js";
import { computeFiles } from "../manifest/files.js";
import { parseManifestText } from "../manifest/manifest.js";
import { SIGNATURE_FILE } from "../manifest/types.js";
import { Installer, installedNames } from "../manager/installer.js";
import { isLocal, localStat } from "../manager/resolver.js";
import { readLockfile, updateLockfile } from "../manager/lockfile.js";
import {
  loadPluginDir,
  verifyPluginDir,
  findManifestFile,
  type LoadedPlugin,
} from "../security/plugin-dir.js";
import { generateKeyPair, signManifest } from "../security/signing.js";
import { checkOutputPath, writeThroughTemp } from "./output-file.js";
import { action, count, globals, noPluginsText, signedText, verifyOptions } from "./program.js";

export function registerLocalCommands(program: Command): void {
  program
    .command("list")
    .description("list installed plugins")
    .action(
      action(async () => {
        const g = globals();
        const plugins = [];
        for (const name of await installedNames(g.dir)) {
          try {
            const { manifest } = await loadPluginDir(join(g.dir, name));
            plugins.push({
              name: manifest.name,
              version: manifest.version,
              description: manifest.description,
              provides: manifest.plugins.map((p) => p.name),
            });
          } catch (e) {
            plugins.push({ name, error: (e as Error).message });
          }
        }
        const text =
          plugins.length === 0
            ? noPluginsText(g.dir)
            : plugins
                .map((p) =>
                  "error" in p
                    ? `${p.name}\tINVALID: ${p.error}`
                    : `${p.name}\t${p.version}\t${p.provides.join(",")}\t${p.description}`,
                )
                .join("\n");
        return { json: { dir: g.dir, plugins }, text };
      }),
    );

  program
    .command("verify")
    .argument("[plugin]", "installed name or plugin directory (default: every installed plugin)")
    .description("check signatures and the sha256 of every file")
    .action(
      action(async (what: string | undefined) => {
        const g = globals();
        const dirs =
          what === undefined
            ? (await installedNames(g.dir)).map((n) => join(g.dir, n))
            : [pluginDirFor(what, g.dir)];
        if (what !== undefined && !existsSync(dirs[0] as string))
          throw new ManagementError("not-found", `no plugin "${what}" in ${g.dir}`);
        const results = [];
        const failures: { dir: string; error: ManagementError }[] = [];
        for (const dir of dirs) {
          try {
            const loaded = await loadPluginDir(dir);
            const v = await verifyPluginDir(loaded, verifyOptions(g));
            results.push({
              name: loaded.manifest.name,
              version: loaded.manifest.version,
              dir,
              signedBy: v.signedBy ?? null,
              files: v.files,
            });
          } catch (e) {
            if (!(e instanceof ManagementError)) throw e;
            failures.push({ dir, error: e });
          }
        }
        // Every plugin is checked; any failure fails the command, naming all of them.
        const first = failures[0];
        if (first !== undefined) {
          throw new ManagementError(
            first.error.kind,
            (dirs.length > 1
              ? `${failures.length} of ${dirs.length} plugins failed verification` +
                (results.length > 0 ? ` (ok: ${results.map((r) => r.name).join(", ")})` : "") +
                ": "
              : "") + failures.map((f) => f.error.message).join("; "),
          );
        }
        return {
          json: { verified: results },
          text:
            results.length === 0
              ? noPluginsText(g.dir)
              : results
                  .map(
                    (r) =>
                      `ok ${r.name} ${r.version} (${signedText(r.signedBy ?? undefined)}, ${count(Object.keys(r.files).length, "file")})`,
                  )
                  .join("\n"),
        };
      }),
    );

  program
    .command("remove")
    .argument("<name>", "installed plugin")
    .description("uninstall a plugin and drop it from the lockfile")
    .action(
      action(async (name: string) => {
        const g = globals();
        const removed = await new Installer(g.dir, verifyOptions(g)).remove(name);
        if (!removed)
          throw new ManagementError("not-found", `plugin "${name}" is not installed in ${g.dir}`);
        const lock = readLockfile(g.lockfile);
        if (lock.plugins[name] !== undefined) {
          const plugins = { ...lock.plugins };
          delete plugins[name];
          await updateLockfile(g.lockfile, (current) => {
            const next = { ...current.plugins };
            delete next[name];
            return { lockfileVersion: 1, plugins: next };
          });
        }
        return { json: { removed: name }, text: `removed ${name}` };
      }),
    );

  program
    .command("keygen")
    .requiredOption("--out <prefix>", "writes <prefix>.key (private, mode 0600) and <prefix>.pub")
    .description("make an ed25519 signing key pair")
    .action(
      action((opts: { out: string }) => {
        checkOutputPath("--out", `${opts.out}.key`);
        const pair = generateKeyPair();
        for (const path of [`${opts.out}.key`, `${opts.out}.pub`]) {
          if (existsSync(path))
            throw new ManagementError("io", `${path} exists; refusing to overwrite a key`);
        }
        writeFileSync(`${opts.out}.key`, pair.privateKeyPem, { mode: 0o600 });
        chmodSync(`${opts.out}.key`, 0o600);
        writeFileSync(`${opts.out}.pub`, pair.publicKeyPem);
        return {
          json: {
            keyId: pair.keyId,
            privateKey: resolve(`${opts.out}.key`),
            publicKey: resolve(`${opts.out}.pub`),
          },
          text: `key ${pair.keyId}\n  private ${opts.out}.key\n  public  ${opts.out}.pub (copy it into the hosts' trusted-keys directory)`,
        };
      }),
    );

  program
    .command("sign")
    .argument("<dir>", "plugin directory")
    .requiredOption("--key <file>", "ed25519 private key (PEM)")
    .option(
      "--update-files",
      "recompute the manifest's file digests before signing (JSON manifests only)",
    )
    .description("sign a plugin's manifest (writes plugin.sig)")
    .action(
      action(async (dir: string, opts: { key: string; updateFiles?: boolean }) => {
        // A missing key fails before --update-files rewrites anything.
        if (!localStat(opts.key).isFile())
          throw new ManagementError("invalid-config", `--key ${opts.key} is not a file`);
        if (opts.updateFiles === true) {
          const file = findManifestFile(dir);
          if (file !== "plugin.json")
            throw new ManagementError(
              "invalid-manifest",
              `--update-files needs a plugin.json in ${dir}`,
            );
          const path = join(dir, file);
          const raw = parseManifestText(readFileSync(path, "utf8"), path);
          if (typeof raw !== "object" || raw === null || Array.isArray(raw))
            throw new ManagementError("invalid-manifest", `${path} is not a JSON object`);
          (raw as Record<string, unknown>).files = await computeFiles(dir);
          writeFileSync(join(dir, file), JSON.stringify(raw, null, 2) + "\n");
        }
        const loaded = await loadPluginDir(dir);
        await checkFiles(loaded);
        const sig = signManifest(loaded.manifest, readFileSync(opts.key, "utf8"), opts.key);
        writeFileSync(join(dir, SIGNATURE_FILE), JSON.stringify(sig) + "\n");
        return {
          json: {
            signed: loaded.manifest.name,
            version: loaded.manifest.version,
            keyId: sig.keyId,
            file: join(dir, SIGNATURE_FILE),
          },
          text: `signed ${loaded.manifest.name} ${loaded.manifest.version} with key ${sig.keyId}`,
        };
      }),
    );

  program
    .command("pack")
    .argument("<dir>", "plugin directory")
    .option("-o, --out <file>", "archive to write (default: ./<name>-<version>.tar.gz)")
    .description("make a .tar.gz of a plugin directory, for install")
    .action(
      action(async (dir: string, opts: { out?: string }) => {
        const loaded = await loadPluginDir(dir);
        const out = opts.out ?? `${loaded.manifest.name}-${loaded.manifest.version}.tar.gz`;
        checkOutputPath("-o", out);
        await checkFiles(loaded);
        const entries = [
          loaded.manifestFile,
          ...(loaded.signature !== undefined ? [SIGNATURE_FILE] : []),
          ...Object.keys(loaded.manifest.files),
        ];
        await writeThroughTemp(out, (tmp) =>
          tar.c({ gzip: true, file: tmp, cwd: dir, portable: true }, entries),
        );
        return {
          json: { archive: resolve(out), entries },
          text: `wrote ${out} (${count(entries.length, "file")})`,
        };
      }),
    );
}

/**
 * Refuses (exit 3, naming the file and both digests) a plugin whose files do
 * not match its manifest on some platform: neither sign nor pack ships one.
 */
async function checkFiles(loaded: LoadedPlugin): Promise<void> {
  for (const platform of Object.keys(loaded.manifest.entrypoints)) {
    await verifyPluginDir(
      { ...loaded, signature: undefined },
      { trustedKeys: [], allowUnsigned: true, platform },
    );
  }
}

/**
 * An installed plugin's directory for a bare name that is installed; a path
 * otherwise. A name wins over a same-named directory in the working
 * directory (write `./kv` for that), so that `verify kv` in a source
 * checkout checks the installed plugin. A local path (`./kv`, `/opt/kv`, an
 * existing `kv/x`) is that path, and a "not-found" error naming it when it is
 * missing or a dangling or looping link.
 */
export function pluginDirFor(what: string, pluginsDir: string): string {
  const installed = join(pluginsDir, what);
  if (!what.includes("/") && !what.startsWith(".") && existsSync(installed)) return installed;
  if (!isLocal(what)) return installed;
  localStat(what);
  return what;
}
