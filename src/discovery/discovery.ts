/**
 * One instance of a plugin service, as discovery found it. `id` is stable
 * for the life of the instance (discovery's own key: "host:port", the etcd
 * key, the Kubernetes endpoint), so that the cluster keeps an instance's
 * connection, health and circuit state across updates.
 */
export interface Endpoint {
  readonly id: string;
  /** Base URL of the plugin's Connect server, e.g. "http://10.0.0.7:8080". */
  readonly url: string;
  /** Anything the discovery source knows (zone, pod name, version...). */
  readonly metadata?: Readonly<Record<string, string>>;
}

/**
 * Finds the instances of a plugin service, once (`discover`) and as they
 * change (`watch`). Every source (static list, DNS SRV, Kubernetes
 * EndpointSlices, etcd) implements this, so that the cluster transport does
 * not care where the list comes from.
 *
 * `watch` reports the *whole* current list on every change, not deltas: a
 * consumer that missed an update cannot drift. The first report comes as
 * soon as the source knows the list. Errors go to `onError` and the watch
 * keeps trying; the last good list stays in force meanwhile, so that a
 * discovery outage never ejects working instances.
 */
export interface Discovery {
  /** A human-readable name for messages ("dns-srv _kv._tcp.example"). */
  readonly description: string;
  discover(signal?: AbortSignal): Promise<Endpoint[]>;
  /** Starts watching; returns a function that stops it. */
  watch(onChange: (endpoints: Endpoint[]) => void, onError?: (error: Error) => void): () => void;
}

/** Sorted by id, so that two lists compare equal when they hold the same endpoints. */
export function sortEndpoints(endpoints: Endpoint[]): Endpoint[] {
  return [...endpoints].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

export function sameEndpoints(a: readonly Endpoint[], b: readonly Endpoint[]): boolean {
  return a.length === b.length && a.every((e, i) => e.id === b[i]?.id && e.url === b[i]?.url);
}

/**
 * A fixed list of endpoints, for sidecars and for tests. `update()` replaces
 * the list and notifies watchers, for programs that learn about instances
 * their own way.
 */
export class StaticDiscovery implements Discovery {
  private endpoints: Endpoint[];
  private readonly watchers = new Set<(endpoints: Endpoint[]) => void>();
  readonly description: string;

  constructor(endpoints: readonly (string | Endpoint)[]) {
    this.endpoints = normalize(endpoints);
    this.description = `static list (${this.endpoints.length} endpoints)`;
  }

  discover(): Promise<Endpoint[]> {
    return Promise.resolve([...this.endpoints]);
  }

  watch(onChange: (endpoints: Endpoint[]) => void): () => void {
    this.watchers.add(onChange);
    queueMicrotask(() => {
      if (this.watchers.has(onChange)) onChange([...this.endpoints]);
    });
    return () => this.watchers.delete(onChange);
  }

  update(endpoints: readonly (string | Endpoint)[]): void {
    this.endpoints = normalize(endpoints);
    for (const watcher of this.watchers) watcher([...this.endpoints]);
  }
}

/** `staticEndpoints(["http://127.0.0.1:8081", "http://127.0.0.1:8082"])`. */
export function staticEndpoints(endpoints: readonly (string | Endpoint)[]): StaticDiscovery {
  return new StaticDiscovery(endpoints);
}

function normalize(endpoints: readonly (string | Endpoint)[]): Endpoint[] {
  return sortEndpoints(
    endpoints.map((e) => {
      if (typeof e !== "string") return e;
      const url = new URL(e);
      return { id: url.host, url: url.toString().replace(/\/$/, "") };
    }),
  );
}

/**
 * Polls `discover` every `intervalMs` and reports changes: for sources that
 * cannot push (DNS).
 */
export function pollingWatch(
  discover: (signal: AbortSignal) => Promise<Endpoint[]>,
  intervalMs: number,
  onChange: (endpoints: Endpoint[]) => void,
  onError?: (error: Error) => void,
): () => void {
  const abort = new AbortController();
  let last: Endpoint[] | undefined;
  let timer: NodeJS.Timeout | undefined;
  const tick = async (): Promise<void> => {
    try {
      const endpoints = sortEndpoints(await discover(abort.signal));
      if (abort.signal.aborted) return;
      if (last === undefined || !sameEndpoints(last, endpoints)) {
        last = endpoints;
        onChange(endpoints);
      }
    } catch (error) {
      if (!abort.signal.aborted)
        onError?.(error instanceof Error ? error : new Error(String(error)));
    }
    if (!abort.signal.aborted) timer = setTimeout(() => void tick(), intervalMs);
  };
  void tick();
  return () => {
    abort.abort();
    clearTimeout(timer);
  };
}
