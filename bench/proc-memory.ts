/**
 * A process's memory and children as Linux reports them in /proc: PSS (its
 * resident pages, each shared page divided among the processes sharing it,
 * so that a Node and a Go process are counted the same way) and anonymous
 * memory (heap and stacks, what the process itself allocated), from
 * /proc/PID/smaps_rollup.
 */
import { readFileSync, readdirSync } from "node:fs";

export interface ProcessMemory {
  readonly pssMb: number;
  readonly anonymousMb: number;
  /** Resident pages, shared ones counted whole (what `ps` shows). */
  readonly rssMb: number;
  /** Pages no other process maps (USS): what ending the process would free. */
  readonly privateMb: number;
}

export function processMemory(pid: number): ProcessMemory {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const kb = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
    if (m?.[1] === undefined) throw new Error(`/proc/${pid}/smaps_rollup has no ${field}`);
    return Number(m[1]);
  };
  return {
    pssMb: kb("Pss") / 1024,
    anonymousMb: kb("Anonymous") / 1024,
    rssMb: kb("Rss") / 1024,
    privateMb: (kb("Private_Clean") + kb("Private_Dirty")) / 1024,
  };
}

/** Pids whose parent is `parent`, from /proc/<pid>/stat's fourth field. */
export function childrenOf(parent: number): number[] {
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
    if (Number(fields[1]) === parent) out.push(Number(entry));
  }
  return out;
}
