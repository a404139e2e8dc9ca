import { constants } from "node:os";

/**
 * The signals that end the CLI from outside (Ctrl-C, `kill`, a closed
 * terminal), for the commands that must undo something first.
 */
const ENDING_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/**
 * Runs `cleanup` if SIGINT, SIGTERM or SIGHUP comes, then lets the process
 * die of that signal as it would have without the listener (so that the
 * shell still sees Ctrl-C as exit 130). A signal's default action ends the
 * process at once, without any catch or finally running: this is the only
 * place to remove a temporary file or a process group then. A cleanup that
 * returns a promise (a process group given time to end) is waited for, and
 * it must bound that wait itself: signals that come meanwhile are taken by
 * this listener and change nothing. Returns the function that stops
 * listening (call it in a finally; once the cleanup started, the process
 * dies when it is done all the same).
 */
export function onEndingSignal(
  cleanup: (signal: NodeJS.Signals) => void | Promise<void>,
): () => void {
  let ending = false;
  const stop = (): void => {
    for (const s of ENDING_SIGNALS) process.off(s, onSignal);
  };
  const die = (signal: NodeJS.Signals): void => {
    stop();
    try {
      // With no listener left, the signal's default action ends the process
      // (unless another part of the CLI listens too, and then that decides).
      process.kill(process.pid, signal);
    } catch {
      // Windows: no SIGHUP to send (ENOSYS), though a closed console emits
      // one. The exit code a shell gives a death by that signal instead.
      process.exit(128 + (constants.signals[signal] ?? 0));
    }
  };
  function onSignal(signal: NodeJS.Signals): void {
    if (ending) return;
    ending = true;
    let done: void | Promise<void>;
    try {
      done = cleanup(signal);
    } catch (e) {
      die(signal);
      throw e;
    }
    // (A cleanup typed void may return anything: only a promise is waited for.)
    if (!(done instanceof Promise)) die(signal);
    else
      done.then(
        () => die(signal),
        () => die(signal),
      );
  }
  for (const s of ENDING_SIGNALS) process.on(s, onSignal);
  return stop;
}
