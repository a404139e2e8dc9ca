/**
 * Operating-system limits on a plugin subprocess, set with rlimits by a tiny
 * `/bin/sh` wrapper (`ulimit`, then `exec` the plugin, so it keeps the pid and
 * process group): no native addon, nothing to install. The plugin and the
 * processes it starts inherit them. (cgroup v2 would also bound children
 * together; see docs/security.md.)
 */
export interface ResourceLimits {
  /**
   * Memory the plugin may allocate, in bytes (RLIMIT_DATA: heap and private
   * writable mappings, which is what malloc, Go's and V8's heaps use; not
   * RLIMIT_AS, which V8's address-space reservations exceed at once).
   * Rounded up to KiB.
   */
  readonly memoryBytes?: number;
  /** CPU time in whole seconds (RLIMIT_CPU); the plugin gets SIGXCPU when it is used up. */
  readonly cpuSeconds?: number;
  /** Open file descriptors, sockets and pipes included (RLIMIT_NOFILE). */
  readonly openFiles?: number;
}

/** Checks limits and throws an Error that names the bad one. */
export function checkLimits(limits: ResourceLimits): void {
  for (const [name, value] of Object.entries(limits)) {
    if (value === undefined) continue;
    if (!Number.isInteger(value) || (value as number) < 1) {
      throw new Error(`resource limit ${name} must be a whole number ≥ 1, got ${String(value)}`);
    }
  }
}

/** The command line that runs `command` under `limits` (unchanged when there are none). */
export function limitedCommand(
  command: string,
  args: readonly string[],
  limits: ResourceLimits | undefined,
): { command: string; args: string[] } {
  if (limits === undefined || Object.values(limits).every((v) => v === undefined)) {
    return { command, args: [...args] };
  }
  checkLimits(limits);
  const steps: string[] = [];
  if (limits.memoryBytes !== undefined)
    steps.push(`ulimit -d ${Math.ceil(limits.memoryBytes / 1024)}`);
  // Soft limit: SIGXCPU, which tells this limit apart; the hard one a second later kills.
  if (limits.cpuSeconds !== undefined) {
    steps.push(`ulimit -S -t ${limits.cpuSeconds}`, `ulimit -H -t ${limits.cpuSeconds + 1}`);
  }
  if (limits.openFiles !== undefined) steps.push(`ulimit -n ${limits.openFiles}`);
  return {
    command: "/bin/sh",
    args: ["-c", `${steps.join(" && ")} && exec "$0" "$@"`, command, ...args],
  };
}

/**
 * Which limit a plugin that ended this way ran into, as words for an error
 * message ("its CPU time limit of 2 s"), or undefined (always for exit code
 * 0). SIGXCPU is certain;
 * memory and files are read from the plugin's last words on stderr (V8's,
 * Go's and libc's phrases for a failed allocation; EMFILE).
 */
export function exceededLimit(
  limits: ResourceLimits | undefined,
  code: number | null,
  signal: NodeJS.Signals | null,
  stderrTail: string,
): string | undefined {
  // A plugin that exited with 0 ran into nothing, whatever its log said.
  if (limits === undefined || (code === 0 && signal === null)) return undefined;
  if (limits.cpuSeconds !== undefined && signal === "SIGXCPU") {
    return `its CPU time limit of ${limits.cpuSeconds} s`;
  }
  if (
    limits.memoryBytes !== undefined &&
    /out of memory|Allocation failed|Cannot allocate memory|std::bad_alloc|MemoryError/i.test(
      stderrTail,
    )
  ) {
    return `its memory limit of ${formatBytes(limits.memoryBytes)}`;
  }
  if (limits.openFiles !== undefined && /EMFILE|too many open files/i.test(stderrTail)) {
    return `its open-files limit of ${limits.openFiles}`;
  }
  return undefined;
}

function formatBytes(bytes: number): string {
  const MiB = 1024 * 1024;
  return bytes % MiB === 0 ? `${bytes / MiB} MiB` : `${bytes} bytes`;
}
