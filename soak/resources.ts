/**
 * What a long run may leak, read from the operating system: this process's
 * open file descriptors, its child processes, the entries left in its
 * temporary directory (private socket directories, AutoMTLS files), and its
 * memory after a full garbage collection.
 */
import { readdirSync, readFileSync } from "node:fs";

export interface Handles {
  readonly fds: number;
  /** Pids of live children (zombies not yet reaped count: they hold a pid). */
  readonly children: readonly number[];
  /** Entries in the soak's own TMPDIR (socket dirs are `cp-*`). */
  readonly tempEntries: readonly string[];
}

export interface Memory {
  readonly rssMb: number;
  readonly heapUsedMb: number;
}

export function handles(tempRoot: string): Handles {
  return {
    fds: readdirSync("/proc/self/fd").length,
    children: childPids(),
    tempEntries: readdirSync(tempRoot),
  };
}

/** Children of this process, from /proc/<pid>/stat's fourth field. */
function childPids(): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // exited while we looked
    }
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(fields[1]) === process.pid) out.push(Number(entry));
  }
  return out;
}

/** Memory after two full collections (`node --expose-gc`), in MB. */
export function memory(): Memory {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error("the soak needs node --expose-gc (npm run soak sets it)");
  gc();
  gc();
  const m = process.memoryUsage();
  return { rssMb: m.rss / 2 ** 20, heapUsedMb: m.heapUsed / 2 ** 20 };
}

/**
 * Waits until this process's handles are back to `baseline`, up to
 * `timeoutMs` (children are reaped and sockets closed asynchronously), and
 * returns what is still out of line: an empty list when nothing leaked.
 */
export async function leaksAgainst(
  baseline: Handles,
  tempRoot: string,
  timeoutMs = 10_000,
): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = handles(tempRoot);
    const leaks: string[] = [];
    if (now.fds > baseline.fds) leaks.push(`${now.fds - baseline.fds} more open fds`);
    const extraChildren = now.children.filter((pid) => !baseline.children.includes(pid));
    if (extraChildren.length > 0) leaks.push(`child processes left: ${extraChildren.join(", ")}`);
    const extraTemp = now.tempEntries.filter((e) => !baseline.tempEntries.includes(e));
    if (extraTemp.length > 0) leaks.push(`temp entries left: ${extraTemp.slice(0, 5).join(", ")}`);
    if (leaks.length === 0 || Date.now() > deadline) return leaks;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
