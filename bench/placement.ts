/**
 * Where a host and its plugin run: unpinned (the scheduler's choice), or
 * pinned with util-linux's `taskset` to one CPU together or to two different
 * CPUs. The raw-socket floor moves 2-3× between the two (it mostly measures
 * how fast the OS wakes the other process), so each placement is reported
 * with its own floor. A plugin inherits its host's affinity when it is
 * spawned, so the host is started under `taskset -c` and the plugin (every
 * thread of it) is re-pinned with `taskset -a -p -c` once it runs.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

export interface Placement {
  readonly name: "same" | "split";
  /** How the report names it. */
  readonly label: string;
  readonly hostCpu: number;
  readonly pluginCpu: number;
}

/** The CPUs a process (or this one) may run on, as a list ("0-1"). */
export function allowedCpus(pid: number | "self" = "self"): string {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return /^Cpus_allowed_list:\s*(\S+)/m.exec(status)?.[1] ?? "?";
}

/** "0-2,4" → [0, 1, 2, 4]. */
function cpuList(list: string): number[] {
  return list.split(",").flatMap((part) => {
    const [a = "", b = a] = part.split("-");
    return Array.from({ length: Number(b) - Number(a) + 1 }, (_, i) => Number(a) + i);
  });
}

/**
 * The two pinned placements on the first two CPUs this process may use, or
 * the reason there are none (one CPU, or no `taskset`).
 */
export function pinnedPlacements(): Placement[] | string {
  const cpus = cpuList(allowedCpus());
  const [a, b] = cpus;
  if (a === undefined || b === undefined || Number.isNaN(a) || Number.isNaN(b))
    return `pinned placements skipped: this process may use only CPU ${allowedCpus()}`;
  try {
    execFileSync("taskset", ["-V"], { stdio: "ignore" });
  } catch {
    return "pinned placements skipped: no taskset (util-linux) on PATH";
  }
  return [
    { name: "same", label: `host and plugin on CPU ${a}`, hostCpu: a, pluginCpu: a },
    { name: "split", label: `host on CPU ${a}, plugin on CPU ${b}`, hostCpu: a, pluginCpu: b },
  ];
}

/** The placement the environment variable `name` names (same, split), or none: unpinned. */
export function placementFromEnv(name: string): Placement | undefined {
  const wanted = process.env[name];
  if (wanted === undefined) return undefined;
  const placements = pinnedPlacements();
  if (typeof placements === "string") throw new Error(placements);
  const found = placements.find((p) => p.name === wanted);
  if (found === undefined) throw new Error(`${name} must be same or split, got ${wanted}`);
  return found;
}

/** The command line that starts a host pinned to the placement's host CPU. */
export function pinnedCommand(p: Placement, argv: readonly string[]): string[] {
  return ["taskset", "-c", String(p.hostCpu), ...argv];
}

/** Pins every thread of `pid` to `cpu`, then checks every thread's affinity. */
export function pin(pid: number, cpu: number): void {
  execFileSync("taskset", ["-a", "-p", "-c", String(cpu), String(pid)], { stdio: "ignore" });
  checkPinned(pid, cpu);
}

/** Throws unless `taskset -a -p` reports every thread of `pid` on `cpu` alone. */
export function checkPinned(pid: number, cpu: number): void {
  const out = execFileSync("taskset", ["-a", "-c", "-p", String(pid)], { encoding: "utf8" });
  // "pid 123's current affinity list: 0", one line per thread.
  const lists = [...out.matchAll(/affinity list:\s*(\S+)/g)].map((m) => m[1]);
  if (lists.length === 0 || lists.some((l) => l !== String(cpu)))
    throw new Error(`pid ${pid} is not pinned to CPU ${cpu}: ${out.trim()}`);
}
