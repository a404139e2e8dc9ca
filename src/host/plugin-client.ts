import { randomBytes } from "node:crypto";
import type { DescService } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  type Client,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import {
  HealthResponse_Status,
  PluginController,
  type HandshakeResponse,
} from "../gen/connectplugin/v1/controller_pb.js";
import { PluginError } from "../protocol/errors.js";
import {
  byVersion,
  type HandshakeConfig,
  type PluginSet,
  type VersionedPluginSets,
} from "../protocol/plugin-set.js";
import { formatVersions } from "../protocol/versions.js";
import { hostRecord, notifyListeners, stderrLogger, type Logger } from "../logging/logger.js";
import {
  createInProcessTransport,
  createSocketTransport,
  createUrlTransport,
  type ClientTransport,
} from "../transport/client-transport.js";
import { createDirectTransport } from "../transport/direct.js";
import { createFramedTransport } from "../transport/framed/client.js";
import { PluginServer } from "../plugin/plugin-server.js";
import { PluginProcess, type PluginExit } from "./launcher.js";
import { CallGuard } from "./call-guard.js";
import { autoMtlsForLaunch } from "./auto-mtls-launch.js";
import { createGoPluginTransport, type PeerTls } from "../transport/goplugin-dial.js";
import { checkRemoteSource, type PluginSource } from "./sources.js";
import { connectCluster } from "./cluster-connect.js";
import { ClusterTransport, type EndpointStatus } from "../resilience/cluster-transport.js";

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

/** Plugin names that a host can dispense. */
export type PluginName<P extends PluginSet, V extends VersionedPluginSets> =
  Extract<keyof P, string> | { [v in keyof V]: Extract<keyof V[v], string> }[keyof V];

/** The service(s) a name stands for, across the host's versions. */
export type ServiceFor<P, V, K> =
  | (K extends keyof P ? P[K] : never)
  | { [v in keyof V]: K extends keyof V[v] ? V[v][K] : never }[keyof V];

/**
 * The typed client that dispense() returns: a Connect client for the
 * plugin's service. With several protocol versions it is a union of their
 * clients; use dispenseAt(version, name) for the client of one version.
 */
export type DispensedClient<S> = S extends DescService ? Client<S> : never;

/** What PluginClient.status() reports. */
export interface PluginClientStatus {
  readonly source: PluginSource["kind"];
  /** The command line (with its pid while it runs), URL, "(in process)" or "cluster of …". */
  readonly where: string;
  readonly state: "not started" | "starting" | "running" | "closed";
  /** A cluster's instances; empty for other sources. */
  readonly endpoints: readonly EndpointStatus[];
}

type Running = {
  readonly transport: ClientTransport;
  readonly guard: CallGuard;
  readonly version: number;
  readonly available: ReadonlyMap<string, PluginInfo>;
  readonly process: PluginProcess | undefined;
  readonly server: PluginServer | undefined;
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
> {
  private readonly sets: Map<number, PluginSet>;
  private readonly logger: Logger;
  /** The plugin's name in log records: the command line or the URL. */
  private readonly name: string;
  /** The plugin's name in messages: the command line quoted, or the URL. */
  private readonly label: string;
  private readonly gracePeriodMs: number;
  private readonly startTimeoutMs: number;
  private starting: Promise<void> | undefined;
  /** Fired by close() to abandon a start in progress. */
  private readonly startAbort = new AbortController();
  private running: Running | undefined;
  /** The subprocess, kept after close() so that `exit` stays readable. */
  private process: PluginProcess | undefined;
  private closing: Promise<void> | undefined;
  private readonly clients = new Map<string, unknown>();
  private readonly exitListeners = new Set<(exit: PluginExit) => void>();

  constructor(private readonly options: PluginClientOptions<P, V>) {
    this.sets = byVersion(
      "PluginClient",
      options.plugins,
      options.versionedPlugins,
      options.handshake.protocolVersion,
    );
    if (options.source.kind === "remote") checkRemoteSource(options.source);
    this.logger = options.logger ?? stderrLogger;
    this.name = describeSource(options.source);
    this.label = options.source.kind === "subprocess" ? JSON.stringify(this.name) : this.name;
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

  /** The subprocess' pid, or undefined for remote and in-process plugins. */
  get pid(): number | undefined {
    return this.process?.pid;
  }

  /**
   * Where the plugin runs and in what state, without a call: for status
   * pages. A cluster lists its instances with health and circuit state.
   */
  status(): PluginClientStatus {
    const transport = this.running?.transport.transport;
    const pid = this.process?.exit === undefined ? this.process?.pid : undefined;
    return {
      source: this.options.source.kind,
      where: pid !== undefined ? `pid ${pid}: ${this.name}` : this.name,
      state:
        this.closing !== undefined
          ? "closed"
          : this.running !== undefined
            ? "running"
            : this.starting !== undefined
              ? "starting"
              : "not started",
      endpoints: transport instanceof ClusterTransport ? transport.status() : [],
    };
  }

  /** How the subprocess ended, once it has. */
  get exit(): PluginExit | undefined {
    return this.process?.exit;
  }

  /**
   * Calls `listener` when the plugin subprocess exits, whether the host
   * closed it (`exit.expected`) or it crashed. Returns an unsubscribe function.
   * Only subprocesses exit: for remote and in-process plugins it never fires
   * (a remote plugin's failures show up as Unavailable calls and in health()).
   */
  onExit(listener: (exit: PluginExit) => void): () => void {
    this.exitListeners.add(listener);
    return () => this.exitListeners.delete(listener);
  }

  /**
   * Launches or connects to the plugin and completes the handshake.
   * Concurrent and repeated calls share one start.
   */
  start(): Promise<void> {
    if (this.closing !== undefined) {
      return Promise.reject(new PluginError("not-running", `plugin ${this.label} is closed`));
    }
    this.starting ??= this.doStart();
    return this.starting;
  }

  /**
   * Returns the typed client for a named plugin. The plugin must have been
   * started, and must provide the name at the agreed protocol version.
   */
  dispense<K extends PluginName<P, V>>(name: K): DispensedClient<ServiceFor<P, V, K>> {
    return this.clientFor(name) as DispensedClient<ServiceFor<P, V, K>>;
  }

  /**
   * Like dispense(), typed for one protocol version of a `versionedPlugins`
   * host. Throws a PluginError when the agreed version is another one.
   */
  dispenseAt<Ver extends keyof V & number, K extends Extract<keyof V[Ver], string>>(
    version: Ver,
    name: K,
  ): DispensedClient<V[Ver][K]> {
    const agreed = this.mustRun().version;
    if (agreed !== version) {
      throw new PluginError(
        "unknown-plugin",
        `cannot dispense "${name}" at protocol version ${version}: plugin ${this.label} agreed on version ${agreed}`,
      );
    }
    return this.clientFor(name) as DispensedClient<V[Ver][K]>;
  }

  private clientFor(name: string): unknown {
    const running = this.mustRun();
    const cached = this.clients.get(name);
    if (cached !== undefined) return cached;
    const hostSet = this.sets.get(running.version) ?? {};
    const service = hostSet[name];
    if (service === undefined) {
      throw new PluginError(
        "unknown-plugin",
        `this host has no plugin named "${name}" at protocol version ${running.version} ` +
          `(it knows: ${list(Object.keys(hostSet))})`,
      );
    }
    const info = running.available.get(name);
    if (info === undefined) {
      throw new PluginError(
        "unknown-plugin",
        `plugin ${this.label} does not provide "${name}" at protocol version ${running.version} ` +
          `(it provides: ${list([...running.available.keys()])})`,
      );
    }
    if (info.service !== "" && info.service !== service.typeName) {
      throw new PluginError(
        "unknown-plugin",
        `plugin ${this.label} serves "${name}" as ${info.service}, but this host expects ` +
          `${service.typeName}`,
      );
    }
    const client = createClient(service, running.transport.transport);
    this.clients.set(name, client);
    return client;
  }

  /** Asks the plugin for its health. Never throws: errors read as "unknown". */
  async health(timeoutMs = 5_000): Promise<PluginHealth> {
    const running = this.running;
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

  /**
   * Stops using the plugin, letting calls in flight finish within the grace
   * period; those still running after it fail with Code.Unavailable. A
   * subprocess is asked to shut down and its whole process group is killed
   * if it has not exited by then. A remote plugin is only disconnected: a
   * shared service is not one host's to stop. Safe to call more than once,
   * and while starting (the start is abandoned).
   */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private mustRun(): Running {
    if (this.running === undefined) {
      throw new PluginError(
        "not-running",
        this.closing !== undefined
          ? `plugin ${this.label} is closed`
          : `plugin ${this.label} is not started; await client.start() first`,
      );
    }
    return this.running;
  }

  private get hostVersions(): number[] {
    return [...this.sets.keys()];
  }

  private requestedNames(): string[] {
    const names = new Set<string>();
    for (const set of this.sets.values()) for (const name of Object.keys(set)) names.add(name);
    return [...names];
  }

  /** Starts the plugin (subprocess) or builds the server (in process), and a transport to it. */
  private async connect(): Promise<Omit<Running, "version" | "available">> {
    const source = this.options.source;
    const interceptors = [...(this.options.interceptors ?? [])];
    switch (source.kind) {
      case "subprocess": {
        const launchToken = randomBytes(32).toString("base64url");
        const mtls = autoMtlsForLaunch(source.autoMTLS);
        const proc = await PluginProcess.launch({
          command: source.command,
          args: source.args,
          env: { ...source.env, ...mtls.env },
          ...(source.cwd !== undefined && { cwd: source.cwd }),
          handshake: this.options.handshake,
          hostVersions: this.hostVersions,
          // Launching is the first step of start(): the whole timeout is left.
          startTimeoutMs: this.startTimeoutMs,
          logger: this.logger,
          name: this.name,
          label: this.label,
          launchToken,
          signal: this.startAbort.signal,
          ...(source.transports !== undefined && { transports: source.transports }),
        });
        this.process = proc;
        const line = proc.handshakeLine;
        if (line.protocol !== "connect" && line.protocol !== "grpc" && line.protocol !== "framed") {
          await proc.kill();
          throw new PluginError(
            "unsupported-protocol",
            `plugin ${this.label} speaks the unsupported protocol "${line.protocol}"; ` +
              `connect-plugin hosts speak "connect" and "grpc" (go-plugin's net/rpc is not supported)`,
          );
        }
        let tls: PeerTls | undefined;
        try {
          tls = mtls.peer(line, this.label);
        } catch (error) {
          await proc.kill();
          throw error;
        }
        // The guard asks the transport (created after it) whether its
        // connection broke; the closure only runs once calls are made.
        // The framed transport fails its calls on close itself (see CallGuard).
        const guard: CallGuard = new CallGuard(
          this.label,
          () => transport.isBroken(),
          proc,
          true,
          line.protocol !== "framed",
        );
        // User interceptors run first, so that the guard judges only errors
        // from the wire; the token goes on last, so that they never see it.
        const wireInterceptors = [...interceptors, guard.interceptor, bearerToken(launchToken)];
        const protocol = line.protocol === "grpc" ? ("grpc" as const) : ("connect" as const);
        const transport: ClientTransport =
          line.protocol === "framed"
            ? createFramedTransport(line, {
                interceptors: wireInterceptors,
                ...(tls !== undefined && {
                  tls: { ca: tls.peerCertPem, cert: tls.certPem, key: tls.keyPem },
                }),
              })
            : tls === undefined
              ? createSocketTransport(line, { protocol, interceptors: wireInterceptors })
              : createGoPluginTransport(line, { protocol, interceptors: wireInterceptors, tls });
        proc.onExit((exit) => this.handleExit(exit, transport));
        return { transport, guard, process: proc, server: undefined };
      }
      case "remote": {
        const guard = new CallGuard(this.label, () => remoteTransport.isBroken());
        const remoteTransport = createUrlTransport(source.url, {
          protocol: source.protocol,
          httpVersion: source.httpVersion,
          interceptors: [...interceptors, guard.interceptor],
          ...(source.tls !== undefined && { tls: source.tls }),
        });
        return { transport: remoteTransport, guard, process: undefined, server: undefined };
      }
      case "in-process": {
        const server = new PluginServer(source.definition, {
          gracePeriodMs: this.gracePeriodMs,
          log: (level, message, fields = {}) =>
            this.logger.log({
              level,
              message,
              plugin: this.name,
              source: "in-process",
              fields,
              time: new Date(),
            }),
        });
        // Nothing between host and plugin can break in process: every error
        // is the plugin's own, so the guard never rewrites one.
        const guard = new CallGuard(
          this.label,
          () => false,
          undefined,
          false,
          source.mode === "serialize",
        );
        const transport = (
          source.mode === "serialize" ? createInProcessTransport : createDirectTransport
        )(server, { interceptors: [...interceptors, guard.interceptor] });
        return { transport, guard, process: undefined, server };
      }
      case "cluster":
        return connectCluster(source, interceptors, this.label, this.gracePeriodMs, this.logger);
    }
  }

  private async doStart(): Promise<void> {
    const deadline = Date.now() + this.startTimeoutMs;
    const parts = await this.connect();
    try {
      const handshake = await this.handshake(parts.transport.transport, parts.process, deadline);
      if (this.closing !== undefined) {
        throw new PluginError("not-running", `plugin ${this.label} was closed while starting`);
      }
      this.running = {
        ...parts,
        version: handshake.protocolVersion,
        available: new Map(
          handshake.availablePlugins.map((p) => [
            p.name,
            { name: p.name, version: p.version, capabilities: p.capabilities, service: p.service },
          ]),
        ),
      };
    } catch (error) {
      parts.guard.close();
      parts.transport.close();
      await parts.process?.kill(2_000);
      throw error;
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
        { timeoutMs: Math.max(1, deadline - Date.now()), signal: this.startAbort.signal },
      );
    } catch (error) {
      const ce = ConnectError.from(error);
      if (this.startAbort.signal.aborted) {
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
      throw new PluginError(
        ce.code === Code.Unavailable ? "unreachable" : "not-a-plugin-server",
        `could not complete the handshake with ${this.label}: ${ce.message}`,
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
    transport.close(new ConnectError(`plugin ${this.label} ${exit.description}`, Code.Unavailable));
    if (!exit.expected) {
      this.logger.log(
        hostRecord(this.name, "error", `plugin ${exit.description} unexpectedly`, {
          code: exit.code,
          signal: exit.signal,
        }),
      );
    }
    notifyListeners(this.exitListeners, exit, this.logger, this.name);
  }

  private async doClose(): Promise<void> {
    this.startAbort.abort();
    await this.starting?.catch(() => {});
    const running = this.running;
    this.running = undefined;
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
    guard.close();
    transport.close(new ConnectError(`plugin ${this.label} was closed`, Code.Unavailable));
  }
}

/**
 * Adds the launch token to every call into a subprocess, on a copy of the
 * headers: interceptors further out keep a view without the secret.
 */
function bearerToken(token: string): Interceptor {
  const value = `Bearer ${token}`;
  return (next) => (req) => {
    const header = new Headers(req.header);
    header.set("authorization", value);
    return next({ ...req, header });
  };
}

function describeSource(source: PluginSource): string {
  switch (source.kind) {
    case "subprocess":
      return [source.command, ...source.args].join(" ");
    case "remote":
      return source.url.toString();
    case "in-process":
      return "(in process)";
    case "cluster":
      return `cluster of ${source.discovery.description}`;
  }
}

function list(names: readonly string[]): string {
  return names.length === 0 ? "none" : names.map((n) => `"${n}"`).join(", ");
}
