/** Signalling a child's process group: the launcher's, the conformance suite's and the CLI's one way. */
import type { ChildProcess } from "node:child_process";

/**
 * Sends `signal` to the process group that `child` leads (spawned with
 * `detached: true`), so that whatever it started and left in its group goes
 * with it; off POSIX (win32 has no process groups) to `child` alone, by
 * `child.kill`.
 *
 * The error policy, one for every caller:
 * - nothing to signal is fine and returns undefined: a child that never
 *   started (no pid), or a group already gone (ESRCH: every member exited
 *   and was reaped);
 * - any other error is returned, not thrown: EPERM means no member of the
 *   group could be signalled (they changed uid, or the number now names a
 *   group that is not ours), so the processes may still run. Each caller
 *   decides what that means for it: the launcher's exit hook runs inside
 *   process.on("exit") and must never throw, so the launcher ignores it (its
 *   plugins also see end-of-file on stdin); the conformance suite waits its
 *   5 s for the exit all the same; the CLI must not leave a command running
 *   silently, so runToEnd names it (pid) and stops waiting for it.
 *
 * It is not thrown so that no caller can forget a try; not `child.kill` as a
 * fallback on POSIX, because a group that refuses the signal refuses it for
 * its leader too, and `child.kill` reports EPERM as an "error" event.
 */
export function killGroup(
  child: Pick<ChildProcess, "pid" | "kill">,
  signal: NodeJS.Signals,
): NodeJS.ErrnoException | undefined {
  if (child.pid === undefined) return undefined;
  if (process.platform === "win32") {
    child.kill(signal);
    return undefined;
  }
  try {
    process.kill(-child.pid, signal);
    return undefined;
  } catch (e) {
    const error = e as NodeJS.ErrnoException;
    return error.code === "ESRCH" ? undefined : error;
  }
}
