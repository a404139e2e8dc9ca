#!/usr/bin/env node
/**
 * The `connect-plugin` command: list, inspect, install, pull, push, verify,
 * remove, keygen, sign and pack plugins. Every command takes --json; exit
 * codes are documented in docs/cli.md (and src/cli/exit-codes.ts).
 */
import { CommanderError } from "commander";
import { ManagementError } from "../manifest/errors.js";
import { EXIT, exitCodeFor } from "./exit-codes.js";
import { registerLocalCommands } from "./local-commands.js";
import { program } from "./program.js";
import { registerRegistryCommands } from "./registry-commands.js";

registerLocalCommands(program);
registerRegistryCommands(program);

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
