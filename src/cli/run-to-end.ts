/** A child process run to its end by the CLI's build commands, with a time limit. */
import { spawn } from "node:child_process";
import { ManagementError } from "../manifest/errors.js";
import { killGroup } from "../process/kill-group.js";
import { onEndingSignal } from "./ending-signal.js";

/**
 * How long stderr may stay open after the process exited, default 1 s: a
 * child process of its own (a daemon it started) can hold the pipe open for
 * as long as it lives, and waiting for the pipe's end would then hang the
 * build. What the process wrote before it exited is in the pipe already and
 * is read well within it.
 */
export const STDERR_GRACE_MS = 1_000;

/**
 * How long the command's process group has to end after the CLI passed it
 * SIGINT, SIGTERM or SIGHUP, default 2 s, before it is killed (SIGKILL) and
 * the CLI dies of the signal: a command that ignores SIGINT (a plugin's
 * serve() does) would otherwise outlive the CLI, out of the terminal's reach.
 */
export const SIGNAL_GRACE_MS = 2_000;

/**
 * Runs a command to its exit (in `env`, default this process's), or kills
 * it after `timeoutMs`, then reads its stderr to the pipe's end or for
 * STDERR_GRACE_MS more, whichever comes first (stdout is not read).
 *
 * The command runs in a process group of its own (POSIX), so that the time
 * limit kills every process it started that stayed in the group (a plugin's
 * own children), not only the command; one that left the group (a daemon,
 * detached) is not ours and is left, at the time limit as after a normal
 * exit. (spawn's `detached` makes it a session of its own too: it has no
 * controlling terminal.) Being in another group, the command no longer gets
 * the terminal's Ctrl-C (nor Ctrl-Z, nor a SIGKILL sent to the CLI's whole
 * group): a SIGINT, SIGTERM or SIGHUP to the CLI while it runs is passed on
 * to the group, the command is given SIGNAL_GRACE_MS to end (then the
 * group is killed), `interrupted` runs, and the CLI then dies of it as
 * before (no catch or finally of the caller runs).
 *
 * A group that refuses the signal (killGroup's EPERM: the command made
 * itself another user's) would not end for us, so nothing waits for it: at
 * the time limit runToEnd rejects with a ManagementError ("incompatible")
 * that names it and says it ran past the limit; on an interrupt the CLI
 * says so on stderr, `interrupted` runs and the CLI dies at once. Either
 * way the message says it may still be running.
 */
export function runToEnd(
  command: string,
  args: string[],
  timeoutMs: number,
  env: NodeJS.ProcessEnv = process.env,
  /** Run once the command has ended after such a signal, before the CLI dies of it: what the caller's finally would have removed. */
  interrupted: () => void = () => {},
): Promise<{ code: number | null; stderr: string; timedOut: boolean }> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(command, args, {
      env,
      stdio: ["ignore", "ignore", "pipe"],
      detached: process.platform !== "win32",
    });
    const stopListening = onEndingSignal((signal) =>
      // Not started (its "error" is on its way): nothing to wait for.
      child.pid === undefined
        ? undefined
        : new Promise<void>((ended) => {
            // Set once the signal is passed on; `end` may run before that.
            let force: NodeJS.Timeout | undefined = undefined;
            const end = (): void => {
              clearTimeout(force);
              try {
                interrupted();
              } finally {
                ended();
              }
            };
            // Refused (EPERM), it will not end for us: say so, and end now.
            const refused = (error: NodeJS.ErrnoException | undefined): boolean => {
              if (error === undefined) return false;
              process.stderr.write(
                `connect-plugin: ${notKilled(command, child.pid, signal, error)}\n`,
              );
              child.off("exit", end);
              end();
              return true;
            };
            child.once("exit", end);
            if (refused(killGroup(child, signal))) return;
            // Killed, the command exits (then "exit" below) as at the time limit.
            force = setTimeout(() => refused(killGroup(child, "SIGKILL")), SIGNAL_GRACE_MS);
          }),
    );
    let stderr = "";
    let timedOut = false;
    let grace: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      const error = killGroup(child, "SIGKILL");
      if (error === undefined) return;
      // It would not end for us: fail now rather than wait for it.
      stopListening();
      child.stderr.destroy();
      child.unref();
      reject(
        new ManagementError(
          "incompatible",
          `${command} did not end in ${timeoutMs} ms (the time limit): ` +
            notKilled(command, child.pid, "SIGKILL", error),
          { cause: error },
        ),
      );
    }, timeoutMs);
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.once("error", (error) => {
      clearTimeout(timer);
      stopListening();
      reject(error);
    });
    child.once("exit", () => {
      clearTimeout(timer);
      stopListening();
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

/** What the CLI says when a command's process group refused `signal` at the time limit or on an interrupt. */
function notKilled(
  command: string,
  pid: number | undefined,
  signal: NodeJS.Signals,
  error: NodeJS.ErrnoException,
): string {
  return (
    `could not send ${signal} to the process group of ${command} (pid ${pid ?? "unknown"}): ` +
    `${error.code ?? error.message}; it may still be running`
  );
}
