/**
 * Picks the protocol version two sides will speak: the highest version that
 * both list. Returns undefined when they share none.
 *
 * This is go-plugin's rule, and it keeps old hosts working with new plugins:
 * a plugin adds version N+1 beside N, and each host gets the newest it knows.
 */
export function negotiateVersion(
  hostVersions: readonly number[],
  pluginVersions: readonly number[],
): number | undefined {
  let best: number | undefined;
  for (const v of pluginVersions) {
    if (hostVersions.includes(v) && (best === undefined || v > best)) best = v;
  }
  return best;
}

/** Parses "1,2,3" (go-plugin's PLUGIN_PROTOCOL_VERSIONS) into numbers. */
export function parseVersionList(value: string | undefined): number[] {
  if (value === undefined) return [];
  const versions: number[] = [];
  for (const part of value.split(",")) {
    // Whole decimal numbers only, like Go's strconv.Atoi ("2abc" is not 2);
    // 0 is a valid go-plugin version. Blanks around a number are allowed.
    const text = part.trim();
    if (/^\d+$/.test(text)) versions.push(Number(text));
  }
  return versions;
}

/** Formats versions for error messages: "[1, 2]". */
export function formatVersions(versions: readonly number[]): string {
  return `[${[...versions].sort((a, b) => a - b).join(", ")}]`;
}
