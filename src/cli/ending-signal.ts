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
 * place to remove a temporary file or a process group then. Returns the
 * function that stops listening (call it in a finally).
 */
export function onEndingSignal(cleanup: (signal: NodeJS.Signals) => void): () => void {
  const stop = (): void => {
    for (const s of ENDING_SIGNALS) process.off(s, onSignal);
  };
  function onSignal(signal: NodeJS.Signals): void {
    stop();
    try {
      cleanup(signal);
    } finally {
      // With no listener left, the signal's default action ends the process
      // (unless another part of the CLI listens too, and then that decides).
      process.kill(process.pid, signal);
    }
  }
  for (const s of ENDING_SIGNALS) process.on(s, onSignal);
  return stop;
}
