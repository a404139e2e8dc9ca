import type { Interceptor } from "@connectrpc/connect";
import { GoPluginClient } from "../host/goplugin-client.js";
import type { PluginExit } from "../host/launcher.js";
import type { PluginClientStatus, PluginHealth } from "../host/plugin-client.js";
import type { ResourceLimits } from "../host/resource-limits.js";
import type { Logger } from "../logging/logger.js";
import type { HandshakeConfig, PluginSet } from "../protocol/plugin-set.js";

/** How to launch a go-plugin plugin declared by a manifest of kind "go-plugin". */
export interface GoPluginLaunch {
  readonly kind: "go-plugin";
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  /** The manifest's cookie, with the host's protocol version. */
  readonly handshake: HandshakeConfig;
  readonly autoMTLS: boolean;
  /** The manifest's limits, as for a connect-plugin subprocess. */
  readonly limits?: ResourceLimits;
}

/**
 * One generation of a managed go-plugin plugin: a GoPluginClient with the
 * face a ManagedPlugin expects of every generation (health from go-plugin's
 * Ping, a status line). The manager supervises, idles, upgrades and
 * reports it like a connect-plugin subprocess.
 */
export class GoPluginGeneration<P extends PluginSet> {
  private readonly client: GoPluginClient<P>;
  private state: PluginClientStatus["state"] = "not started";
  private readonly where: string;

  constructor(
    launch: GoPluginLaunch,
    plugins: P,
    options: {
      readonly logger: Logger;
      readonly startTimeoutMs?: number;
      readonly gracePeriodMs?: number;
      readonly interceptors: readonly Interceptor[];
    },
  ) {
    this.client = new GoPluginClient<P>({
      handshake: launch.handshake,
      plugins,
      command: launch.command,
      args: launch.args,
      env: launch.env,
      cwd: launch.cwd,
      autoMTLS: launch.autoMTLS,
      ...(launch.limits !== undefined && { limits: launch.limits }),
      logger: options.logger,
      interceptors: options.interceptors,
      ...(options.startTimeoutMs !== undefined && { startTimeoutMs: options.startTimeoutMs }),
      ...(options.gracePeriodMs !== undefined && { gracePeriodMs: options.gracePeriodMs }),
    });
    this.where = `go-plugin ${[launch.command, ...launch.args].join(" ")}`;
  }

  async start(): Promise<void> {
    this.state = "starting";
    try {
      await this.client.start();
      this.state = "running";
    } catch (e) {
      this.state = "closed";
      throw e;
    }
  }

  close(): Promise<void> {
    this.state = "closed";
    return this.client.close();
  }

  onExit(listener: (exit: PluginExit) => void): () => void {
    return this.client.onExit(listener);
  }

  dispense(name: string): unknown {
    return this.client.dispense(name as never);
  }

  /** go-plugin's Ping (grpc.health.v1, service "plugin"). Never throws. */
  async health(timeoutMs = 5_000): Promise<PluginHealth> {
    try {
      await this.client.ping(timeoutMs);
      return "serving";
    } catch {
      return "unknown";
    }
  }

  get pid(): number | undefined {
    return this.client.exit === undefined ? this.client.pid : undefined;
  }

  status(): PluginClientStatus {
    const pid = this.pid;
    return {
      source: "subprocess",
      where: pid !== undefined ? `pid ${pid}: ${this.where}` : this.where,
      state: this.state,
      endpoints: [],
    };
  }
}
