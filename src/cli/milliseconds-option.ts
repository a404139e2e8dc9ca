import { ManagementError } from "../manifest/errors.js";

/**
 * The longest delay setTimeout keeps: 2^31-1 ms (about 24.8 days). Node
 * fires a longer one after 1 ms, so `--timeout 1e12` would time out at once.
 */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * A `--timeout`-style option's value: a whole number of milliseconds from 1
 * to MAX_TIMEOUT_MS. Anything else is an "invalid-config" error (exit 7)
 * naming the option and the value given.
 */
export function millisecondsOption(option: string, text: string): number {
  const ms = Number(text);
  if (text.trim() === "" || !Number.isInteger(ms) || ms < 1 || ms > MAX_TIMEOUT_MS)
    throw new ManagementError(
      "invalid-config",
      `${option} must be a positive number of milliseconds, not ${JSON.stringify(text)} (at most ${MAX_TIMEOUT_MS})`,
    );
  return ms;
}
