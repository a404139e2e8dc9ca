import { execFileSync } from "node:child_process";
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

const TICK_US = 1e6 / Number(execFileSync("getconf", ["CLK_TCK"]).toString());

/**
 * CPU time of process `pid` so far, in µs: utime + stime of /proc/PID/stat,
 * which keeps the time of threads that have exited (a Go runtime's do,
 * and threadsCpuNs then goes backwards), in clock ticks (10 ms): measure
 * over a second or more.
 */
export function processCpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * TICK_US;
}
