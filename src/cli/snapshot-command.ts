/** `connect-plugin snapshot`: a Node plugin as a V8 startup snapshot (see snapshot-build.ts). */
import { basename, extname } from "node:path";
import type { Command } from "commander";
import { action } from "./program.js";
import { DEFAULT_SNAPSHOT_TIMEOUT_MS, buildSnapshot } from "./snapshot-build.js";
import { millisecondsOption } from "./milliseconds-option.js";

export function registerSnapshotCommand(program: Command): void {
  program
    .command("snapshot")
    .argument("<entry>", "the plugin's main file (it calls serve(); no top-level await)")
    .option("-o, --out <file>", "the blob to write (default: <entry name>.blob)")
    .option(
      "--timeout <ms>",
      "stop a build that has not finished by then",
      String(DEFAULT_SNAPSHOT_TIMEOUT_MS),
    )
    .description(
      "bundle a Node plugin and build a V8 startup snapshot of it, for a faster cold start; " +
        "start it with this node binary: node --snapshot-blob <file>",
    )
    .action(
      action(async (entry: string, opts: { out?: string; timeout: string }) => {
        const out = opts.out ?? `${basename(entry, extname(entry))}.blob`;
        const timeoutMs = millisecondsOption("--timeout", opts.timeout);
        const result = await buildSnapshot(entry, out, timeoutMs);
        return {
          json: result,
          text:
            result.warnings.map((w) => `warning: ${w}\n`).join("") +
            `wrote ${out} (${(result.bytes / 1024 / 1024).toFixed(1)} MiB), for node ` +
            `${result.nodeVersion} only (${result.node}); launch it with ` +
            `subprocess(${JSON.stringify(result.node)}, ["--snapshot-blob", ${JSON.stringify(result.blob)}])`,
        };
      }),
    );
}
