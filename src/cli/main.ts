#!/usr/bin/env node
/**
 * The `connect-plugin` command: list, inspect, install, pull, push, verify,
 * remove, keygen, sign and pack plugins. Every command takes --json; exit
 * codes are documented in docs/cli.md (and src/cli/exit-codes.ts).
 */
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { Command, CommanderError } from "commander";
import * as tar from "tar";
import { ManagementError } from "../manifest/errors.js";
import { computeFiles } from "../manifest/files.js";
import { hostPlatform } from "../manifest/platform.js";
import { SIGNATURE_FILE } from "../manifest/types.js";
import { pullPlugin, pushPlugin } from "../oci/artifact.js";
import { BlobCache } from "../oci/blob-cache.js";
import { formatReference, parseReference, type OciReference } from "../oci/reference.js";
import { RegistryClient, type ProgressListener } from "../oci/registry-client.js";
import { Installer, installedNames } from "../manager/installer.js";
import { readLockfile, writeLockfile } from "../manager/lockfile.js";
import { resolveSource } from "../manager/resolver.js";
import { hostVersion } from "../manager/host-version.js";
import { loadPluginDir, verifyPluginDir, findManifestFile } from "../security/plugin-dir.js";
import { generateKeyPair, loadTrustedKeys, signManifest } from "../security/signing.js";
import { EXIT, exitCodeFor } from "./exit-codes.js";
import { progressBars } from "./progress.js";

interface GlobalOptions {
  dir: string;
  trustedKeys: string;
  allowUnsigned?: boolean;
  cache: string;
  lockfile: string;
  registry?: string;
  plainHttp?: boolean;
  platform: string;
  json?: boolean;
}

type Result = { json: unknown; text: string };

const program = new Command("connect-plugin")
  .description(
    "Manage connect-plugin plugins: install, verify, sign, and ship them through OCI registries.",
  )
  .option("--dir <dir>", "plugins directory", process.env.CONNECT_PLUGIN_DIR ?? "plugins")
  .option(
    "--trusted-keys <dir>",
    "directory of trusted *.pub keys",
    process.env.CONNECT_PLUGIN_TRUSTED_KEYS ?? "trusted-keys",
  )
  .option(
    "--allow-unsigned",
    "accept plugins without a signature (tampered ones are still refused)",
  )
  .option(
    "--cache <dir>",
    "content-addressed blob cache",
    process.env.CONNECT_PLUGIN_CACHE ?? join(homedir(), ".cache", "connect-plugin"),
  )
  .option(
    "--lockfile <file>",
    "lockfile pinning installed plugins to digests",
    "connect-plugin.lock.json",
  )
  .option(
    "--registry <host>",
    "default registry for bare plugin names",
    process.env.CONNECT_PLUGIN_REGISTRY,
  )
  .option("--plain-http", "speak HTTP, not HTTPS, to the registry (default for loopback)")
  .option("--platform <os/arch>", "platform to install or pull", hostPlatform())
  .option("--json", "print machine-readable JSON on stdout")
  .version(hostVersion())
  .addHelpText(
    "after",
    "\nExit codes: 0 ok, 1 internal error, 2 usage, 3 verification failed, 4 not found,\n" +
      "5 registry or network, 6 local I/O, 7 invalid manifest or configuration,\n" +
      "8 unsupported platform or incompatible host (docs/cli.md).",
  )
  .exitOverride()
  .showHelpAfterError(false);

function globals(): GlobalOptions {
  return program.opts<GlobalOptions>();
}

function verifyOptions(g: GlobalOptions) {
  return {
    trustedKeys: loadTrustedKeys(g.trustedKeys),
    allowUnsigned: g.allowUnsigned === true,
    platform: g.platform,
  };
}

function registryFor(ref: OciReference, g: GlobalOptions, onProgress?: ProgressListener) {
  return new RegistryClient({
    registry: ref.registry,
    ...(g.plainHttp === true && { plainHttp: true }),
    ...(onProgress !== undefined && { onProgress }),
  });
}

async function withProgress<T>(
  g: GlobalOptions,
  run: (p: ReturnType<typeof progressBars>) => Promise<T>,
): Promise<T> {
  const bars = progressBars(g.json !== true);
  try {
    return await run(bars);
  } finally {
    bars.stop();
  }
}

function action<A extends unknown[]>(run: (...args: A) => Result | Promise<Result>) {
  return async (...args: A): Promise<void> => {
    const result = await run(...args);
    if (globals().json === true) process.stdout.write(JSON.stringify(result.json, null, 2) + "\n");
    else if (result.text !== "") process.stdout.write(result.text + "\n");
  };
}

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
          ? `no plugins installed in ${g.dir}`
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
  .command("inspect")
  .argument("<plugin>", "installed name, plugin directory, or OCI reference")
  .description("show a plugin's manifest: what it provides, its platforms and files")
  .action(
    action(async (what: string) => {
      const g = globals();
      let manifest;
      let from: string;
      if (existsSync(what) || existsSync(join(g.dir, what))) {
        const dir = existsSync(what) ? what : join(g.dir, what);
        manifest = (await loadPluginDir(dir)).manifest;
        from = dir;
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
          text: `installed ${done.name} ${done.version} into ${done.dir} (${signedText(done.verification.signedBy)})`,
        };
      }
      if (resolved.kind !== "oci")
        throw new ManagementError("not-found", `cannot install built-in plugin "${resolved.name}"`);
      const lock = readLockfile(g.lockfile);
      const wanted = formatReference(resolved.ref);
      const pinned = Object.entries(lock.plugins).find(
        ([, e]) => e.reference === wanted && e.platform === g.platform,
      );
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
      await writeLockfile(g.lockfile, {
        lockfileVersion: 1,
        plugins: { ...lock.plugins, [done.name]: entry },
      });
      return {
        json: {
          installed: { ...done, source: { kind: "oci", reference: wanted, via: resolved.via } },
          lock: entry,
          pinned: pinned !== undefined && opts.update !== true,
        },
        text: `installed ${done.name} ${done.version} from ${wanted}@${pulled.digest} into ${done.dir} (${signedText(done.verification.signedBy)}); locked in ${g.lockfile}`,
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
      return {
        json: {
          reference: formatReference(ref),
          digest: pulled.digest,
          manifestDigest: pulled.manifestDigest,
          platform: pulled.platform,
          name: pulled.manifest.name,
          version: pulled.manifest.version,
          signed: pulled.signature !== undefined,
          files,
        },
        text: `pulled ${pulled.manifest.name} ${pulled.manifest.version} (${pulled.platform}) ${formatReference(ref)}@${pulled.digest} into ${g.cache}`,
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
          : [existsSync(what) ? what : join(g.dir, what)];
      if (what !== undefined && !existsSync(dirs[0] as string))
        throw new ManagementError("not-found", `no plugin "${what}" in ${g.dir}`);
      const results = [];
      for (const dir of dirs) {
        const loaded = await loadPluginDir(dir);
        const v = await verifyPluginDir(loaded, verifyOptions(g));
        results.push({
          name: loaded.manifest.name,
          version: loaded.manifest.version,
          dir,
          signedBy: v.signedBy ?? null,
          files: v.files,
        });
      }
      return {
        json: { verified: results },
        text: results
          .map(
            (r) =>
              `ok ${r.name} ${r.version} (${signedText(r.signedBy ?? undefined)}, ${Object.keys(r.files).length} files)`,
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
        await writeLockfile(g.lockfile, { lockfileVersion: 1, plugins });
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
      if (opts.updateFiles === true) {
        const file = findManifestFile(dir);
        if (file !== "plugin.json")
          throw new ManagementError(
            "invalid-manifest",
            `--update-files needs a plugin.json in ${dir}`,
          );
        const raw = JSON.parse(readFileSync(join(dir, file), "utf8")) as Record<string, unknown>;
        raw.files = await computeFiles(dir);
        writeFileSync(join(dir, file), JSON.stringify(raw, null, 2) + "\n");
      }
      const loaded = await loadPluginDir(dir);
      // Never sign a plugin whose files do not match its manifest.
      for (const platform of Object.keys(loaded.manifest.entrypoints)) {
        await verifyPluginDir(
          { ...loaded, signature: undefined },
          { trustedKeys: [], allowUnsigned: true, platform },
        );
      }
      const sig = signManifest(loaded.manifest, readFileSync(opts.key, "utf8"));
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
  .requiredOption("-o, --out <file>", "archive to write (.tar.gz)")
  .description("make a .tar.gz of a plugin directory, for install")
  .action(
    action(async (dir: string, opts: { out: string }) => {
      const loaded = await loadPluginDir(dir);
      const entries = [
        loaded.manifestFile,
        ...(loaded.signature !== undefined ? [SIGNATURE_FILE] : []),
        ...Object.keys(loaded.manifest.files),
      ];
      await tar.c({ gzip: true, file: opts.out, cwd: dir, portable: true }, entries);
      return {
        json: { archive: resolve(opts.out), entries },
        text: `wrote ${opts.out} (${entries.length} files)`,
      };
    }),
  );

function signedText(keyId: string | undefined): string {
  return keyId === undefined
    ? "UNSIGNED, allowed by --allow-unsigned"
    : `signature ok, key ${keyId}`;
}

function fail(code: number, kind: string, message: string): never {
  if (process.argv.includes("--json"))
    process.stdout.write(
      JSON.stringify({ error: { kind, message, exitCode: code } }, null, 2) + "\n",
    );
  process.stderr.write(`connect-plugin: ${message}\n`);
  process.exit(code);
}

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.exitCode === 0)
      process.exit(0);
    process.exit(EXIT.usage);
  }
  if (e instanceof ManagementError) fail(exitCodeFor(e.kind), e.kind, e.message);
  fail(EXIT.internal, "internal", (e as Error).stack ?? String(e));
}
