import { readdirSync, readFileSync } from "node:fs";

/**
 * CPU time of every thread of `pid` so far, in ns (the first field of each
 * /proc/PID/task/TID/schedstat): a process's own CPU, which on a shared
 * machine depends far less on what else runs than wall-clock time does.
 * Threads that exited are not counted (node's do not exit).
 */
export function threadsCpuNs(pid: number): number {
  let total = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return total;
}
