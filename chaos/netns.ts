/**
 * Real network partitions for the chaos suite. The host runs in a network
 * namespace of its own and each instance in another, joined to the host's by
 * a veth pair with a /30 of 10.213.0.0/16 (addresses that exist only inside
 * these namespaces, which are deleted at the end). A partition is made in
 * the kernel, not in the proxy: the instance's end of the link is taken down
 * (packets are dropped silently, as on a cut cable) or the instance's route
 * back to the host is removed (its replies cannot leave). This kernel has no
 * netem, so latency and slow links stay with the proxy.
 *
 * Namespaces need root (CAP_SYS_ADMIN) and iproute2; without them the suite
 * says why and runs without partitions.
 */
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

export interface PartitionLink {
  /** The instance's namespace. */
  readonly ns: string;
  /** The veth end inside the instance's namespace. */
  readonly instanceIf: string;
  readonly hostAddress: string;
  readonly instanceAddress: string;
  /** The /30 both ends are on. */
  readonly subnet: string;
}

export interface Topology {
  /** The namespace the host (the chaos process) runs in. */
  readonly hostNs: string;
  readonly links: readonly PartitionLink[];
}

export type PartitionKind = "link-down" | "route-removed";

const ip = (...args: string[]): void => {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
};

/** Why namespaces cannot be used here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0)
    return "network partitions need root (ip netns); not running as root";
  const probe = `cpprobe${process.pid}`;
  try {
    ip("netns", "add", probe);
  } catch (error) {
    return `ip netns add failed: ${String((error as { stderr?: Buffer }).stderr ?? error).trim()}`;
  }
  try {
    ip("netns", "del", probe);
  } catch {
    // best effort
  }
  return undefined;
}

/** Creates the host namespace and one linked namespace per instance. */
export function createTopology(instances: number, tag = String(process.pid)): Topology {
  const hostNs = `cph${tag}`;
  const links: PartitionLink[] = [];
  const made: string[] = [];
  try {
    ip("netns", "add", hostNs);
    made.push(hostNs);
    ip("-n", hostNs, "link", "set", "lo", "up");
    for (let k = 0; k < instances; k++) {
      const ns = `cpi${tag}x${k}`;
      ip("netns", "add", ns);
      made.push(ns);
      ip("-n", ns, "link", "set", "lo", "up");
      const hostIf = `cph${k}`;
      const instanceIf = `cpi${k}`;
      // Created inside the host namespace, then one end moved to the instance's.
      ip("-n", hostNs, "link", "add", hostIf, "type", "veth", "peer", "name", instanceIf);
      ip("-n", hostNs, "link", "set", instanceIf, "netns", ns);
      const base = `10.213.${Math.floor(k / 64)}.${(k % 64) * 4}`;
      const [a, b, c, d] = base.split(".").map(Number) as [number, number, number, number];
      const hostAddress = `${a}.${b}.${c}.${d + 1}`;
      const instanceAddress = `${a}.${b}.${c}.${d + 2}`;
      ip("-n", hostNs, "addr", "add", `${hostAddress}/30`, "dev", hostIf);
      ip("-n", ns, "addr", "add", `${instanceAddress}/30`, "dev", instanceIf);
      ip("-n", hostNs, "link", "set", hostIf, "up");
      ip("-n", ns, "link", "set", instanceIf, "up");
      links.push({ ns, instanceIf, hostAddress, instanceAddress, subnet: `${base}/30` });
    }
  } catch (error) {
    for (const ns of made.reverse()) tryDelete(ns);
    throw error;
  }
  return { hostNs, links };
}

/** Deletes the namespaces (and with them their veth pairs). Never throws. */
export function destroyTopology(topology: Topology): void {
  for (const link of topology.links) tryDelete(link.ns);
  tryDelete(topology.hostNs);
}

function tryDelete(ns: string): void {
  try {
    ip("netns", "del", ns);
  } catch {
    // already gone
  }
}

/** An ip(8) command that does not block the event loop (the workload keeps running). */
async function ipAsync(...args: string[]): Promise<void> {
  await execFileAsync("ip", args);
}

/** Cuts the instance off from the host. */
export async function partition(link: PartitionLink, kind: PartitionKind): Promise<void> {
  if (kind === "link-down") await ipAsync("-n", link.ns, "link", "set", link.instanceIf, "down");
  else await ipAsync("-n", link.ns, "route", "del", link.subnet, "dev", link.instanceIf);
}

/** Undoes {@link partition}. */
export async function heal(link: PartitionLink, kind: PartitionKind): Promise<void> {
  if (kind === "link-down") {
    await ipAsync("-n", link.ns, "link", "set", link.instanceIf, "up");
  } else {
    await ipAsync(
      "-n",
      link.ns,
      "route",
      "add",
      link.subnet,
      "dev",
      link.instanceIf,
      "proto",
      "kernel",
      "scope",
      "link",
      "src",
      link.instanceAddress,
    );
  }
}
