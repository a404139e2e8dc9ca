import { Resolver } from "node:dns/promises";
import { pollingWatch, sortEndpoints, type Discovery, type Endpoint } from "./discovery.js";

export interface DnsSrvOptions {
  /** DNS servers to ask ("127.0.0.1:5353"); default: the system's. */
  readonly servers?: readonly string[];
  /** URL scheme of the instances. Default "http". */
  readonly scheme?: "http" | "https";
  /** How often watch() asks again; DNS cannot push. Default 5,000 ms. */
  readonly intervalMs?: number;
  /** Per-query timeout. Default 2,000 ms. */
  readonly timeoutMs?: number;
}

/**
 * Instances from DNS SRV records, the way a Kubernetes headless service
 * publishes its ports (`_grpc._tcp.kv.plugins.svc.cluster.local`) and the
 * way Consul and dnsmasq can. Each record's target is resolved (A, then
 * AAAA) with the same resolver, so the URL holds an address and the id
 * holds "target:port". Only the records of the lowest priority are used,
 * as RFC 2782 asks; weights are left to the balancer.
 */
export function dnsSrv(name: string, options: DnsSrvOptions = {}): Discovery {
  const timeout = options.timeoutMs ?? 2_000;
  const scheme = options.scheme ?? "http";
  const servers = options.servers;
  const discover = async (signal?: AbortSignal): Promise<Endpoint[]> => {
    const resolver = new Resolver({ timeout, tries: 2 });
    if (servers !== undefined) resolver.setServers([...servers]);
    const cancel = (): void => resolver.cancel();
    signal?.addEventListener("abort", cancel, { once: true });
    try {
      let records;
      try {
        records = await resolver.resolveSrv(name);
      } catch (error) {
        const code = (error as { code?: string }).code;
        // No such name, or no SRV records at it: zero instances, not an outage.
        if (code === "ENOTFOUND" || code === "ENODATA") return [];
        throw new Error(`DNS SRV lookup of ${name} failed: ${(error as Error).message}`, {
          cause: error,
        });
      }
      const best = Math.min(...records.map((r) => r.priority));
      const endpoints: Endpoint[] = [];
      for (const record of records.filter((r) => r.priority === best)) {
        const address = await resolveTarget(resolver, record.name);
        const host = address.includes(":") ? `[${address}]` : address;
        endpoints.push({
          id: `${record.name}:${record.port}`,
          url: `${scheme}://${host}:${record.port}`,
          metadata: {
            target: record.name,
            priority: String(record.priority),
            weight: String(record.weight),
          },
        });
      }
      return sortEndpoints(endpoints);
    } finally {
      signal?.removeEventListener("abort", cancel);
    }
  };
  return {
    description: `dns-srv ${name}`,
    discover,
    watch: (onChange, onError) =>
      pollingWatch(discover, options.intervalMs ?? 5_000, onChange, onError),
  };
}

async function resolveTarget(resolver: Resolver, target: string): Promise<string> {
  try {
    const v4 = await resolver.resolve4(target);
    if (v4[0] !== undefined) return v4[0];
  } catch {
    // Try AAAA.
  }
  try {
    const v6 = await resolver.resolve6(target);
    if (v6[0] !== undefined) return v6[0];
  } catch {
    // Fall through to the name itself.
  }
  // The system resolver may still know it (e.g. /etc/hosts).
  return target;
}
