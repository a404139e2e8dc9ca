import { ManagementError } from "../manifest/errors.js";
import { PLATFORM_PATTERN } from "../manifest/platform.js";

/**
 * `text` if it is `os/arch` in OCI names (`linux/amd64`), else an
 * "invalid-config" error (exit 7) naming `option` and the value given.
 */
function checkedPlatform(text: string, option: string): string {
  if (!PLATFORM_PATTERN.test(text))
    throw new ManagementError(
      "invalid-config",
      `${option} must be os/arch in OCI names, e.g. linux/amd64 or darwin/arm64, not ${JSON.stringify(text)}`,
    );
  return text;
}

/**
 * The `--platform` option's value, checked while the command line is parsed,
 * so that a typo is refused before any download or file work.
 */
export const platformOption = (text: string): string => checkedPlatform(text, "--platform");

/**
 * `init --platforms`' comma-separated list (spaces around a comma allowed),
 * each checked as `--platform` is, while the command line is parsed: the
 * manifest's own check would name its `entrypoints` key, not the option.
 */
export const platformsOption = (text: string): string[] =>
  text.split(",").map((p) => checkedPlatform(p.trim(), "--platforms"));
