import { ManagementError } from "../manifest/errors.js";
import { PLATFORM_PATTERN } from "../manifest/platform.js";

/**
 * The `--platform` option's value, checked while the command line is parsed,
 * so that a typo is refused before any download or file work: anything but
 * `os/arch` in OCI names (`linux/amd64`) is an "invalid-config" error (exit 7)
 * naming the value given.
 */
export function platformOption(text: string): string {
  if (!PLATFORM_PATTERN.test(text))
    throw new ManagementError(
      "invalid-config",
      `--platform must be os/arch in OCI names, e.g. linux/amd64 or darwin/arm64, not ${JSON.stringify(text)}`,
    );
  return text;
}
