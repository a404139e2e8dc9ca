import { logContext } from "../logging/log-context.js";
import type { LogLevel } from "../logging/logger.js";
import { buildingSnapshot } from "./snapshot.js";

/**
 * The real stderr, taken before anything can replace process.stderr.write:
 * under a go-plugin host, the program's own stderr writes are forwarded over
 * plugin.GRPCStdio, while these log lines must stay on the real stderr.
 * Taken when this module loads, except in a startup snapshot being built,
 * whose process.stderr is the builder's (Node replaces it when the snapshot
 * starts): serve() takes it then.
 */
let writeStderr: ((line: string) => boolean) | undefined = buildingSnapshot()
  ? undefined
  : process.stderr.write.bind(process.stderr);

/**
 * Takes the real stderr now, if not taken yet (see writeStderr). While a
 * snapshot is built, a log line goes to the builder's stderr and nothing is
 * kept: kept, it would be the started plugin's stderr, and lose every line.
 */
export function takeStderr(): (line: string) => boolean {
  if (writeStderr !== undefined) return writeStderr;
  const write = process.stderr.write.bind(process.stderr);
  if (!buildingSnapshot()) writeStderr = write;
  return write;
}

/**
 * Writes one structured log line to the plugin's stderr, in hclog's JSON shape
 * (`@level`, `@message`, `@timestamp`), which connect-plugin and go-plugin
 * hosts both parse into structured records. Stdout is never used: before the
 * handshake it belongs to the handshake line. Inside a call traced by
 * serverObservability(), the line carries that call's `trace_id` and `span_id`.
 */
export function pluginLog(
  level: LogLevel,
  message: string,
  fields: Record<string, unknown> = {},
): void {
  const line = JSON.stringify({
    "@level": level,
    "@message": message,
    // hclog's layout, microseconds: go-plugin hosts parse exactly six digits.
    "@timestamp": new Date().toISOString().replace(/Z$/, "000Z"),
    "@module": "connect-plugin",
    ...logContext(),
    ...fields,
  });
  takeStderr()(`${line}\n`);
}
