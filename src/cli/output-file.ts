import { existsSync, renameSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { ManagementError } from "../manifest/errors.js";
import { onEndingSignal } from "./ending-signal.js";

/**
 * Checks a file the user asked the CLI to write (`option` names the flag):
 * its directory must exist ("not-found", exit 4) and the path must not be a
 * directory ("invalid-config", exit 7), so that neither surfaces as an
 * internal ENOENT or EISDIR after work was done.
 */
export function checkOutputPath(option: string, path: string): void {
  const dir = dirname(resolve(path));
  if (!existsSync(dir))
    throw new ManagementError("not-found", `directory ${dir} does not exist (${option} ${path})`);
  if (existsSync(path) && statSync(path).isDirectory())
    throw new ManagementError("invalid-config", `${option} ${path} is a directory, not a file`);
}

/**
 * Writes `path` through a temporary file beside it and a rename: a write that
 * fails (or is interrupted) never leaves a partial file under the final
 * name, and the temporary file is removed on failure and on SIGINT, SIGTERM
 * or SIGHUP during the write (onEndingSignal), after which the process dies
 * of that signal.
 */
export async function writeThroughTemp(
  path: string,
  write: (tmp: string) => Promise<void>,
): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const stopListening = onEndingSignal(() => rmSync(tmp, { force: true }));
  try {
    await write(tmp);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  } finally {
    stopListening();
  }
}
