import { metrics, type Counter, type Histogram, type MeterProvider } from "@opentelemetry/api";
import type { ClusterEvent } from "../resilience/cluster-transport.js";
import type { CircuitState } from "../resilience/circuit-breaker.js";
import type { SupervisorEvent } from "../manager/supervisor.js";
import type { PluginExit } from "../host/launcher.js";
import { SCOPE } from "./call-observer.js";

/** Endpoint states counted by `connect_plugin.cluster.endpoints`. */
export type EndpointState = "healthy" | "unhealthy" | "circuit-open";

/**
 * Plugin lifecycle metrics, fed by the events the manager, the supervisor
 * and the cluster transport already emit (nothing polls):
 *
 * ```ts
 * const lifecycle = new LifecycleMetrics({ meterProvider });
 * new PluginManager({ ..., onEvent: lifecycle.managerListener() });
 * cluster({ ..., onEvent: lifecycle.clusterListener("kv") });
 * ```
 *
 * Labels are plugin and cluster names, states and reasons: never endpoint
 * addresses, which come and go. See docs/observability.md for the table.
 */
export class LifecycleMetrics {
  private readonly up = new Map<string, number>();
  private readonly endpoints = new Map<
    string,
    Map<string, { healthy: boolean; circuit: CircuitState }>
  >();
  private readonly starts: Counter;
  private readonly restarts: Counter;
  private readonly startDuration: Histogram;
  private readonly ejections: Counter;
  private readonly circuitChanges: Counter;
  private readonly retries: Counter;
  private readonly retryRefusals: Counter;
  private readonly rateLimitRefusals: Counter;

  constructor(options: { readonly meterProvider?: MeterProvider } = {}) {
    const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter(SCOPE);
    const counter = (name: string, description: string): Counter =>
      meter.createCounter(`connect_plugin.${name}`, { description });
    meter
      .createObservableGauge("connect_plugin.plugins.up", {
        description: "1 while the plugin runs (started and not exited), else 0.",
      })
      .addCallback((result) => {
        for (const [plugin, value] of this.up) result.observe(value, { plugin });
      });
    meter
      .createObservableGauge("connect_plugin.cluster.endpoints", {
        description: "Instances of a cluster by state.",
      })
      .addCallback((result) => {
        for (const [cluster, states] of this.endpoints) {
          const counts: Record<EndpointState, number> = {
            healthy: 0,
            unhealthy: 0,
            "circuit-open": 0,
          };
          for (const s of states.values()) {
            counts[!s.healthy ? "unhealthy" : s.circuit === "open" ? "circuit-open" : "healthy"]++;
          }
          for (const [state, n] of Object.entries(counts)) result.observe(n, { cluster, state });
        }
      });
    this.starts = counter("plugin.starts", "Plugin starts, by outcome (ok, error).");
    this.restarts = counter(
      "plugin.restarts",
      "Restarts the supervisor scheduled, by reason (crash, start-failed).",
    );
    this.startDuration = meter.createHistogram("connect_plugin.handshake.duration", {
      unit: "s",
      description: "Time from launch to a completed handshake.",
      advice: {
        explicitBucketBoundaries: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      },
    });
    this.ejections = counter(
      "cluster.ejections",
      "Instances taken out of rotation, by reason (health-check, circuit).",
    );
    this.circuitChanges = counter(
      "circuit.state_changes",
      "Circuit breaker transitions, by the state entered.",
    );
    this.retries = counter("cluster.retries", "Calls retried on another attempt, by method.");
    this.retryRefusals = counter(
      "cluster.retry_refusals",
      "Retries refused because the retry budget was spent.",
    );
    this.rateLimitRefusals = counter("rate_limit.refusals", "Calls refused by rateLimit().");
  }

  /** For PluginManager's `onEvent`. */
  managerListener(): (plugin: string, event: SupervisorEvent | { type: "idle-stop" }) => void {
    return (plugin, event) => this.supervisorEvent(plugin, event);
  }

  /** For a Supervisor's `onEvent`. */
  supervisorListener(plugin: string): (event: SupervisorEvent) => void {
    return (event) => this.supervisorEvent(plugin, event);
  }

  /** For a cluster's `onEvent` (`cluster({ onEvent })` or ClusterTransport's). */
  clusterListener(cluster: string): (event: ClusterEvent) => void {
    const endpoints =
      this.endpoints.get(cluster) ?? new Map<string, { healthy: boolean; circuit: CircuitState }>();
    this.endpoints.set(cluster, endpoints);
    return (event) => {
      switch (event.type) {
        case "endpoints": {
          for (const id of endpoints.keys()) if (!event.ids.includes(id)) endpoints.delete(id);
          for (const id of event.ids)
            if (!endpoints.has(id)) endpoints.set(id, { healthy: true, circuit: "closed" });
          break;
        }
        case "healthy":
        case "unhealthy": {
          const state = endpoints.get(event.id);
          const healthy = event.type === "healthy";
          if (state !== undefined && state.healthy && !healthy) {
            this.ejections.add(1, { cluster, reason: "health-check" });
          }
          if (state !== undefined) state.healthy = healthy;
          break;
        }
        case "circuit": {
          const state = endpoints.get(event.id);
          if (state !== undefined) state.circuit = event.state;
          this.circuitChanges.add(1, { cluster, state: event.state });
          if (event.state === "open") this.ejections.add(1, { cluster, reason: "circuit" });
          break;
        }
        case "retry":
          this.retries.add(1, { cluster, method: event.method });
          break;
        case "retry-refused":
          this.retryRefusals.add(1, { cluster, method: event.method });
          break;
        case "discovery-error":
          break;
      }
    };
  }

  /** For rateLimit()'s `onRefused`. */
  readonly rateLimitListener = (): void => this.rateLimitRefusals.add(1);

  /**
   * Starts a PluginClient you manage yourself and records it: the start
   * and its duration, the plugin up until it exits, and an unexpected exit.
   */
  async start(
    plugin: string,
    client: { start(): Promise<void>; onExit(listener: (exit: PluginExit) => void): () => void },
  ): Promise<void> {
    const t0 = performance.now();
    try {
      await client.start();
    } catch (error) {
      this.starts.add(1, { plugin, outcome: "error" });
      throw error;
    }
    this.started(plugin, performance.now() - t0);
    client.onExit(() => this.up.set(plugin, 0));
  }

  private started(plugin: string, ms: number | undefined): void {
    this.starts.add(1, { plugin, outcome: "ok" });
    if (ms !== undefined) this.startDuration.record(ms / 1e3, { plugin });
    this.up.set(plugin, 1);
  }

  private supervisorEvent(plugin: string, event: SupervisorEvent | { type: "idle-stop" }): void {
    switch (event.type) {
      case "started":
        this.started(plugin, event.startMs);
        break;
      case "crashed":
        this.up.set(plugin, 0);
        if (event.restartInMs !== undefined) this.restarts.add(1, { plugin, reason: "crash" });
        break;
      case "restart-failed":
        this.starts.add(1, { plugin, outcome: "error" });
        if (event.restartInMs !== undefined)
          this.restarts.add(1, { plugin, reason: "start-failed" });
        break;
      case "stopped":
      case "idle-stop":
      case "failed":
        this.up.set(plugin, 0);
        break;
    }
  }
}
