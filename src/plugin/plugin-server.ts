import { setMaxListeners } from "node:events";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import {
  HandshakeResponseSchema,
  HealthResponse_Status,
  HealthResponseSchema,
  PluginController,
  PluginInfoSchema,
  ShutdownResponseSchema,
} from "../gen/connectplugin/v1/controller_pb.js";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthCheckResponseSchema,
} from "../gen/grpc/health/v1/health_pb.js";
import {
  byVersion,
  type PluginDefinition,
  type PluginImplementation,
  type PluginImplementations,
} from "../protocol/plugin-set.js";
import { PluginError } from "../protocol/errors.js";
import { negotiateVersion } from "../protocol/versions.js";
import { HostCallbacks } from "../gen/connectplugin/v1/host_callbacks_pb.js";
import { CallTracker } from "./call-tracker.js";
import { HostSessions } from "./host-sessions.js";
import { pluginLog } from "./plugin-log.js";

/** go-plugin's internal services, served to go-plugin hosts beside the plugin's own. */
const GO_PLUGIN_SERVICES = ["plugin.GRPCBroker", "plugin.GRPCController", "plugin.GRPCStdio"];

/** The grpc.health.v1 service name that go-plugin hosts ping. */
export const GO_PLUGIN_HEALTH_SERVICE = "plugin";

export interface PluginServerOptions {
  /**
   * How long a shutdown waits for calls in flight before it cancels them.
   * Defaults to 10 seconds.
   */
  readonly gracePeriodMs?: number;
  /**
   * Where the server's own log lines go. Defaults to JSON lines on stderr,
   * which a host parses; an in-process plugin logs to the host's logger.
   */
  readonly log?: typeof pluginLog;
}

/**
 * The part of a plugin process that does not depend on where it runs: the
 * user's services, the PluginController, grpc.health.v1, call tracking and
 * graceful shutdown. `serve()` puts it behind a socket; `inProcess()` puts it
 * behind an in-memory transport.
 */
export class PluginServer {
  readonly tracker: CallTracker;
  /** The callback tunnels of the hosts that offer services (docs/callbacks.md). */
  readonly hostSessions = new HostSessions();
  private readonly sets: Map<number, PluginImplementations>;
  private readonly services = new Map<string, PluginImplementation>();
  private readonly abort = new AbortController();
  private readonly statusListeners = new Set<() => void>();
  private shuttingDown: Promise<void> | undefined;
  private readonly gracePeriodMs: number;
  private readonly log: typeof pluginLog;

  /**
   * What a Shutdown RPC does once its answer is sent. `serve()` replaces it
   * with a shutdown that also closes the socket and exits the process.
   */
  onShutdownRequest: (reason: string, graceMs?: number) => void = (reason, graceMs) =>
    void this.shutdown(reason, graceMs);

  constructor(definition: PluginDefinition, options: PluginServerOptions = {}) {
    this.sets = byVersion(
      "serve",
      definition.plugins,
      definition.versionedPlugins,
      definition.handshake.protocolVersion,
    );
    for (const [version, set] of this.sets) {
      for (const [name, impl] of Object.entries(set)) {
        this.addService(version, name, impl);
      }
    }
    this.tracker = new CallTracker(
      // go-plugin's own services hold streams open for the connection's
      // life (see goplugin-serve.ts); they are not calls to drain.
      // The same for a host's callback tunnel, which also stays open while
      // the plugin drains, so that the calls in flight can still call back.
      new Set([
        PluginController.typeName,
        Health.typeName,
        HostCallbacks.typeName,
        ...GO_PLUGIN_SERVICES,
      ]),
      this.abort.signal,
    );
    this.gracePeriodMs = options.gracePeriodMs ?? 10_000;
    // Every call's signal listens on the shutdown signal; there may be many.
    setMaxListeners(0, this.abort.signal);
    this.log = options.log ?? pluginLog;
  }

  /** The protocol versions this plugin serves. */
  get versions(): number[] {
    return [...this.sets.keys()];
  }

  /** Options to pass to a Connect router or adapter. */
  get routerOptions(): { interceptors: Interceptor[]; shutdownSignal: AbortSignal } {
    return {
      interceptors: [this.tracker.interceptor, this.hostSessions.interceptor],
      shutdownSignal: this.abort.signal,
    };
  }

  /** Registers every service on a Connect router. */
  readonly routes = (router: ConnectRouter): void => {
    for (const impl of this.services.values()) impl.register(router);
    this.registerController(router);
    this.registerHealth(router);
    const sessions = this.hostSessions;
    router.service(HostCallbacks, {
      tunnel: (requests, ctx) => sessions.tunnel(requests, ctx),
    });
  };

  /**
   * Stops taking new calls, waits up to the grace period (or `graceMs`, if
   * the host asked for less) for calls in flight, then cancels what is left. Resolves when no call is running any more.
   * Calling it again returns the same promise.
   */
  shutdown(reason: string, graceMs = this.gracePeriodMs): Promise<void> {
    this.shuttingDown ??= (async () => {
      const grace = Math.min(graceMs, this.gracePeriodMs);
      this.log("info", "plugin shutting down", {
        reason,
        calls_in_flight: this.tracker.inFlight,
        grace_period_ms: grace,
      });
      this.notifyStatus();
      const left = await this.tracker.drain(grace);
      if (left > 0) {
        this.log("warn", "grace period over; cancelling calls still in flight", { calls: left });
        this.abort.abort(
          new ConnectError("plugin shut down before the call finished", Code.Unavailable),
        );
      }
    })();
    return this.shuttingDown;
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown !== undefined;
  }

  private addService(version: number, name: string, impl: PluginImplementation): void {
    const typeName = impl.service.typeName;
    if (
      typeName === PluginController.typeName ||
      typeName === Health.typeName ||
      typeName === HostCallbacks.typeName
    ) {
      throw new PluginError(
        "invalid-config",
        `serve: plugin "${name}" uses the reserved service ${typeName}`,
      );
    }
    if (/^\d+$/.test(name)) {
      throw new PluginError("invalid-config", `serve: plugin name "${name}" must not be a number`);
    }
    const existing = this.services.get(typeName);
    if (existing !== undefined && existing !== impl) {
      throw new PluginError(
        "invalid-config",
        `serve: service ${typeName} has two different implementations (plugin "${name}" at ` +
          `version ${version}); all versions are served on one router, so give each ` +
          `version's service its own protobuf package, or share one implementation`,
      );
    }
    this.services.set(typeName, impl);
  }

  private registerController(router: ConnectRouter): void {
    router.service(PluginController, {
      handshake: (req) => {
        const supportedVersions = this.versions;
        const version = negotiateVersion(req.protocolVersions, supportedVersions) ?? 0;
        const set = this.sets.get(version) ?? {};
        const missing = req.requestedPlugins.filter((name) => !(name in set));
        if (version === 0) {
          this.log("warn", "host shares no protocol version with this plugin", {
            host_versions: req.protocolVersions,
            plugin_versions: supportedVersions,
          });
        } else if (missing.length > 0) {
          this.log("warn", "host requested plugins this process does not provide", { missing });
        }
        return create(HandshakeResponseSchema, {
          protocolVersion: version,
          supportedVersions,
          availablePlugins: Object.entries(set).map(([name, impl]) =>
            create(PluginInfoSchema, {
              name,
              version: impl.version,
              capabilities: [...impl.capabilities],
              service: impl.service.typeName,
            }),
          ),
        });
      },
      health: () =>
        create(HealthResponseSchema, {
          status: this.isShuttingDown
            ? HealthResponse_Status.SHUTTING_DOWN
            : HealthResponse_Status.SERVING,
          callsInFlight: this.tracker.inFlight,
        }),
      shutdown: (req) => {
        const reason = req.reason || "host requested shutdown";
        // Answer first; the shutdown runs after this response is on its way.
        const graceMs = req.gracePeriodMs > 0 ? req.gracePeriodMs : undefined;
        setImmediate(() => this.onShutdownRequest(reason, graceMs));
        return create(ShutdownResponseSchema, {});
      },
    });
  }

  private registerHealth(router: ConnectRouter): void {
    const statusOf = (service: string): ServingStatus => {
      const known =
        service === "" ||
        service === GO_PLUGIN_HEALTH_SERVICE ||
        service === PluginController.typeName ||
        this.services.has(service);
      if (!known) return ServingStatus.SERVICE_UNKNOWN;
      return this.isShuttingDown ? ServingStatus.NOT_SERVING : ServingStatus.SERVING;
    };
    router.service(Health, {
      check: (req) => {
        const status = statusOf(req.service);
        if (status === ServingStatus.SERVICE_UNKNOWN) {
          throw new ConnectError(`unknown service ${JSON.stringify(req.service)}`, Code.NotFound);
        }
        return create(HealthCheckResponseSchema, { status });
      },
      // The health spec: Watch on an unknown service answers SERVICE_UNKNOWN
      // and stays open (a plugin's services are fixed, so it stays unknown
      // until the caller cancels or the plugin stops).
      watch: async function* (this: void, req, ctx) {
        let last: ServingStatus | undefined;
        while (!ctx.signal.aborted) {
          const status = statusOf(req.service);
          if (status !== last) {
            last = status;
            yield create(HealthCheckResponseSchema, { status });
          }
          await waitForChange(ctx.signal);
        }
      },
    });
    const waitForChange = (signal: AbortSignal): Promise<void> =>
      new Promise((resolve) => {
        const done = (): void => {
          this.statusListeners.delete(done);
          signal.removeEventListener("abort", done);
          resolve();
        };
        this.statusListeners.add(done);
        signal.addEventListener("abort", done, { once: true });
      });
  }

  private notifyStatus(): void {
    for (const listener of [...this.statusListeners]) listener();
  }
}
