/**
 * The levels a plugin's log record can have. They match hclog's and pino's
 * names so that JSON logs from Go and Node plugins map without a table.
 */
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error";

/**
 * One log record. The host produces one for each line a plugin writes to
 * stderr (and to stdout after the handshake), and for its own lifecycle events.
 */
export interface LogRecord {
  readonly level: LogLevel;
  readonly message: string;
  /** Which plugin (the command or URL) the record is about. */
  readonly plugin: string;
  /**
   * Where the record came from: a subprocess' stderr or stdout, an in-process
   * plugin, or the host itself (lifecycle events such as a crash).
   */
  readonly source: "stderr" | "stdout" | "in-process" | "host";
  /** Extra fields from a structured (JSON) line, or from the host. */
  readonly fields: Readonly<Record<string, unknown>>;
  /** When the plugin said it logged it (JSON lines) or when the host read it. */
  readonly time: Date;
}

/**
 * Where a host sends plugin logs. A single method keeps adapters to pino,
 * winston or console one line long:
 *
 * ```ts
 * const logger: Logger = { log: (r) => pino[r.level]({ ...r.fields, plugin: r.plugin }, r.message) };
 * ```
 */
export interface Logger {
  log(record: LogRecord): void;
}

/** A record of the host's own about a plugin (a crash, a listener error). */
export function hostRecord(
  plugin: string,
  level: LogLevel,
  message: string,
  fields: Record<string, unknown> = {},
): LogRecord {
  return { level, message, plugin, source: "host", fields, time: new Date() };
}

/**
 * Calls every listener with `value`. A listener that throws is reported to
 * the logger and does not stop the others, or the caller.
 */
export function notifyListeners<T>(
  listeners: Iterable<(value: T) => void>,
  value: T,
  logger: Logger,
  plugin: string,
): void {
  for (const listener of listeners) {
    try {
      listener(value);
    } catch (error) {
      logger.log(hostRecord(plugin, "error", `an onExit listener threw: ${String(error)}`));
    }
  }
}

const LEVEL_ORDER: readonly LogLevel[] = ["trace", "debug", "info", "warn", "error"];

/**
 * The least level stderrLogger prints: CONNECT_PLUGIN_LOG_LEVEL (trace,
 * debug, info, warn or error), read on each record; info by default, so that
 * a plugin's debug lines (such as go-plugin's "configuring server automatic
 * mTLS" on every start) stay out of a terminal unless asked for.
 */
function stderrThreshold(): number {
  const wanted = process.env.CONNECT_PLUGIN_LOG_LEVEL?.toLowerCase() as LogLevel | undefined;
  const index = wanted === undefined ? -1 : LEVEL_ORDER.indexOf(wanted);
  return index === -1 ? LEVEL_ORDER.indexOf("info") : index;
}

/**
 * A logger that writes "[plugin] level: message" lines to stderr, from info
 * up (CONNECT_PLUGIN_LOG_LEVEL=debug shows more). The default of hosts that
 * are given no logger.
 */
export const stderrLogger: Logger = {
  log(record) {
    if (LEVEL_ORDER.indexOf(record.level) < stderrThreshold()) return;
    const extra = Object.keys(record.fields).length > 0 ? ` ${safeJson(record.fields)}` : "";
    process.stderr.write(`[${record.plugin}] ${record.level}: ${record.message}${extra}\n`);
  },
};

/** A logger that drops everything. */
export const silentLogger: Logger = { log() {} };

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch {
    return "[unserializable]";
  }
}
