import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { PluginExit, PluginProcess } from "./launcher.js";

/**
 * Makes calls into a plugin subprocess fail clearly when the process dies.
 *
 * Without it, a call in flight when a plugin crashes fails with whatever the
 * HTTP/2 stack saw ("stream closed", "socket hang up"), and a call made after
 * the crash waits for a connection that never comes. With it, both fail at
 * once with Code.Unavailable and a message that says the plugin exited, how,
 * and what it last wrote to stderr.
 *
 * Errors that the plugin itself sent pass through untouched: only a failure
 * of the connection is waited on (briefly) to see whether the process exited.
 */
export function exitGuard(
  name: string,
  proc: PluginProcess,
  connectionBroken: () => boolean,
): Interceptor {
  const explain = (exit: PluginExit, during: boolean, cause?: unknown): ConnectError =>
    new ConnectError(
      `plugin ${name} ${exit.expected ? "was closed" : exit.description}` +
        `${during ? " during the call" : ""}` +
        (exit.expected || exit.stderrTail === ""
          ? ""
          : `; last stderr: ${lastLine(exit.stderrTail)}`),
      Code.Unavailable,
      undefined,
      undefined,
      cause,
    );

  const translate = async (error: unknown, signal: AbortSignal): Promise<unknown> => {
    // The caller's own cancellation or deadline is not the plugin's doing.
    // (A dying connection also shows up as Canceled, but without the signal.)
    if (signal.aborted || ConnectError.from(error).code === Code.DeadlineExceeded) return error;
    if (proc.exit !== undefined) return explain(proc.exit, true, error);
    if (!connectionBroken()) return error;
    const exit = await proc.exitWithin(1_000);
    return exit === undefined ? error : explain(exit, true, error);
  };

  async function* guardStream<T>(
    messages: AsyncIterable<T>,
    signal: AbortSignal,
  ): AsyncIterable<T> {
    try {
      yield* messages;
    } catch (error) {
      throw await translate(error, signal);
    }
  }

  return (next) => async (req) => {
    if (proc.exit !== undefined) throw explain(proc.exit, false);
    try {
      const res = await next(req);
      return res.stream ? { ...res, message: guardStream(res.message, req.signal) } : res;
    } catch (error) {
      throw await translate(error, req.signal);
    }
  };
}

function lastLine(text: string): string {
  const lines = text.trimEnd().split("\n");
  return lines[lines.length - 1] ?? "";
}
