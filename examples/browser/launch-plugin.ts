import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

/** A browser-reachable KV plugin running in its own process. */
export interface RunningPlugin {
  /** The plugin's base URL, e.g. "http://127.0.0.1:40123". */
  readonly url: string;
  readonly child: ChildProcess;
  /** Everything the plugin wrote to stderr so far (its JSON log lines). */
  stderr(): string;
  /** SIGTERM, then resolves with the exit code. */
  stop(): Promise<number | null>;
}

const pluginMain = fileURLToPath(new URL("./plugin.js", import.meta.url));

/**
 * Starts examples/browser/plugin.js on a free loopback port, allowing pages
 * from `origins` (through CONNECT_PLUGIN_CORS_ORIGINS) and requiring `token`.
 * Resolves once it serves, with the URL it logged.
 */
export async function launchBrowserPlugin(
  origins: readonly string[],
  token: string,
): Promise<RunningPlugin> {
  const child = spawn(process.execPath, [pluginMain], {
    env: {
      ...process.env,
      CONNECT_PLUGIN_LISTEN: "127.0.0.1:0",
      CONNECT_PLUGIN_CORS_ORIGINS: origins.join(","),
      KV_DEMO_TOKEN: token,
    },
    stdio: ["ignore", "inherit", "pipe"],
  });
  let log = "";
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr?.on("data", (chunk: Buffer) => {
      log += chunk.toString();
      const match = /"url":"([^"]+)"/.exec(log);
      if (match?.[1] !== undefined) resolve(match[1]);
    });
    void exited.then((code) => reject(new Error(`browser plugin exited with ${code}: ${log}`)));
  });
  return {
    url,
    child,
    stderr: () => log,
    stop: () => {
      child.kill("SIGTERM");
      return exited;
    },
  };
}
