import type { LogLevel, LogRecord } from "./logger.js";

const LEVELS = new Map<string, LogLevel>([
  ["trace", "trace"],
  ["debug", "debug"],
  ["info", "info"],
  ["warn", "warn"],
  ["warning", "warn"],
  ["error", "error"],
  ["fatal", "error"],
  ["panic", "error"],
  // pino's numeric levels
  ["10", "trace"],
  ["20", "debug"],
  ["30", "info"],
  ["40", "warn"],
  ["50", "error"],
  ["60", "error"],
]);

/** Keys that carry the message, level and time in common JSON log formats. */
const MESSAGE_KEYS = ["@message", "msg", "message"];
const LEVEL_KEYS = ["@level", "level"];
const TIME_KEYS = ["@timestamp", "time", "timestamp"];

/**
 * Turns one line of plugin output into a log record.
 *
 * A JSON object line becomes a structured record: hclog's `@message`,
 * `@level`, `@timestamp` (what go-plugin plugins write) and pino's `msg`,
 * `level`, `time` are understood, and every other key is kept as a field.
 * Any other line becomes a record with the line as its message, at
 * `defaultLevel`, except the lines of a JavaScript error and its stack trace
 * (what Node prints for an uncaught exception, or `console.error(err)`
 * prints), which are errors.
 */
export function parsePluginLine(
  line: string,
  plugin: string,
  source: "stderr" | "stdout",
  defaultLevel: LogLevel,
): LogRecord {
  const now = new Date();
  const plain: LogRecord = {
    level: isErrorLine(line) ? "error" : defaultLevel,
    message: line,
    plugin,
    source,
    fields: {},
    time: now,
  };
  if (!line.startsWith("{")) return plain;
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return plain;
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return plain;
  const fields: Record<string, unknown> = { ...(parsed as Record<string, unknown>) };
  const message = take(fields, MESSAGE_KEYS);
  const level = take(fields, LEVEL_KEYS);
  const time = take(fields, TIME_KEYS);
  return {
    level:
      LEVELS.get(
        typeof level === "string" || typeof level === "number" ? String(level).toLowerCase() : "",
      ) ?? defaultLevel,
    message:
      typeof message === "string" ? message : message === undefined ? "" : JSON.stringify(message),
    plugin,
    source,
    fields,
    time: parseTime(time) ?? now,
  };
}

function take(fields: Record<string, unknown>, keys: readonly string[]): unknown {
  for (const key of keys) {
    if (key in fields) {
      const value = fields[key];
      delete fields[key];
      return value;
    }
  }
  return undefined;
}

function parseTime(value: unknown): Date | undefined {
  if (typeof value !== "string" && typeof value !== "number") return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/**
 * A line of a JavaScript error report: a stack frame ("    at f (file:1:2)"),
 * an error's first line ("TypeError: x", "Error [ERR_X]: y", "Uncaught
 * Error: z"), or the "Node.js v20.1.0" line Node ends a crash report with.
 */
function isErrorLine(line: string): boolean {
  return (
    /^\s+at\s\S/.test(line) ||
    /^(?:Uncaught\s+)?[A-Z]?\w*(?:Error|Exception)(?:\s\[[A-Z0-9_]+\])?(?::\s|$)/.test(line) ||
    /^Node\.js v\d+\.\d+\.\d+$/.test(line)
  );
}
