#!/usr/bin/env node
/**
 * The `connect-plugin` command: init, list, inspect, install, pull, push,
 * verify, remove, keygen, sign and pack plugins, show their status, check
 * a plugin program's protocol conformance, and snapshot a Node plugin or give it a code cache. Every command takes --json; exit
 * codes are documented in docs/cli.md (and src/cli/exit-codes.ts).
 */
import { CommanderError } from "commander";
import { ManagementError } from "../manifest/errors.js";
import { EXIT, exitCodeFor } from "./exit-codes.js";
import { registerCodeCacheCommand } from "./code-cache-command.js";
import { registerConformanceCommand } from "./conformance-command.js";
import { registerInitCommand } from "./init-command.js";
import { registerLocalCommands } from "./local-commands.js";
import { jsonRequested, program } from "./program.js";
import { registerRegistryCommands } from "./registry-commands.js";
import { registerSnapshotCommand } from "./snapshot-command.js";
import { registerStatusCommand } from "./status-command.js";

registerInitCommand(program);
registerLocalCommands(program);
registerRegistryCommands(program);
registerConformanceCommand(program);
registerStatusCommand(program);
registerSnapshotCommand(program);
registerCodeCacheCommand(program);

/**
 * Reports an error and exits. With --json it goes to stdout only, as
 * `{"error":{kind,message,exitCode}}`, so that a script reads one document
 * from stdout whatever happens; without, to stderr only.
 */
function fail(code: number, kind: string, message: string): never {
  if (jsonRequested())
    process.stdout.write(
      JSON.stringify({ error: { kind, message, exitCode: code } }, null, 2) + "\n",
    );
  else process.stderr.write(`connect-plugin: ${message}\n`);
  process.exit(code);
}

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.exitCode === 0)
      process.exit(0);
    // Without --json, Commander has printed the message on stderr.
    if (jsonRequested()) fail(EXIT.usage, "usage", e.message);
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
