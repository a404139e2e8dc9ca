import type { DescService } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import {
  HealthResponse_Status,
  PluginController,
  type HandshakeResponse,
} from "../gen/connectplugin/v1/controller_pb.js";
import { PluginError } from "../protocol/errors.js";
import type {
  HandshakeConfig,
  PluginImplementation,
  PluginSet,
  VersionedPluginSets,
} from "../protocol/plugin-set.js";
import { formatVersions } from "../protocol/versions.js";
import { hostRecord, type Logger } from "../logging/logger.js";
import type { ClientTransport } from "../transport/client-transport.js";
import type { PluginExit, PluginProcess } from "./launcher.js";
import { HostClient, quotedList } from "./host-client.js";
import { checkRemoteSource, type PluginSource } from "./sources.js";
import { tlsHint, withHint } from "../security/tls-hint.js";
import type { ConnectContext, Connected } from "./connectors/connector.js";
import { connectReattach } from "./connectors/reattach.js";
import { connectCluster } from "./connectors/cluster.js";
import { connectInProcess } from "./connectors/in-process.js";
import { connectRemote } from "./connectors/remote.js";
import { connectSubprocess } from "./connectors/subprocess.js";
import { ClusterTransport } from "../resilience/cluster-transport.js";
import { HostServiceSession } from "./host-services.js";
import type { EndpointStatus } from "../resilience/cluster-options.js";
import { withMaskedCredentials } from "../transport/url-credentials.js";

interface CommonOptions {
  /** The cookie and version shared with the plugin. */
  readonly handshake: HandshakeConfig;
  /** Where the plugin runs: `subprocess(...)`, `remote(...)` or `inProcess(...)`. */
  readonly source: PluginSource;
  /** How long start() may take, handshake included. Defaults to 60 s (go-plugin's). */
  readonly startTimeoutMs?: number;
  /**
   * How long close() lets calls in flight finish: a subprocess gets this long
   * to exit after the Shutdown call before its process group is killed (the
   * plugin is told, and drains for the smaller of this and its own grace
   * period). Defaults to 2 s (go-plugin's).
   */
  readonly gracePeriodMs?: number;
  /** Receives the plugin's stderr and stdout lines, and lifecycle events. */
  readonly logger?: Logger;
  /** Interceptors for every call into the plugin (auth, tracing, ...). */
  readonly interceptors?: readonly Interceptor[];
  /**
   * Services this host offers its plugin, which the plugin's handlers call
   * back with `hostClient(ctx, Service)`:
   * `hostServices: [implement(Progress, { report: ... })]`. Reached over a
   * tunnel the host opens (so it works through proxies and from remote
   * plugins), scoped to this client's session (docs/callbacks.md).
   * Default: none.
   */
  readonly hostServices?: readonly PluginImplementation[];
}

/**
 * Options for a PluginClient: the plugins it can dispense, either at one
 * protocol version (`plugins`, at `handshake.protocolVersion`, default 1) or
 * at several (`versionedPlugins`, like go-plugin's VersionedPlugins).
 */
export type PluginClientOptions<
  P extends PluginSet,
  V extends VersionedPluginSets,
> = CommonOptions &
  (
    | { readonly plugins: P; readonly versionedPlugins?: undefined }
    | { readonly versionedPlugins: V; readonly plugins?: undefined }
  );

/** The state of a plugin as its health check reports it. */
export type PluginHealth = "serving" | "not-serving" | "shutting-down" | "unknown";

/** What the plugin said about one of its plugins in the handshake. */
export interface PluginInfo {
  readonly name: string;
  readonly version: string;
  readonly capabilities: readonly string[];
  /** Fully-qualified protobuf service name. */
  readonly service: string;
}

export type { DispensedClient, PluginName, ServiceFor } from "./host-client.js";

/** What PluginClient.status() reports. */
export interface PluginClientStatus {
  readonly source: PluginSource["kind"];
  /** The command line (with its pid while it runs), URL (its password, or a user name given without one, as `***`), "(in process)" or "cluster of …". */
  readonly where: string;
  readonly state: "not started" | "starting" | "running" | "closed";
  /** A cluster's instances; empty for other sources. */
  readonly endpoints: readonly EndpointStatus[];
}

type Running = Connected & {
  readonly version: number;
  readonly available: ReadonlyMap<string, PluginInfo>;
};

/**
 * The host's handle on one plugin, wherever it runs.
 *
 * ```ts
 * const client = new PluginClient({ handshake, plugins: { kv: KV }, source: subprocess("./kv-plugin") });
 * await client.start();
 * const kv = client.dispense("kv");          // Client<typeof KV>
 * await kv.put({ key: "a", value: bytes });
 * await client.close();
 * ```
 *
 * The source decides where the plugin runs; nothing else changes. start()
 * connects (and for a subprocess, launches and waits for the handshake
 * line), then runs the Handshake RPC to agree on a protocol version and learn
 * which plugins are available. dispense() hands out typed Connect clients.
 * close() asks a subprocess to shut down gracefully and kills it after the
 * grace period; for a remote plugin it only closes the connection, since a
 * shared service is not the host's to stop.
 */
export class PluginClient<
  P extends PluginSet = Record<never, DescService>,
  V extends VersionedPluginSets = Record<never, PluginSet>,
> extends HostClient<P, V, Running> {
  private readonly gracePeriodMs: number;
  private readonly startTimeoutMs: number;
  /** This client's callback session, while it runs (with hostServices). */
  private callbacks: HostServiceSession | undefined;

  constructor(private readonly options: PluginClientOptions<P, V>) {
    if (options.source.kind === "remote") checkRemoteSource(options.source);
    if ((options.hostServices?.length ?? 0) > 0) checkCallbackSource(options.source);
    const name = describeSource(options.source);
    // In messages, a command line is quoted; a URL stands as it is.
    super(
      "PluginClient",
      options,
      name,
      options.source.kind === "subprocess" ? JSON.stringify(name) : name,
    );
    this.gracePeriodMs = options.gracePeriodMs ?? 2_000;
    this.startTimeoutMs = options.startTimeoutMs ?? 60_000;
  }

  /** The protocol version agreed in the handshake. */
  get protocolVersion(): number {
    return this.mustRun().version;
  }

  /** The plugins the plugin provides at the agreed version. */
  get availablePlugins(): PluginInfo[] {
    return [...this.mustRun().available.values()];
  }

  /**
   * Where the plugin runs and in what state, without a call: for status
   * pages. A cluster lists its instances with health and circuit state.
   */
  status(): PluginClientStatus {
    const transport = this.life.running?.transport.transport;
    const process = this.life.process;
    const pid = process?.exit === undefined ? process?.pid : undefined;
    return {
      source: this.options.source.kind,
      where: pid !== undefined ? `pid ${pid}: ${this.name}` : this.name,
      state: this.life.state,
      endpoints: transport instanceof ClusterTransport ? transport.status() : [],
    };
  }

  /** The plugin must have announced `name` with this service in the handshake. */
  protected override checkDispensable(running: Running, name: string, service: DescService): void {
    const lacking = this.lacking(running.version, running.available, name, service);
    if (lacking !== undefined) throw lacking;
  }

  /**
   * Why the plugin cannot serve `name` (a host plugin at `version`), or
   * undefined when it can: it does not provide it, or provides another service.
   */
  private lacking(
    version: number,
    available: ReadonlyMap<string, PluginInfo>,
    name: string,
    service: DescService,
  ): PluginError | undefined {
    const info = available.get(name);
    if (info === undefined) {
      return new PluginError(
        "unknown-plugin",
        `plugin ${this.label} does not provide "${name}" at protocol version ${version} ` +
          `(it provides: ${quotedList([...available.keys()])})`,
      );
    }
    if (info.service !== "" && info.service !== service.typeName) {
      return new PluginError(
        "unknown-plugin",
        `plugin ${this.label} serves "${name}" as ${info.service}, but this host expects ` +
          `${service.typeName}`,
      );
    }
    return undefined;
  }

  /** Asks the plugin for its health. Never throws: errors read as "unknown". */
  async health(timeoutMs = 5_000): Promise<PluginHealth> {
    const running = this.life.running;
    if (running === undefined) return "unknown";
    try {
      const res = await createClient(PluginController, running.transport.transport).health(
        {},
        { timeoutMs },
      );
      switch (res.status) {
        case HealthResponse_Status.SERVING:
          return "serving";
        case HealthResponse_Status.NOT_SERVING:
          return "not-serving";
        case HealthResponse_Status.SHUTTING_DOWN:
          return "shutting-down";
        default:
          return "unknown";
      }
    } catch {
      return "unknown";
    }
  }

  private requestedNames(): string[] {
    const names = new Set<string>();
    for (const set of this.sets.values()) for (const name of Object.keys(set)) names.add(name);
    return [...names];
  }

  /** Reaches the plugin through the connector for its kind of source. */
  private connect(): Promise<Connected> {
    const source = this.options.source;
    const callbacks = this.callbacks;
    const context: ConnectContext = {
      handshake: this.options.handshake,
      hostVersions: this.hostVersions,
      pluginSets: this.sets,
      // The session header goes on after the user's interceptors.
      interceptors: [
        ...(this.options.interceptors ?? []),
        ...(this.callbacks !== undefined ? [this.callbacks.interceptor] : []),
      ],
      name: this.name,
      label: this.label,
      gracePeriodMs: this.gracePeriodMs,
      startTimeoutMs: this.startTimeoutMs,
      logger: this.logger,
      signal: this.life.startAbort.signal,
      launched: (proc) => (this.life.process = proc),
      exited: (exit, transport) => this.handleExit(exit, transport),
      ...(callbacks !== undefined && {
        tunnel: (transport, where) => {
          const kept = callbacks.keep(transport, where);
          return () => kept.stop();
        },
      }),
    };
    switch (source.kind) {
      case "subprocess":
        return connectSubprocess(source, context);
      case "remote":
        return connectRemote(source, context);
      case "in-process":
        return connectInProcess(source, context);
      case "cluster":
        return connectCluster(source, context);
      case "reattach":
        return connectReattach(source, context);
    }
  }

  protected async doStart(): Promise<void> {
    const deadline = Date.now() + this.startTimeoutMs;
    const services = this.options.hostServices ?? [];
    this.callbacks =
      services.length > 0 ? new HostServiceSession(services, this.logger, this.name) : undefined;
    let parts: Connected;
    try {
      parts = await this.connect();
    } catch (error) {
      void this.callbacks?.close();
      throw error;
    }
    try {
      const handshake = await this.handshake(parts.transport.transport, parts.process, deadline);
      this.life.checkNotClosedWhileStarting();
      const version = handshake.protocolVersion;
      const available = new Map(
        handshake.availablePlugins.map((p) => [
          p.name,
          { name: p.name, version: p.version, capabilities: p.capabilities, service: p.service },
        ]),
      );
      // Every plugin the host asks for at the agreed version must be there:
      // a start that succeeds promises that dispense() will too.
      for (const [name, service] of Object.entries(this.sets.get(version) ?? {})) {
        const lacking = this.lacking(version, available, name, service);
        if (lacking !== undefined) throw lacking;
      }
      await this.openCallbacks(parts, deadline);
      this.life.running = { ...parts, version, available };
    } catch (error) {
      void this.callbacks?.close();
      parts.guard.close();
      parts.transport.close();
      await parts.process?.kill(2_000);
      // An in-process plugin's server is stopped like a process is killed.
      await parts.server?.shutdown("the host could not start the plugin", 0);
      throw error;
    }
  }

  /**
   * With host services: gives an in-process plugin the host's services, or
   * opens the callback tunnel and waits until the plugin has it, so that
   * the first call can already call back. (A cluster opens one per
   * instance as it connects; see connect().)
   */
  private async openCallbacks(parts: Connected, deadline: number): Promise<void> {
    const callbacks = this.callbacks;
    if (callbacks === undefined || this.options.source.kind === "cluster") return;
    if (parts.server !== undefined) {
      const sessions = parts.server.hostSessions;
      callbacks.attachDirect((session, transport) => sessions.attach(session, transport));
      return;
    }
    const kept = callbacks.keep(parts.transport.transport, this.label);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        kept.ready,
        new Promise((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new PluginError(
                  "handshake-timeout",
                  `plugin ${this.label} did not take the host's callback tunnel before the ` +
                    `start timeout`,
                ),
              ),
            Math.max(1, deadline - Date.now()),
          );
        }),
      ]);
    } catch (error) {
      if (error instanceof PluginError) throw error;
      throw new PluginError(
        ConnectError.from(error).code === Code.Unavailable ? "unreachable" : "not-a-plugin-server",
        `plugin ${this.label}: ${ConnectError.from(error).message}`,
        { cause: error },
      );
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Runs the Handshake RPC and checks its answer against the host's versions
   * (and, for a subprocess, against the version in its handshake line).
   */
  private async handshake(
    transport: Transport,
    proc: PluginProcess | undefined,
    deadline: number,
  ): Promise<HandshakeResponse> {
    const controller = createClient(PluginController, transport);
    const hostVersions = this.hostVersions;
    let res: HandshakeResponse;
    try {
      res = await controller.handshake(
        { protocolVersions: hostVersions, requestedPlugins: this.requestedNames() },
        { timeoutMs: Math.max(1, deadline - Date.now()), signal: this.life.startAbort.signal },
      );
    } catch (error) {
      const ce = ConnectError.from(error);
      if (this.life.startAbort.signal.aborted) {
        throw new PluginError("not-running", `plugin ${this.label} was closed while starting`, {
          cause: error,
        });
      }
      if (ce.code === Code.Unimplemented || ce.code === Code.NotFound) {
        throw new PluginError(
          "not-a-plugin-server",
          `${this.label} does not speak the connect-plugin protocol ` +
            `(connectplugin.v1.PluginController/Handshake: ${ce.rawMessage})` +
            (proc?.handshakeLine.protocol === "grpc"
              ? "; a go-plugin plugin is used with GoPluginClient (docs/go-plugin.md)"
              : ""),
          { cause: error },
        );
      }
      if (ce.code === Code.DeadlineExceeded) {
        throw new PluginError(
          "handshake-timeout",
          `plugin ${this.label} did not answer the Handshake call before the start timeout`,
          { cause: error },
        );
      }
      if (proc !== undefined) {
        throw new PluginError(
          "exited-before-handshake",
          `could not complete the handshake with plugin ${this.label}: ${ce.message}`,
          { cause: error, stderrTail: proc.stderrTail },
        );
      }
      const source = this.options.source;
      const hint = source.kind === "remote" ? tlsHint(error, source.url) : undefined;
      throw new PluginError(
        ce.code === Code.Unavailable || hint !== undefined ? "unreachable" : "not-a-plugin-server",
        `could not complete the handshake with ${this.label}: ${withHint(ce.message, hint)}`,
        { cause: error },
      );
    }
    const announced = proc?.handshakeLine.protocolVersion;
    if (
      res.protocolVersion === 0 ||
      (announced !== undefined && !hostVersions.includes(announced))
    ) {
      const pluginVersions =
        res.supportedVersions.length > 0 ? res.supportedVersions : [announced ?? 0];
      throw new PluginError(
        "version-mismatch",
        `protocol version mismatch with plugin ${this.label}: the plugin speaks ` +
          `${formatVersions(pluginVersions)}, this host speaks ${formatVersions(hostVersions)}`,
      );
    }
    if (announced !== undefined && announced !== res.protocolVersion) {
      throw new PluginError(
        "malformed-handshake",
        `plugin ${this.label} announced protocol version ${announced} in its handshake line ` +
          `but negotiated ${res.protocolVersion} in the Handshake call`,
      );
    }
    return res;
  }

  private handleExit(exit: PluginExit, transport: ClientTransport): void {
    void this.callbacks?.close();
    transport.close(new ConnectError(`plugin ${this.label} ${exit.description}`, Code.Unavailable));
    if (!exit.expected) {
      this.logger.log(
        hostRecord(this.name, "error", `plugin ${exit.description} unexpectedly`, {
          code: exit.code,
          signal: exit.signal,
        }),
      );
    }
    this.life.notifyExit(exit, this.logger, this.name);
  }

  protected async doClose(): Promise<void> {
    const running = this.life.running;
    this.life.running = undefined;
    if (running === undefined) return;
    const { process: proc, server, guard, transport } = running;
    if (proc !== undefined) {
      proc.markStopping();
      if (proc.exit === undefined) {
        try {
          await createClient(PluginController, transport.transport).shutdown(
            { reason: "host closed the plugin client", gracePeriodMs: this.gracePeriodMs },
            { timeoutMs: this.gracePeriodMs },
          );
        } catch {
          // Unreachable or already gone: the kill below settles it.
        }
      }
      // An exit kills the rest of the group by itself (see PluginProcess).
      if ((await proc.exitWithin(this.gracePeriodMs)) === undefined) await proc.kill();
    } else if (server !== undefined) {
      await server.shutdown("host closed the plugin client");
    } else {
      await guard.drain(this.gracePeriodMs);
    }
    // The tunnel first: a callback still pending fails as the host's going
    // away (Unavailable), not as a broken call.
    await this.callbacks?.close();
    guard.close();
    transport.close(new ConnectError(`plugin ${this.label} was closed`, Code.Unavailable));
  }
}

/** Host services need a connection that carries a bidi stream, or none at all. */
function checkCallbackSource(source: PluginSource): void {
  if (source.kind === "remote" && source.httpVersion === "1.1") {
    throw new PluginError(
      "invalid-config",
      `hostServices need HTTP/2 to the plugin at ${describeSource(source)}: the callback tunnel ` +
        `is a bidirectional stream, which HTTP/1.1 cannot carry (remove httpVersion "1.1")`,
    );
  }
}

function describeSource(source: PluginSource): string {
  switch (source.kind) {
    case "subprocess":
      return [source.command, ...source.args].join(" ");
    case "remote": {
      // Credentials in a URL must not reach messages, logs or the status page.
      return withMaskedCredentials(new URL(source.url).href);
    }
    case "in-process":
      return "(in process)";
    case "cluster":
      return `cluster of ${source.discovery.description}`;
    case "reattach":
      return `pid ${source.config.Pid} at ${source.config.Addr.String} (attached)`;
  }
}
