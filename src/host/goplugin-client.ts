import { tmpdir } from "node:os";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { GRPCBroker } from "../gen/plugin/grpc_broker_pb.js";
import { GRPCController } from "../gen/plugin/grpc_controller_pb.js";
import { GRPCStdio, StdioData_Channel } from "../gen/plugin/grpc_stdio_pb.js";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../gen/grpc/health/v1/health_pb.js";
import { LineSplitter } from "../logging/line-splitter.js";
import { hostRecord, type Logger } from "../logging/logger.js";
import { PluginError } from "../protocol/errors.js";
import { isAlive } from "../protocol/reattach-process.js";
import { parseReattach, type ReattachConfig } from "../protocol/reattach.js";
import { formatVersions } from "../protocol/versions.js";
import type { HandshakeConfig, PluginSet, VersionedPluginSets } from "../protocol/plugin-set.js";
import type { ClientTransport } from "../transport/client-transport.js";
import { GrpcBroker } from "../transport/goplugin-broker.js";
import { createGoPluginTransport } from "../transport/goplugin-dial.js";
import { CallGuard } from "./call-guard.js";
import { launchGoPlugin, type GoPluginCommand } from "./connectors/goplugin.js";
import { HostClient } from "./host-client.js";
import type { PluginProcess } from "./launcher.js";
import { signalBlind } from "../transport/signal-view.js";

/** go-plugin's defaults: one minute to start, two seconds to exit after Shutdown. */
const DEFAULT_START_TIMEOUT_MS = 60_000;
const DEFAULT_GRACE_PERIOD_MS = 2_000;

/** The grpc.health.v1 service name go-plugin plugins report as SERVING. */
const PING_SERVICE = "plugin";

/**
 * Options for {@link GoPluginClient}.
 *
 * The plugin set has the same shape as a PluginClient's: plugin name to the
 * protobuf service the plugin serves. A go-plugin plugin does not answer
 * connect-plugin's Handshake call, so nothing is learnt from the plugin:
 * the names are only the host's own labels, and the services are called by
 * their fully-qualified names (for go-plugin's examples/grpc, `proto.KV`).
 */
type GoPluginClientCommon = GoPluginTarget & GoPluginClientSettings;

/**
 * Launch the plugin (`command`), or attach to one already running
 * (`reattach`): a Go plugin started by hand with go-plugin's
 * `ServeConfig.Test`, as Terraform's provider debug mode does. Its
 * ReattachConfig is the JSON (or `CONNECT_PLUGIN_REATTACH=<json>` line) that
 * {@link parseReattach} reads. An attached plugin is never launched, never
 * asked to shut down and never killed: close() only detaches.
 */
type GoPluginTarget =
  | (GoPluginCommand & { readonly reattach?: undefined })
  | {
      readonly reattach: ReattachConfig | string;
      /** Only its protocolVersion is used: the cookie is not checked when attaching. */
      readonly handshake: HandshakeConfig;
      readonly command?: undefined;
      readonly args?: undefined;
      readonly env?: undefined;
      readonly cwd?: undefined;
      readonly autoMTLS?: undefined;
      readonly limits?: undefined;
    };

interface GoPluginClientSettings {
  /** Where plugin logs go. Defaults to stderr. */
  readonly logger?: Logger;
  /** How long the plugin may take to print its handshake line. Defaults to 60 s. */
  readonly startTimeoutMs?: number;
  /** How long close() waits after Shutdown before it kills. Defaults to 2 s. */
  readonly gracePeriodMs?: number;
  /**
   * Receives what the plugin writes to its stdout and stderr (go-plugin
   * forwards them over plugin.GRPCStdio). Without it, every line is logged.
   */
  readonly onStdio?: (channel: "stdout" | "stderr", data: Uint8Array) => void;
  /** Interceptors for every call into the plugin (auth, clientObservability({ rpcSystem: "grpc" }), ...). */
  readonly interceptors?: readonly Interceptor[];
}

/**
 * Options for {@link GoPluginClient}: the common ones, and either `plugins`
 * (the services at `handshake.protocolVersion`) or `versionedPlugins`
 * (go-plugin's VersionedPlugins: every version is offered in
 * PLUGIN_PROTOCOL_VERSIONS, and the set of the version the plugin picks is
 * the one dispensed).
 */
export type GoPluginClientOptions<
  P extends PluginSet,
  V extends VersionedPluginSets = Record<never, PluginSet>,
> = GoPluginClientCommon &
  (
    | { readonly plugins: P; readonly versionedPlugins?: undefined }
    | { readonly versionedPlugins: V; readonly plugins?: undefined }
  );

type Running = {
  /** Undefined when attached to a plugin this host did not launch. */
  readonly process: PluginProcess | undefined;
  readonly transport: ClientTransport;
  readonly guard: CallGuard;
  readonly broker: GrpcBroker;
  readonly streams: AbortController;
  readonly version: number;
};

/**
 * A host for **unmodified go-plugin plugins** (Terraform-style Go plugins
 * built with hashicorp/go-plugin and `GRPCServer: plugin.DefaultGRPCServer`),
 * and for connect-plugin plugins launched the way go-plugin launches them.
 *
 * It does what go-plugin's `plugin.Client` does: sets the cookie,
 * PLUGIN_PROTOCOL_VERSIONS, the port range, the unix socket directory and,
 * with AutoMTLS, PLUGIN_CLIENT_CERT; reads the handshake line (4 to 7
 * fields) and checks its version; speaks gRPC to the announced unix socket
 * or TCP address; pings `grpc.health.v1` for "plugin"; streams the plugin's
 * stdio over plugin.GRPCStdio; parses its hclog JSON stderr into log
 * records (a Go panic is logged as errors); runs plugin.GRPCBroker both ways
 * ({@link broker}); and on close calls plugin.GRPCController/Shutdown, then
 * kills the process group after the grace period.
 *
 * Why a class of its own rather than a PluginClient source: a go-plugin
 * plugin has none of connect-plugin's controller (no Handshake, Health or
 * Shutdown RPCs, no launch token, no Connect protocol), so the two start,
 * check and stop a plugin differently. Keeping them apart keeps each one's
 * errors exact, and the plugin set is declared the same way in both.
 */
export class GoPluginClient<
  P extends PluginSet = Record<never, DescService>,
  V extends VersionedPluginSets = Record<never, PluginSet>,
> extends HostClient<P, V, Running> {
  /** The config attached to, when the options give `reattach`. */
  private readonly reattachConfig: ReattachConfig | undefined;

  constructor(private readonly options: GoPluginClientOptions<P, V>) {
    const config =
      options.reattach === undefined
        ? undefined
        : typeof options.reattach === "string"
          ? parseReattach(options.reattach)
          : options.reattach;
    const name =
      config === undefined
        ? [options.command ?? "", ...(options.args ?? [])].join(" ")
        : `reattached pid ${config.Pid} at ${config.Addr.String}`;
    super("GoPluginClient", options, name, JSON.stringify(name));
    this.reattachConfig = config;
  }

  /** The protocol version agreed with the plugin. */
  get version(): number {
    return this.mustRun().version;
  }

  /** Where the plugin listens, from its handshake line ("unix" or "tcp"). */
  get address(): { readonly network: "unix" | "tcp"; readonly address: string } | undefined {
    const config = this.reattachConfig;
    if (config !== undefined) return { network: config.Addr.Network, address: config.Addr.String };
    const line = this.life.process?.handshakeLine;
    return line === undefined ? undefined : { network: line.network, address: line.address };
  }

  /**
   * go-plugin's GRPCBroker for this connection: `acceptAndServe(id, routes)`
   * serves a service the plugin can dial (pass `id` in a request);
   * `dial(id)` reaches a service the plugin started.
   */
  get broker(): GrpcBroker {
    return this.mustRun().broker;
  }

  /**
   * go-plugin's Ping: asks grpc.health.v1 about "plugin". Resolves when the
   * plugin is serving; rejects with the reason otherwise.
   */
  async ping(timeoutMs = 5_000, signal?: AbortSignal): Promise<void> {
    const running = this.mustRun();
    const res = await createClient(Health, running.transport.transport).check(
      { service: PING_SERVICE },
      { timeoutMs, ...(signal !== undefined && { signal }) },
    );
    if (res.status !== ServingStatus.SERVING) {
      throw new ConnectError(
        `plugin ${this.label} is not serving (health status ${ServingStatus[res.status]})`,
        Code.Unavailable,
      );
    }
  }

  protected async doStart(): Promise<void> {
    if (this.reattachConfig !== undefined) return this.attach(this.reattachConfig);
    const options = this.options;
    const startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    const deadline = Date.now() + startTimeoutMs;
    const { process: proc, tls } = await launchGoPlugin({
      ...(options as GoPluginCommand),
      hostVersions: this.hostVersions,
      startTimeoutMs,
      logger: this.logger,
      name: this.name,
      label: this.label,
      signal: this.life.startAbort.signal,
      launched: (launched) => {
        this.life.process = launched;
      },
    });
    const line = proc.handshakeLine;
    let parts: Omit<Running, "version"> | undefined;
    try {
      const guard = new CallGuard(this.label, () => transport.isBroken(), proc);
      const transport = createGoPluginTransport(line, {
        // As in PluginClient: user interceptors first, so that the guard
        // judges only errors from the wire.
        interceptors: [...(options.interceptors ?? []), guard.interceptor],
        ...(tls !== undefined && { tls }),
      });
      const broker = new GrpcBroker({
        ...(tls !== undefined && { tls }),
        socketDir:
          options.env?.PLUGIN_UNIX_SOCKET_DIR || process.env.PLUGIN_UNIX_SOCKET_DIR || tmpdir(),
      });
      parts = { process: proc, transport, guard, broker, streams: new AbortController() };
      proc.onExit((exit) => {
        transport.close(
          new ConnectError(`plugin ${this.label} ${exit.description}`, Code.Unavailable),
        );
        if (!exit.expected) {
          // Nothing else would stop these, and the brokered servers would
          // keep a host that forgets close() alive.
          parts?.streams.abort();
          void broker.close();
          this.logger.log(
            hostRecord(this.name, "error", `plugin ${exit.description} unexpectedly`, {
              code: exit.code,
              signal: exit.signal,
            }),
          );
        }
        this.life.notifyExit(exit, this.logger, this.name);
      });
      const running = { ...parts, version: line.protocolVersion };
      this.life.running = running;
      await this.pingAtStart(deadline);
      this.openStreams(running);
      this.life.checkNotClosedWhileStarting();
    } catch (error) {
      this.life.running = undefined;
      parts?.streams.abort();
      parts?.guard.close();
      parts?.transport.close();
      await parts?.broker.close();
      await proc.kill(2_000);
      throw error;
    }
  }

  /**
   * Attaches to a plugin started by hand (go-plugin's Reattach): checks the
   * config against this host (gRPC, a version it speaks, a live pid), dials
   * the address and pings it. No process is owned, so nothing watches for an
   * exit: a plugin that goes away shows as calls failing with Unavailable.
   */
  private async attach(config: ReattachConfig): Promise<void> {
    const where = `${config.Addr.Network} ${config.Addr.String}`;
    if (config.Protocol !== "grpc") {
      throw new PluginError(
        "unsupported-protocol",
        `cannot reattach to plugin ${this.label}: its config says protocol ` +
          `"${config.Protocol}", but a go-plugin host speaks only "grpc" (use PluginClient with reattach())`,
      );
    }
    if (!this.hostVersions.includes(config.ProtocolVersion)) {
      throw new PluginError(
        "version-mismatch",
        `protocol version mismatch with plugin ${this.label}: its reattach config says ` +
          `${formatVersions([config.ProtocolVersion])}, this host speaks ` +
          `${formatVersions(this.hostVersions)}`,
      );
    }
    if (!isAlive(config.Pid)) {
      throw new PluginError(
        "unreachable",
        `cannot reattach to plugin pid ${config.Pid} at ${where}: no such process`,
      );
    }
    const guard: CallGuard = new CallGuard(this.label, () => transport.isBroken());
    const transport = createGoPluginTransport(
      { network: config.Addr.Network, address: config.Addr.String },
      {
        interceptors: [...(this.options.interceptors ?? []), this.nameRefusals, guard.interceptor],
      },
    );
    const broker = new GrpcBroker({ socketDir: process.env.PLUGIN_UNIX_SOCKET_DIR || tmpdir() });
    const running: Running = {
      process: undefined,
      transport,
      guard,
      broker,
      streams: new AbortController(),
      version: config.ProtocolVersion,
    };
    this.life.running = running;
    try {
      await this.pingAtStart(
        Date.now() + (this.options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS),
      );
      this.openStreams(running);
      this.life.checkNotClosedWhileStarting();
    } catch (error) {
      this.life.running = undefined;
      await this.detach(running);
      throw error;
    }
  }

  /**
   * An attached plugin has no exit to report, so a connection it refuses
   * (its process gone) would read as a bare "connect ECONNREFUSED <path>":
   * this names the plugin. Errors the plugin sent (with metadata) pass.
   */
  private readonly nameRefusals: Interceptor = signalBlind((next) => async (req) => {
    try {
      return await next(req);
    } catch (error) {
      const ce = ConnectError.from(error);
      if (ce.code !== Code.Unavailable || [...ce.metadata.keys()].length > 0) throw error;
      if (ce.rawMessage.includes(this.label)) throw error;
      throw new ConnectError(
        `plugin ${this.label} is unreachable (attached, not launched: has it exited?): ${ce.rawMessage}`,
        Code.Unavailable,
        undefined,
        undefined,
        error,
      );
    }
  });

  private async pingAtStart(deadline: number): Promise<void> {
    try {
      // close() aborts this, so that it never waits out the start timeout.
      await this.ping(Math.max(1, deadline - Date.now()), this.life.startAbort.signal);
    } catch (error) {
      if (error instanceof PluginError) throw error;
      if (this.life.startAbort.signal.aborted) {
        throw new PluginError("not-running", `plugin ${this.label} was closed while starting`);
      }
      const ce = ConnectError.from(error);
      throw new PluginError(
        ce.code === Code.Unimplemented ? "not-a-plugin-server" : "unreachable",
        `could not reach plugin ${this.label} over gRPC (grpc.health.v1 check of "plugin"): ` +
          ce.message,
        { cause: error, stderrTail: this.life.running?.process?.stderrTail ?? "" },
      );
    }
  }

  /** plugin.GRPCStdio and plugin.GRPCBroker: two streams held for the connection's life. */
  private openStreams(running: Running): void {
    const signal = running.streams.signal;
    const stdio = createClient(GRPCStdio, running.transport.transport);
    const lines = this.options.onStdio === undefined ? this.stdioLines() : undefined;
    const sink =
      this.options.onStdio ??
      ((channel: "stdout" | "stderr", data: Uint8Array) =>
        lines?.[channel].push(Buffer.from(data)));
    void (async () => {
      try {
        for await (const data of stdio.streamStdio({}, { signal })) {
          if (data.channel === StdioData_Channel.STDOUT) sink("stdout", data.data);
          else if (data.channel === StdioData_Channel.STDERR) sink("stderr", data.data);
        }
      } catch {
        // Ends when the plugin exits or the host closes; nothing is lost that
        // the plugin had flushed.
      } finally {
        // A last line without a newline is still logged.
        lines?.stdout.end();
        lines?.stderr.end();
      }
    })();
    const brokerClient = createClient(GRPCBroker, running.transport.transport);
    void running.broker.consume(
      brokerClient.startStream(running.broker.outbound(signal), { signal }),
    );
  }

  private stdioLines(): Record<"stdout" | "stderr", LineSplitter> {
    return {
      stdout: new LineSplitter((line) => this.logStdio("stdout", line)),
      stderr: new LineSplitter((line) => this.logStdio("stderr", line)),
    };
  }

  private logStdio(source: "stdout" | "stderr", message: string): void {
    this.logger.log({
      level: "info",
      message,
      plugin: this.name,
      source,
      fields: { stdio: true },
      time: new Date(),
    });
  }

  /**
   * Asks the plugin to shut down (plugin.GRPCController/Shutdown), and kills
   * its process group if it has not exited within the grace period.
   */
  protected async doClose(): Promise<void> {
    const running = this.life.running;
    this.life.running = undefined;
    if (running === undefined) return;
    const proc = running.process;
    if (proc === undefined) {
      // Attached, not launched: the plugin is not ours to stop.
      await this.detach(running);
      return;
    }
    const grace = this.options.gracePeriodMs ?? DEFAULT_GRACE_PERIOD_MS;
    // One deadline for the Shutdown call and the exit, as go-plugin's Kill.
    const deadline = Date.now() + grace;
    proc.markStopping();
    if (proc.exit === undefined) {
      try {
        await createClient(GRPCController, running.transport.transport).shutdown(
          {},
          { timeoutMs: grace },
        );
      } catch {
        // Unreachable or already gone: the kill below settles it.
      }
    }
    if ((await proc.exitWithin(Math.max(0, deadline - Date.now()))) === undefined) {
      await proc.kill();
    }
    // After the exit, so that what the plugin wrote while stopping arrives.
    await this.detach(running);
  }

  /** Ends this host's side of the connection: streams, calls, transport, broker. */
  private async detach(running: Running): Promise<void> {
    running.streams.abort();
    running.guard.close();
    running.transport.close(new ConnectError(`plugin ${this.label} was closed`, Code.Unavailable));
    await running.broker.close();
  }
}
