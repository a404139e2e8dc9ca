import type * as Etcd3Module from "etcd3";
import type { Etcd3, IOptions, Lease, Watcher } from "etcd3";
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
  readonly client?: EtcdClientOptions;
}

/**
 * The etcd3 client options this library passes through (a subset of etcd3's
 * `IOptions`). Declared here, not imported, so that the published types do
 * not need the optional etcd3 package in an app that does not use etcd;
 * `toEtcd3Options` below keeps it assignable to the real type.
 */
export interface EtcdClientOptions {
  /** TLS: the CA, and a client certificate and key for mutual TLS (PEM buffers). */
  readonly credentials?: {
    readonly rootCertificate: Buffer;
    readonly privateKey?: Buffer;
    readonly certChain?: Buffer;
  };
  /** etcd user and password. */
  readonly auth?: { readonly username: string; readonly password: string };
  /** How long to wait for a connection to a member, in ms (etcd3's default: 30 s). */
  readonly dialTimeout?: number;
}

/** Compile-time check that EtcdClientOptions fits etcd3's IOptions. */
function toEtcd3Options(client: EtcdClientOptions | undefined, hosts: readonly string[]): IOptions {
  return { ...client, hosts: [...hosts] };
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
  const newClient = async (): Promise<Etcd3> => {
    const { Etcd3 } = await loadEtcd();
    return new Etcd3(toEtcd3Options(options.client, options.hosts));
  };
  return {
    description: `etcd ${options.prefix}`,
    // A one-shot list owns its client for the duration of the call, so a
    // discover()-only user leaks no gRPC channel.
    async discover() {
      const etcd = await newClient();
      try {
        const kvs = await etcd.getAll().prefix(options.prefix).strings();
        return toEndpoints(kvs, options.prefix);
      } finally {
        etcd.close();
      }
    },
    watch(onChange, onError) {
      // Each watch owns its client: stopping one watch never closes the
      // client under another.
      let stopped = false;
      let client: Etcd3 | undefined;
      let watcher: Watcher | undefined;
      let timer: NodeJS.Timeout | undefined;
      let delay = RETRY_MIN_MS;
      let stall: NodeJS.Timeout | undefined;
      const current = new Map<string, string>();
      const report = (): void => onChange(toEndpoints(Object.fromEntries(current), options.prefix));
      const fail = (error: Error): void => {
        if (stopped) return;
        onError?.(error);
      };
      // Any loss of the watch (server-side cancel such as a compacted
      // revision, an unexpected end, a failed list) leads here: drop the
      // watcher, then list again and watch from the list's revision, with a
      // capped, jittered backoff so a dead cluster is not hammered.
      const restart = (error: Error): void => {
        if (stopped) return;
        fail(error);
        clearTimeout(stall);
        const old = watcher;
        watcher = undefined;
        // A fresh client too: the old one's channels may be stuck on a dead member.
        const oldClient = client;
        client = undefined;
        // Closing the client ends its watch streams; cancel() alone can wait
        // for ever on a stuck stream.
        void old?.cancel().catch(() => {});
        oldClient?.close();
        if (timer !== undefined) return;
        timer = setTimeout(
          () => {
            timer = undefined;
            attempt();
          },
          delay / 2 + Math.random() * (delay / 2),
        );
        timer.unref();
        delay = Math.min(delay * 2, RETRY_MAX_MS);
      };
      const start = async (): Promise<void> => {
        client ??= await newClient();
        if (stopped) {
          client.close();
          return;
        }
        const etcd = client;
        // Watch from the revision of the list, so that no change between
        // the two is missed.
        const res = await etcd.getAll().prefix(options.prefix).exec();
        if (stopped) return;
        current.clear();
        for (const kv of res.kvs) current.set(kv.key.toString(), kv.value.toString());
        report();
        // Like create(), but a client stuck dialling a dead member would wait
        // for ever: the watcher gets STALL_MS to connect, and is cancelled
        // (so etcd3 stops re-dialling for it) if it does not.
        const w = etcd
          .watch()
          .prefix(options.prefix)
          .startRevision(String(Number(res.header.revision) + 1))
          .watcher();
        let createTimer: NodeJS.Timeout | undefined;
        try {
          await new Promise<void>((resolve, reject) => {
            w.once("connected", () => resolve());
            w.once("error", reject);
            createTimer = setTimeout(
              () =>
                reject(
                  new Error(
                    `etcd watch on ${options.prefix} was not established within ${STALL_MS} ms`,
                  ),
                ),
              STALL_MS,
            );
          });
        } catch (error) {
          void w.cancel().catch(() => {});
          throw error;
        } finally {
          clearTimeout(createTimer);
        }
        if (stopped) {
          void w.cancel().catch(() => {});
          return;
        }
        watcher = w;
        delay = RETRY_MIN_MS;
        w.on("put", (kv) => {
          if (w !== watcher) return;
          current.set(kv.key.toString(), kv.value.toString());
          report();
        });
        w.on("delete", (kv) => {
          if (w !== watcher) return;
          current.delete(kv.key.toString());
          report();
        });
        w.on("error", (error: Error) => {
          if (w !== watcher) return;
          const reason = error.message.replace(/^Watcher canceled: ?$/, "").trim();
          restart(
            new Error(
              `etcd watch on ${options.prefix} was cancelled by the server` +
                ` (${reason === "" ? "no reason given; often a compacted revision" : reason}); listing again`,
              { cause: error },
            ),
          );
        });
        // etcd3 re-establishes a broken watch stream on its own; if it has
        // not within STALL_MS (its member died and it keeps dialling it),
        // start over with a fresh client.
        w.on("disconnected", () => {
          if (w !== watcher) return;
          clearTimeout(stall);
          stall = setTimeout(
            () =>
              restart(
                new Error(
                  `etcd watch on ${options.prefix} lost its connection and did not get it back within ${STALL_MS} ms; listing again`,
                ),
              ),
            STALL_MS,
          );
          stall.unref();
        });
        w.on("connected", () => clearTimeout(stall));
        w.on("end", () => {
          if (w !== watcher) return;
          restart(new Error(`etcd watch on ${options.prefix} ended unexpectedly; listing again`));
        });
      };
      const attempt = (): void => {
        if (stopped) return;
        start().catch((error: unknown) =>
          restart(error instanceof Error ? error : new Error(String(error))),
        );
      };
      attempt();
      return () => {
        stopped = true;
        if (timer !== undefined) clearTimeout(timer);
        clearTimeout(stall);
        const w = watcher;
        watcher = undefined;
        const c = client;
        client = undefined;
        void w?.cancel().catch(() => {});
        c?.close();
      };
    },
  };
}

const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 5_000;
const STALL_MS = 2_000;

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
  /** Passed to the etcd3 client (auth, TLS, dial timeout...). */
  readonly client?: EtcdClientOptions;
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
  const client = new Etcd3(toEtcd3Options(options.client, options.hosts));
  const key = options.prefix + options.id;
  const value = JSON.stringify({
    url: options.url,
    ...(options.metadata !== undefined && { metadata: options.metadata }),
  });
  let closed = false;
  let lease: Lease | undefined;
  let regranting = false;
  let wake: (() => void) | undefined;
  let sleepTimer: NodeJS.Timeout | undefined;

  // One grant: a new lease and the key under it. A lease that is superseded
  // (or that failed to put) is released, and its `lost` event is ignored.
  const grant = async (): Promise<void> => {
    const l = client.lease(options.ttlSeconds ?? 5);
    let registered = false;
    lease = l;
    l.on("lost", (error: Error) => {
      // A lease whose put failed is handled by the caller of grant(); only
      // the loss of a live registration is reported and re-registered.
      if (!registered || l !== lease || closed) return;
      options.onLost?.(error);
      regrantLoop();
    });
    try {
      await l.put(key).value(value);
      registered = true;
    } catch (error) {
      if (lease === l) lease = undefined;
      l.release();
      throw error;
    }
  };
  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      wake = resolve;
      sleepTimer = setTimeout(resolve, ms);
    });
  // At most one re-registration loop runs at a time, with a capped,
  // jittered backoff between attempts, and it stops as soon as the
  // registration is closed.
  const regrantLoop = (): void => {
    if (closed || regranting) return;
    regranting = true;
    void (async () => {
      let delay = RETRY_MIN_MS;
      try {
        while (!closed) {
          try {
            await grant();
            return;
          } catch {
            await sleep(delay / 2 + Math.random() * (delay / 2));
            delay = Math.min(delay * 2, RETRY_MAX_MS);
          }
        }
      } finally {
        regranting = false;
      }
    })();
  };
  try {
    await grant();
  } catch (error) {
    closed = true;
    client.close();
    throw error;
  }
  return {
    async close() {
      closed = true;
      if (sleepTimer !== undefined) clearTimeout(sleepTimer);
      wake?.();
      const l = lease;
      lease = undefined;
      try {
        await l?.revoke();
      } catch {
        // Expires on its own.
      }
      client.close();
    },
  };
}
