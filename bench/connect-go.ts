/**
 * The connect-go row: connect-plugin's Node host calling the Go plugin of
 * go/bench/connectgo (connect-go, served by go/connectplugin's Serve) as a
 * remote service, Connect over HTTP/2 cleartext on loopback TCP: the path a
 * plugin written in another language takes. The plugin is started the way
 * a user runs one, `CONNECT_PLUGIN_LISTEN=127.0.0.1:0 ./plugin`, and the
 * host finds its address in the "plugin serving" log line.
 */
import { spawn } from "node:child_process";
import { remote } from "../src/index.js";
import { firstMatch } from "./child-output.js";
import { connectOps, fromOps, openPlugin, type Contender } from "./contenders.js";

/** How long the plugin may take to log its address before the start fails (default 30 s). */
const START_TIMEOUT_MS = 30_000;

export type ConnectGoPlugin = Awaited<ReturnType<typeof openConnectGoPlugin>>;

export interface ConnectGoOptions {
  /** Added to the plugin's environment, e.g. BENCH_COMPRESS_MIN_BYTES (go/bench/connectgo). */
  readonly env?: Readonly<Record<string, string>>;
  /** Default START_TIMEOUT_MS (30 s). */
  readonly startTimeoutMs?: number;
}

/**
 * Starts the connect-go bench plugin `bin` on a free loopback port and
 * opens a connect-plugin client to it; rejects, with the plugin's output,
 * when it exits, cannot be spawned, or logs no address in time.
 */
export async function openConnectGoPlugin(bin: string, options: ConnectGoOptions = {}) {
  const startTimeoutMs = options.startTimeoutMs ?? START_TIMEOUT_MS;
  if (bin === "")
    throw new Error(
      "the connect-go bench plugin's executable is missing (bench/go-build.ts builds it from go/bench/connectgo)",
    );
  const child = spawn(bin, [], {
    env: { ...process.env, ...options.env, CONNECT_PLUGIN_LISTEN: "127.0.0.1:0" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let timer: NodeJS.Timeout | undefined;
  const failed = new Promise<never>((_, reject) => {
    child.once("error", (err) =>
      reject(new Error(`connect-go bench plugin ${bin} could not start: ${err.message}`)),
    );
    timer = setTimeout(
      () =>
        reject(
          new Error(`connect-go bench plugin ${bin} logged no address in ${startTimeoutMs} ms`),
        ),
      startTimeoutMs,
    );
  });
  const stop = (): void => void child.kill("SIGTERM");
  try {
    const url = await Promise.race([
      firstMatch(child, "stderr", /"url":"([^"]+)"/, `connect-go bench plugin ${bin}`),
      failed,
    ]);
    const client = await openPlugin(remote(url, { protocol: "connect" }));
    return {
      client,
      url,
      pid: child.pid,
      async close(): Promise<void> {
        await client.close();
        stop();
      },
    };
  } catch (err) {
    stop();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** The row's contender: the scenarios of bench/run.ts through the client above. */
export async function connectGoRemote(
  name: string,
  bin: string,
  options?: ConnectGoOptions,
): Promise<Contender> {
  const plugin = await openConnectGoPlugin(bin, options);
  return fromOps(
    name,
    connectOps(plugin.client.dispense("bench")),
    () => plugin.close(),
    () => plugin.pid,
  );
}
