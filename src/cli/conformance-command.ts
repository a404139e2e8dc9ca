/** `connect-plugin conformance -- <command...>`: runs src/conformance against a plugin program. */
import type { Command } from "commander";
import { runConformance } from "../conformance/checks.js";
import { killLaunches } from "../conformance/launch.js";
import { formatReport } from "../conformance/report.js";
import { ManagementError } from "../manifest/errors.js";
import { onEndingSignal } from "./ending-signal.js";
import { EXIT } from "./exit-codes.js";
import { checkCommand } from "./find-command.js";
import { millisecondsOption } from "./milliseconds-option.js";
import { globals } from "./program.js";

export function registerConformanceCommand(program: Command): void {
  program
    .command("conformance")
    .argument("<command...>", "the plugin program and its arguments (after --)")
    .requiredOption("--cookie <KEY=VALUE>", "the plugin's magic cookie")
    .option("--protocol-version <n>", "the app protocol version the host offers", "1")
    .option("--timeout <ms>", "how long to wait for each handshake line, exit or log line", "10000")
    .description(
      "launch a plugin as a host does and check each protocol requirement (docs/protocol.md)",
    )
    .action(
      async (
        command: string[],
        o: { cookie: string; protocolVersion: string; timeout: string },
      ) => {
        const eq = o.cookie.indexOf("=");
        if (eq <= 0)
          throw new ManagementError(
            "invalid-config",
            `--cookie must be KEY=VALUE, not ${JSON.stringify(o.cookie)}`,
          );
        const version = Number(o.protocolVersion);
        if (!Number.isInteger(version) || version < 1)
          throw new ManagementError(
            "invalid-config",
            `--protocol-version must be a positive integer, not ${JSON.stringify(o.protocolVersion)}`,
          );
        const timeoutMs = millisecondsOption("--timeout", o.timeout);
        checkCommand(command[0] as string);
        // Interrupted, the plugin under test (in a group of its own) is
        // killed and its socket directory removed before the CLI dies.
        const stopListening = onEndingSignal(() => killLaunches());
        const report = await runConformance({
          command,
          cookieKey: o.cookie.slice(0, eq),
          cookieValue: o.cookie.slice(eq + 1),
          protocolVersion: version,
          timeoutMs,
        }).finally(stopListening);
        process.stdout.write(
          (globals().json === true ? JSON.stringify(report, null, 2) : formatReport(report)) + "\n",
        );
        if (!report.passed) process.exitCode = EXIT.conformance;
      },
    );
}
