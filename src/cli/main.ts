#!/usr/bin/env node
/**
 * The `connect-plugin` command: list, inspect, install, pull, push, verify,
 * remove, keygen, sign and pack plugins, and show their status. Every command takes --json; exit
 * codes are documented in docs/cli.md (and src/cli/exit-codes.ts).
 */
import { CommanderError } from "commander";
import { ManagementError } from "../manifest/errors.js";
import { EXIT, exitCodeFor } from "./exit-codes.js";
import { registerLocalCommands } from "./local-commands.js";
import { program } from "./program.js";
import { registerRegistryCommands } from "./registry-commands.js";
import { registerStatusCommand } from "./status-command.js";

registerLocalCommands(program);
registerRegistryCommands(program);
registerStatusCommand(program);

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
    // Commander has printed the message on stderr; --json callers get it on stdout too.
    if (process.argv.includes("--json"))
      process.stdout.write(
        JSON.stringify(
          { error: { kind: "usage", message: e.message, exitCode: EXIT.usage } },
          null,
          2,
        ) + "\n",
      );
    process.exit(EXIT.usage);
  }
  if (e instanceof ManagementError) fail(exitCodeFor(e.kind), e.kind, e.message);
  // A bug: the message, and the stack only when asked for (DEBUG set).
  const err = e as Error;
  fail(
    EXIT.internal,
    "internal",
    process.env.DEBUG !== undefined && err.stack !== undefined
      ? err.stack
      : `internal error: ${err.message ?? String(e)} (set DEBUG=1 for a stack trace)`,
  );
}
