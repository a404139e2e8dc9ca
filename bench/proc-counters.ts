import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * Counters of a process that do not depend on how fast the machine runs
 * it (how many, not how long), for the benches that compare how two
 * processes exchange calls (h2-split.ts, wakeups.ts).
 */

/** Voluntary and involuntary context switches of every thread, and the main thread's voluntary ones. */
export function switches(pid: number): { vol: number; invol: number; mainVol: number } {
  let vol = 0;
  let invol = 0;
  let mainVol = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let status: string;
    try {
      status = readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8");
    } catch {
      continue; // the thread ended meanwhile
    }
    const v = Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0);
    const i = Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0);
    vol += v;
    invol += i;
    if (tid === String(pid)) mainVol = v;
  }
  return { vol, invol, mainVol };
}

/**
 * Read and write syscalls of the process so far (read/readv/recv... and
 * write/writev/send..., on sockets, pipes and eventfds alike) and the
 * bytes they moved: /proc/PID/io, no tracer (strace slows every syscall,
 * which changes how calls batch when many are in flight).
 */
export function ioCounts(pid: number): {
  reads: number;
  writes: number;
  readBytes: number;
  writeBytes: number;
} {
  const text = readFileSync(`/proc/${pid}/io`, "utf8");
  const field = (name: string): number =>
    Number(new RegExp(`^${name}: (\\d+)`, "m").exec(text)?.[1] ?? 0);
  return {
    reads: field("syscr"),
    writes: field("syscw"),
    readBytes: field("rchar"),
    writeBytes: field("wchar"),
  };
}

/** libuv's counters of one event loop: iterations, and events its poll handed over. */
export interface LoopCounts {
  readonly loopCount: number;
  readonly events: number;
}

/**
 * The event loop counters of `pid`: this process's own, or those another
 * process with bench/loop-preload.js writes to `dir` when sent SIGUSR2.
 */
export async function loopCounters(pid: number, dir: string): Promise<LoopCounts> {
  if (pid === process.pid) return performance.nodeTiming.uvMetricsInfo;
  const file = join(dir, `${pid}.json`);
  rmSync(file, { force: true });
  process.kill(pid, "SIGUSR2");
  for (let waited = 0; !existsSync(file); waited += 2) {
    if (waited > 5_000)
      throw new Error(`process ${pid} wrote no loop counters (loop-preload.js not loaded?)`);
    await sleep(2);
  }
  return JSON.parse(readFileSync(file, "utf8")) as LoopCounts;
}

/** Segments sent and received on the TCP sockets PID holds (0 on unix sockets). */
export function segments(pid: number): { out: number; in: number } {
  const text = execFileSync("ss", ["-tinpH"]).toString();
  let out = 0;
  let inn = 0;
  // ss prints a socket's line, then its info indented on the next one.
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (!(lines[i] ?? "").includes(`pid=${pid},`)) continue;
    const info = lines[i + 1] ?? "";
    out += Number(/ segs_out:(\d+)/.exec(info)?.[1] ?? 0);
    inn += Number(/ segs_in:(\d+)/.exec(info)?.[1] ?? 0);
  }
  return { out, in: inn };
}
