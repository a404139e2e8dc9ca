/** A child process run to its end by the CLI's build commands, with a time limit. */
import { spawn } from "node:child_process";

/**
 * How long stderr may stay open after the process exited, default 1 s: a
 * child process of its own (a daemon it started) can hold the pipe open for
 * as long as it lives, and waiting for the pipe's end would then hang the
 * build. What the process wrote before it exited is in the pipe already and
 * is read well within it.
 */
export const STDERR_GRACE_MS = 1_000;

/**
 * Runs a command to its exit (in `env`, default this process's), or kills
 * it after `timeoutMs`, then reads its stderr to the pipe's end or for
 * STDERR_GRACE_MS more, whichever comes first (stdout is not read).
 */
export function runToEnd(
  command: string,
  args: string[],
  timeoutMs: number,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number | null; stderr: string; timedOut: boolean }> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(command, args, { env, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    let timedOut = false;
    let grace: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once("exit", () => {
      clearTimeout(timer);
      // Ending the pipe on our side lets "close" come.
      grace = setTimeout(() => child.stderr.destroy(), STDERR_GRACE_MS);
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      clearTimeout(grace);
      resolveRun({ code, stderr, timedOut });
    });
  });
}
