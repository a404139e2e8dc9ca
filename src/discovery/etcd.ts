import type * as Etcd3Module from "etcd3";
import type { Etcd3, IOptions, Lease } from "etcd3";
import { sortEndpoints, type Discovery, type Endpoint } from "./discovery.js";

/**
 * etcd is an optional dependency: it is imported when an etcd discovery or
 * registration is first used, so that hosts that do not use etcd neither
 * need the package nor pay for loading it.
 */
async function loadEtcd(): Promise<typeof Etcd3Module> {
  try {
    return await import("etcd3");
  } catch (error) {
    throw new Error("etcd discovery needs the etcd3 package: npm install etcd3@1", {
      cause: error,
    });
  }
}

export interface EtcdDiscoveryOptions {
  /** etcd client endpoints, e.g. ["http://127.0.0.1:2379", ...]. */
  readonly hosts: readonly string[];
  /** The prefix instances register under, e.g. "/plugins/kv/". */
  readonly prefix: string;
  /** Passed to the etcd3 client (auth, TLS, dial timeout...). */
  readonly client?: Omit<IOptions, "hosts">;
}

/** What an instance stores under its key: its URL, and any metadata. */
interface Registration {
  readonly url: string;
  readonly metadata?: Record<string, string>;
}

/**
 * Instances that register themselves in etcd under a prefix, each key bound
 * to a lease that the instance keeps alive (see {@link registerInEtcd}). When
 * an instance dies, its lease expires and its key disappears; the host
 * watches the prefix and sees that within the lease TTL. The etcd3 client
 * fails over between the cluster members it is given, so losing one member
 * of a three-member cluster does not stop discovery.
 */
export function etcdDiscovery(options: EtcdDiscoveryOptions): Discovery {
  let client: Etcd3 | undefined;
  const getClient = async (): Promise<Etcd3> => {
    if (client === undefined) {
      const { Etcd3 } = await loadEtcd();
      client = new Etcd3({ ...options.client, hosts: [...options.hosts] });
    }
    return client;
  };
  const list = async (): Promise<Endpoint[]> => {
    const kvs = await (await getClient()).getAll().prefix(options.prefix).strings();
    return toEndpoints(kvs, options.prefix);
  };
  return {
    description: `etcd ${options.prefix}`,
    discover: list,
    watch(onChange, onError) {
      let stopped = false;
      let stop: () => void = () => {};
      const current = new Map<string, string>();
      const report = (): void => onChange(toEndpoints(Object.fromEntries(current), options.prefix));
      const start = async (): Promise<void> => {
        const etcd = await getClient();
        // Watch first, from the revision of the list, so that no change
        // between the two is missed.
        const res = await etcd.getAll().prefix(options.prefix).exec();
        current.clear();
        for (const kv of res.kvs) current.set(kv.key.toString(), kv.value.toString());
        if (stopped) return;
        report();
        const watcher = await etcd
          .watch()
          .prefix(options.prefix)
          .startRevision(String(Number(res.header.revision) + 1))
          .create();
        watcher.on("put", (kv) => {
          current.set(kv.key.toString(), kv.value.toString());
          report();
        });
        watcher.on("delete", (kv) => {
          current.delete(kv.key.toString());
          report();
        });
        watcher.on("error", (error: Error) => onError?.(error));
        stop = () => void watcher.cancel().catch(() => {});
        if (stopped) stop();
      };
      const attempt = (): void => {
        start().catch((error: unknown) => {
          onError?.(error instanceof Error ? error : new Error(String(error)));
          if (!stopped) setTimeout(attempt, 1_000).unref();
        });
      };
      attempt();
      return () => {
        stopped = true;
        stop();
        client?.close();
        client = undefined;
      };
    },
  };
}

function toEndpoints(kvs: Record<string, string>, prefix: string): Endpoint[] {
  const endpoints: Endpoint[] = [];
  for (const [key, value] of Object.entries(kvs)) {
    try {
      const reg = JSON.parse(value) as Registration;
      if (typeof reg.url !== "string") continue;
      endpoints.push({
        id: key.startsWith(prefix) ? key.slice(prefix.length) : key,
        url: reg.url,
        ...(reg.metadata !== undefined && { metadata: reg.metadata }),
      });
    } catch {
      // Not a registration: ignore foreign keys under the prefix.
    }
  }
  return sortEndpoints(endpoints);
}

export interface EtcdRegistrationOptions {
  readonly hosts: readonly string[];
  readonly prefix: string;
  /** This instance's id; the key is prefix + id. */
  readonly id: string;
  /** The URL hosts should call. */
  readonly url: string;
  readonly metadata?: Record<string, string>;
  /** Lease time-to-live in seconds: how long a dead instance stays listed. Default 5. */
  readonly ttlSeconds?: number;
  readonly client?: Omit<IOptions, "hosts">;
  /** Called when the lease is lost (etcd unreachable for longer than the TTL). */
  readonly onLost?: (error: Error) => void;
}

export interface EtcdRegistration {
  /** Removes the key and revokes the lease. */
  close(): Promise<void>;
}

/**
 * Registers a plugin instance in etcd under a lease that the etcd3 client
 * keeps alive in the background. If the lease is lost (etcd unreachable for
 * a whole TTL), the instance registers again with a new lease as soon as it
 * can, so a network blip does not remove it for good.
 */
export async function registerInEtcd(options: EtcdRegistrationOptions): Promise<EtcdRegistration> {
  const { Etcd3 } = await loadEtcd();
  const client = new Etcd3({ ...options.client, hosts: [...options.hosts] });
  const key = options.prefix + options.id;
  const value = JSON.stringify({
    url: options.url,
    ...(options.metadata !== undefined && { metadata: options.metadata }),
  });
  let closed = false;
  let lease: Lease;
  const grant = async (): Promise<void> => {
    lease = client.lease(options.ttlSeconds ?? 5);
    lease.on("lost", (error: Error) => {
      options.onLost?.(error);
      const retry = (): void => {
        if (closed) return;
        grant().catch(() => setTimeout(retry, 1_000).unref());
      };
      retry();
    });
    await lease.put(key).value(value);
  };
  try {
    await grant();
  } catch (error) {
    client.close();
    throw error;
  }
  return {
    async close() {
      closed = true;
      try {
        await lease.revoke();
      } catch {
        // Expires on its own.
      }
      client.close();
    },
  };
}
