import { accessSync, constants, statSync } from "node:fs";
import { delimiter, join } from "node:path";
import { ManagementError } from "../manifest/errors.js";
import { localStat } from "../manager/resolver.js";

/**
 * Checks that a program the CLI is to launch exists and can be run, as the
 * shell would find it: a name with a "/" as a path, a bare name on $PATH.
 * Without it a mistyped command reads as a plugin that "exited with null".
 * Throws "not-found" (exit 4) naming the command.
 */
export function checkCommand(command: string): void {
  if (command.includes("/")) {
    if (!localStat(command).isFile() || !executable(command))
      throw new ManagementError("not-found", `${command} is not an executable file`);
    return;
  }
  const dirs = (process.env.PATH ?? "").split(delimiter).filter((d) => d !== "");
  if (!dirs.some((d) => executable(join(d, command))))
    throw new ManagementError("not-found", `command "${command}" not found on $PATH`);
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
