/** `connect-plugin code-cache`: a Node plugin bundled with V8's code cache (see code-cache-build.ts). */
import type { Command } from "commander";
import { action } from "./program.js";
import { ManagementError } from "../manifest/errors.js";
import { DEFAULT_CODE_CACHE_TIMEOUT_MS, buildCodeCache } from "./code-cache-build.js";

export function registerCodeCacheCommand(program: Command): void {
  program
    .command("code-cache")
    .argument("<entry>", "the plugin's main file (it calls serve(); no top-level await)")
    .requiredOption("--cookie <KEY=VALUE>", "the plugin's magic cookie (its handshake)")
    .option("-o, --out-dir <dir>", "where the loader, bundle and cache go", "dist/bundle")
    .option("--protocol-version <n>", "the app protocol version the launch offers", "1")
    .option(
      "--timeout <ms>",
      "stop the build's launch if it has not finished by then",
      String(DEFAULT_CODE_CACHE_TIMEOUT_MS),
    )
    .description(
      "bundle a Node plugin as one CommonJS file and make V8's code cache for it by launching it " +
        "once, for a faster cold start; start it with node <out-dir>/<entry name>.cjs",
    )
    .action(
      action(
        async (
          entry: string,
          o: { cookie: string; outDir: string; protocolVersion: string; timeout: string },
        ) => {
          const eq = o.cookie.indexOf("=");
          const version = Number(o.protocolVersion);
          const timeoutMs = Number(o.timeout);
          if (eq <= 0 || !Number.isInteger(version) || version < 1) {
            throw new ManagementError(
              "invalid-config",
              "--cookie must be KEY=VALUE and --protocol-version a positive integer",
            );
          }
          if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
            throw new ManagementError(
              "invalid-config",
              `--timeout must be a positive number of milliseconds, not ${JSON.stringify(o.timeout)}`,
            );
          }
          const handshake = {
            magicCookieKey: o.cookie.slice(0, eq),
            magicCookieValue: o.cookie.slice(eq + 1),
            protocolVersion: version,
          };
          const result = await buildCodeCache(entry, o.outDir, handshake, timeoutMs);
          return {
            json: result,
            text:
              result.warnings.map((w) => `warning: ${w}\n`).join("") +
              (result.state === "used"
                ? ""
                : `warning: a start of the loader found the cache ${result.state}\n`) +
              `wrote ${result.files.loader}, its bundle and a code cache of ` +
              `${(result.bytes / 1024).toFixed(0)} KiB (used by node ${result.nodeVersion}; ` +
              `another node starts it without); launch it with ` +
              `subprocess(process.execPath, [${JSON.stringify(result.files.loader)}])`,
          };
        },
      ),
    );
}
