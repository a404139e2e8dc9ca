/** `connect-plugin code-cache`: a Node plugin bundled with V8's code cache (see code-cache-build.ts). */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { Command } from "commander";
import { action } from "./program.js";
import { ManagementError } from "../manifest/errors.js";
import type { HandshakeConfig } from "../protocol/plugin-set.js";
import { DEFAULT_CODE_CACHE_TIMEOUT_MS, buildCodeCache } from "./code-cache-build.js";
import { millisecondsOption } from "./milliseconds-option.js";

interface Options {
  cookie?: string;
  handshake?: string;
  outDir: string;
  protocolVersion: string;
  timeout: string;
  nodeOption: string[];
}

export function registerCodeCacheCommand(program: Command): void {
  program
    .command("code-cache")
    .argument("<entry>", "the plugin's main file (it calls serve(); no top-level await)")
    .option("--cookie <KEY=VALUE>", "the plugin's magic cookie")
    .option(
      "--handshake <module>",
      "or: a built module of the app whose `handshake` export is the plugin's (its cookie and protocol version)",
    )
    .option("-o, --out-dir <dir>", "where the loader, bundle and cache go", "dist/bundle")
    .option("--protocol-version <n>", "with --cookie: the app protocol version to offer", "1")
    .option(
      "--node-option <option>",
      "a node option the plugin runs with, e.g. --max-semi-space-size=1 (repeat for more): V8 uses a cache only under the V8 flags it was made with",
      (option: string, all: string[]) => [...all, option],
      [],
    )
    .option(
      "--timeout <ms>",
      "stop the build's launch, or its start without the cookie (the check of the cache), if it has not finished by then",
      String(DEFAULT_CODE_CACHE_TIMEOUT_MS),
    )
    .description(
      "bundle a Node plugin as one CommonJS file and make V8's code cache for it by launching it " +
        "once, for a faster cold start; start it with node <out-dir>/<entry name>.cjs",
    )
    .action(
      action(async (entry: string, o: Options) => {
        const timeoutMs = millisecondsOption("--timeout", o.timeout);
        const handshake = await handshakeOf(o);
        const result = await buildCodeCache(entry, o.outDir, handshake, {
          timeoutMs,
          nodeOptions: o.nodeOption,
        });
        return {
          json: result,
          text:
            result.warnings.map((w) => `warning: ${w}\n`).join("") +
            (result.state === "used" || result.bytes === 0
              ? ""
              : `warning: a start of the loader found the cache ${result.state}\n`) +
            `wrote ${result.files.loader}, its bundle and ` +
            (result.bytes === 0
              ? "no code cache; "
              : `a code cache of ${(result.bytes / 1024).toFixed(0)} KiB (used by node ` +
                `${result.nodeVersion}; another node starts it without); `) +
            `launch it with ` +
            `subprocess(process.execPath, [${JSON.stringify(result.files.loader)}])`,
        };
      }),
    );
}

/** The handshake from --cookie and --protocol-version, or from the module --handshake names. */
async function handshakeOf(o: Options): Promise<HandshakeConfig> {
  if ((o.cookie === undefined) === (o.handshake === undefined)) {
    throw new ManagementError("invalid-config", "give the plugin's --cookie or --handshake, one");
  }
  if (o.handshake !== undefined) {
    let exported: unknown;
    try {
      exported = (
        (await import(pathToFileURL(resolve(o.handshake)).href)) as Record<string, unknown>
      ).handshake;
    } catch (error) {
      throw new ManagementError(
        "invalid-config",
        `cannot import --handshake ${o.handshake}: ${(error as Error).message}`,
        { cause: error },
      );
    }
    const h = exported as Partial<HandshakeConfig> | undefined;
    if (typeof h?.magicCookieKey !== "string" || typeof h.magicCookieValue !== "string") {
      throw new ManagementError(
        "invalid-config",
        `${o.handshake} has no \`handshake\` export with magicCookieKey and magicCookieValue`,
      );
    }
    return h as HandshakeConfig;
  }
  const cookie = o.cookie ?? "";
  const eq = cookie.indexOf("=");
  const version = Number(o.protocolVersion);
  if (eq <= 0 || !Number.isInteger(version) || version < 1) {
    throw new ManagementError(
      "invalid-config",
      "--cookie must be KEY=VALUE and --protocol-version a positive integer",
    );
  }
  return {
    magicCookieKey: cookie.slice(0, eq),
    magicCookieValue: cookie.slice(eq + 1),
    protocolVersion: version,
  };
}
