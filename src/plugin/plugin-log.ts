import type { LogLevel } from "../logging/logger.js";

/**
 * Writes one structured log line to the plugin's stderr, in hclog's JSON shape
 * (`@level`, `@message`, `@timestamp`), which connect-plugin and go-plugin
 * hosts both parse into structured records. Stdout is never used: before the
 * handshake it belongs to the handshake line.
 */
export function pluginLog(
  level: LogLevel,
  message: string,
  fields: Record<string, unknown> = {},
): void {
  const line = JSON.stringify({
    "@level": level,
    "@message": message,
    "@timestamp": new Date().toISOString(),
    "@module": "connect-plugin",
    ...fields,
  });
  process.stderr.write(`${line}\n`);
}
