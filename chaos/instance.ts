import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

const pluginMain = fileURLToPath(new URL("./ledger-plugin.js", import.meta.url));

/**
 * Starts the ledger plugin as a network service on `port` (0: any) and
 * resolves once it serves, with its process and URL. Retries a few times
 * when the port is still held by a process just killed. `signal` stops the
 * retries and kills a child still starting (a run that ended must not leave
 * a plugin behind, nor respawn one whose ledger folder is gone).
 */
export async function startLedgerPlugin(options: {
  port: number;
  ledger: string;
  id: string;
  env?: Record<string, string>;
  /** A network namespace to run it in (see netns.ts), listening on `host` there. */
  netns?: { name: string; host: string };
  signal?: AbortSignal;
}): Promise<ChildProcess & { url: string }> {
  const host = options.netns?.host ?? "127.0.0.1";
  const signal = options.signal;
  for (let attempt = 0; ; attempt++) {
    signal?.throwIfAborted();
    // `ip netns exec` execs the program: the child's pid is the plugin's.
    const [command, args] =
      options.netns === undefined
        ? [process.execPath, [pluginMain]]
        : ["ip", ["netns", "exec", options.netns.name, process.execPath, pluginMain]];
    const child = spawn(command, args, {
      env: {
        ...process.env,
        CONNECT_PLUGIN_LISTEN: `${host}:${options.port}`,
        LEDGER_FILE: options.ledger,
        INSTANCE_ID: options.id,
        ...options.env,
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    // Resolved by the child's exit, so that none outlives the abort.
    const stop = (): void => void child.kill("SIGKILL");
    signal?.addEventListener("abort", stop, { once: true });
    const url = await new Promise<string | undefined>((resolve) => {
      let buffered = "";
      child.stderr?.on("data", (chunk: Buffer) => {
        buffered += chunk.toString();
        const match = /"url":"([^"]+)"/.exec(buffered);
        if (match?.[1] !== undefined) resolve(match[1]);
      });
      child.once("exit", () => resolve(undefined));
    });
    signal?.removeEventListener("abort", stop);
    if (signal?.aborted === true) {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGKILL");
        await exited;
      }
      signal.throwIfAborted();
    }
    if (url !== undefined) return Object.assign(child, { url });
    if (attempt >= 20) {
      throw new Error(`ledger plugin ${options.id} did not start on port ${options.port}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
