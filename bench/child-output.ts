import type { ChildProcess } from "node:child_process";

/**
 * The first capture group of `re` in what `child` writes to `from` so far
 * (a server's "ready" line, its socket path or URL); rejects with the
 * output when the child exits before it, naming it `what`.
 */
export function firstMatch(
  child: ChildProcess,
  from: "stdout" | "stderr",
  re: RegExp,
  what = "server",
): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = "";
    child[from]?.on("data", (c: Buffer) => {
      buffered += c.toString();
      const m = re.exec(buffered);
      if (m?.[1] !== undefined) resolve(m[1]);
    });
    child.once("exit", (code) => reject(new Error(`${what} exited (${code}): ${buffered}`)));
  });
}
