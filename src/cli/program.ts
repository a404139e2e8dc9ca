/** The CLI's program, its global options, and what the commands share. */

import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { hostPlatform } from "../manifest/platform.js";
import { type OciReference } from "../oci/reference.js";
import { RegistryClient, type ProgressListener } from "../oci/registry-client.js";
import { hostVersion } from "../manager/host-version.js";
import { loadTrustedKeys } from "../security/signing.js";
import { platformOption } from "./platform-option.js";
import { progressBars } from "./progress.js";

export interface GlobalOptions {
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

export type Result = { json: unknown; text: string };

export const program = new Command("connect-plugin")
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
    "accept plugins without a signature (for development: digests are still checked, " +
      "but anyone who can write a plugin's directory can then change it, and a signed " +
      "plugin whose plugin.sig is removed counts as unsigned)",
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
  .option("--platform <os/arch>", "platform to install or pull", platformOption, hostPlatform())
  .option("--json", "print machine-readable JSON on stdout")
  .version(hostVersion())
  .addHelpText(
    "after",
    "\nExit codes: 0 ok, 1 internal error, 2 usage, 3 verification failed, 4 not found,\n" +
      "5 registry or network, 6 local I/O, 7 invalid manifest or configuration,\n" +
      "8 unsupported platform or incompatible host (snapshot, code-cache: the build failed),\n" +
      `9 a required conformance check failed.\nDocumentation: ${cliDocs()}`,
  )
  .exitOverride()
  .showHelpAfterError(false)
  // With --json, a usage error is one JSON document on stdout (see main.ts), not text on stderr.
  .configureOutput({
    writeErr: (text) => {
      if (!jsonRequested()) process.stderr.write(text);
    },
  });

/** docs/cli.md as shipped in the package (and in a source checkout). */
export function cliDocs(): string {
  return fileURLToPath(new URL("../../../docs/cli.md", import.meta.url));
}

/**
 * Whether --json was given. Read from argv, not the parsed options, because
 * errors can happen before or during parsing.
 */
export function jsonRequested(): boolean {
  return process.argv.includes("--json");
}

/** "1 file", "3 files". */
export function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

/** The one wording for an empty plugins directory (list, verify). */
export function noPluginsText(dir: string): string {
  return `no plugins installed in ${dir}`;
}

export function globals(): GlobalOptions {
  return program.opts<GlobalOptions>();
}

export function verifyOptions(g: GlobalOptions) {
  return {
    trustedKeys: loadTrustedKeys(g.trustedKeys),
    trustedKeysDir: resolve(g.trustedKeys),
    allowUnsigned: g.allowUnsigned === true,
    platform: g.platform,
  };
}

export function registryFor(ref: OciReference, g: GlobalOptions, onProgress?: ProgressListener) {
  return new RegistryClient({
    registry: ref.registry,
    ...(g.plainHttp === true && { plainHttp: true }),
    ...(onProgress !== undefined && { onProgress }),
  });
}

export async function withProgress<T>(
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

/** Wraps a command that returns what to print; undefined when it printed as it went. */
export function action<A extends unknown[]>(
  run: (...args: A) => Result | undefined | Promise<Result | undefined>,
) {
  return async (...args: A): Promise<void> => {
    const result = await run(...args);
    if (result === undefined) return;
    if (globals().json === true) process.stdout.write(JSON.stringify(result.json, null, 2) + "\n");
    else if (result.text !== "") process.stdout.write(result.text + "\n");
  };
}

export function signedText(keyId: string | undefined): string {
  return keyId === undefined
    ? "UNSIGNED, allowed by --allow-unsigned"
    : `signature ok, key ${keyId}`;
}
