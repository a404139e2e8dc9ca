import { redact } from "./page-security.js";
import type { CallStats, MethodStats } from "../host/call-stats.js";
import type { PluginClientStatus, PluginHealth } from "../host/plugin-client.js";
import type { PluginManager } from "../manager/manager.js";
import type { EndpointStatus } from "../resilience/cluster-options.js";

/** What the status page needs from a PluginClient (any plugin set). */
export interface StatusReporter {
  status(): PluginClientStatus;
  health(timeoutMs?: number): Promise<PluginHealth>;
}

/** A PluginClient to show on the status page, with the stats its interceptor collects. */
export interface WatchedClient {
  readonly name: string;
  readonly client: StatusReporter;
  /** The CallStats whose `interceptor` the client was created with; without it no per-method numbers. */
  readonly stats?: CallStats;
}

/** What a status page shows: a PluginManager's plugins, clients the host made itself, or both. */
export type StatusSource =
  PluginManager | WatchedClient | readonly (PluginManager | WatchedClient)[];

/** One plugin on the status page. */
export interface PluginStatus {
  readonly name: string;
  /** subprocess, remote, in-process, cluster; installed or builtin for a manager's plugin not open. */
  readonly source: string;
  readonly where: string;
  /** The client's or the manager's state (running, idle, backoff, failed, …). */
  readonly state: string;
  /** Starts of this managed plugin so far (1 = first process); undefined outside a manager. */
  readonly generation: number | undefined;
  /** Restarts after crashes (managed plugins). */
  readonly restarts: number | undefined;
  readonly inFlight: number | undefined;
  /** From the plugin's health check; "not running" when nothing runs to ask. */
  readonly health: PluginHealth | "not running";
  /** A cluster's instances with health and circuit state. */
  readonly endpoints: readonly EndpointStatus[];
  readonly methods: readonly MethodStats[];
  /** Why an installed plugin cannot be used (invalid manifest, …). */
  readonly problem?: string;
}

export interface StatusSnapshot {
  readonly time: string;
  readonly plugins: readonly PluginStatus[];
}

/**
 * Reads the status of every plugin now. Health checks run in parallel with
 * `healthTimeoutMs` each; plugins that are not running are not started.
 */
export async function collectStatus(
  source: StatusSource,
  healthTimeoutMs = 1_000,
): Promise<StatusSnapshot> {
  const sources: readonly (PluginManager | WatchedClient)[] = Array.isArray(source)
    ? source
    : [source as PluginManager | WatchedClient];
  const rows = sources.flatMap((s) =>
    "client" in s ? [clientStatus(s, healthTimeoutMs)] : managerStatus(s, healthTimeoutMs),
  );
  // Command lines and URLs may carry secrets; the snapshot never shows them.
  const plugins = (await Promise.all(rows)).map((p) => ({
    ...p,
    where: redact(p.where),
    endpoints: p.endpoints.map((e) => ({ ...e, id: redact(e.id), url: redact(e.url) })),
  }));
  return { time: new Date().toISOString(), plugins };
}

async function clientStatus(w: WatchedClient, healthTimeoutMs: number): Promise<PluginStatus> {
  const status = w.client.status();
  return {
    name: w.name,
    source: status.source,
    where: status.where,
    state: status.state,
    generation: undefined,
    restarts: undefined,
    inFlight: undefined,
    health: status.state === "running" ? await w.client.health(healthTimeoutMs) : "not running",
    endpoints: status.endpoints,
    methods: w.stats?.snapshot() ?? [],
  };
}

function managerStatus(manager: PluginManager, healthTimeoutMs: number): Promise<PluginStatus>[] {
  const opened = manager.opened();
  const rows = manager.list().map(async (entry): Promise<PluginStatus> => {
    const handle = opened.get(entry.name);
    const running = handle?.current;
    const status = running?.status();
    return {
      name: entry.name,
      source: status?.source ?? entry.kind,
      where: status?.where ?? entry.dir ?? "built in",
      state: handle?.state ?? "not open",
      generation: handle?.generation,
      restarts: handle?.restarts,
      inFlight: handle?.inFlight,
      health: running !== undefined ? await running.health(healthTimeoutMs) : "not running",
      endpoints: status?.endpoints ?? [],
      methods: handle?.stats.snapshot() ?? [],
    };
  });
  for (const [dir, problem] of manager.problems) {
    rows.push(
      Promise.resolve({
        name: dir,
        source: "installed",
        where: dir,
        state: "invalid",
        generation: undefined,
        restarts: undefined,
        inFlight: undefined,
        health: "not running",
        endpoints: [],
        methods: [],
        problem: problem.message,
      }),
    );
  }
  return rows;
}
