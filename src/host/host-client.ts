import type { DescService } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { PluginError } from "../protocol/errors.js";
import {
  byVersion,
  type HandshakeConfig,
  type PluginSet,
  type VersionedPluginSets,
} from "../protocol/plugin-set.js";
import { stderrLogger, type Logger } from "../logging/logger.js";
import type { ClientTransport } from "../transport/client-transport.js";
import { createStreamCancellingClient } from "../transport/create-client.js";
import type { PluginExit } from "./launcher.js";
import { Lifecycle } from "./lifecycle.js";

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

/** What both host clients' options declare: the plugin set and where logs go. */
interface HostClientOptions {
  readonly handshake: HandshakeConfig;
  readonly plugins?: PluginSet | undefined;
  readonly versionedPlugins?: VersionedPluginSets | undefined;
  readonly logger?: Logger | undefined;
}

/**
 * The typed surface PluginClient and GoPluginClient share: start, close,
 * onExit, dispense and dispenseAt over the plugin sets by version. What
 * starting and stopping do, and what a plugin must have told the host
 * before a name can be dispensed, is each client's own (`doStart`,
 * `doClose`, `checkDispensable`).
 */
export abstract class HostClient<
  P extends PluginSet,
  V extends VersionedPluginSets,
  Running extends { readonly version: number; readonly transport: ClientTransport },
> {
  protected readonly sets: Map<number, PluginSet>;
  protected readonly logger: Logger;
  protected readonly life: Lifecycle<Running>;

  /**
   * @param kind the class name, for errors in the options
   * @param name the plugin's name in log records (command line or URL)
   * @param label the plugin's name in messages (quoted command line or URL)
   */
  protected constructor(
    kind: string,
    options: HostClientOptions,
    protected readonly name: string,
    protected readonly label: string,
  ) {
    this.sets = byVersion(
      kind,
      options.plugins,
      options.versionedPlugins,
      options.handshake.protocolVersion,
    );
    this.logger = options.logger ?? stderrLogger;
    this.life = new Lifecycle(
      label,
      () => this.doStart(),
      () => this.doClose(),
    );
  }

  /** The plugin's process id while it is a started subprocess; undefined otherwise. */
  get pid(): number | undefined {
    return this.life.process?.pid;
  }

  /** How the plugin process ended, once it has. */
  get exit(): PluginExit | undefined {
    return this.life.process?.exit;
  }

  /**
   * Calls `listener` when the plugin process exits, whether close() stopped
   * it (`exit.expected`) or it crashed. Returns an unsubscribe function.
   * Only subprocesses exit: for remote and in-process plugins it never fires
   * (their failures show up as Unavailable calls and in health checks).
   */
  onExit(listener: (exit: PluginExit) => void): () => void {
    return this.life.onExit(listener);
  }

  /**
   * Launches or connects to the plugin and completes the handshake.
   * Concurrent and repeated calls share one start.
   */
  start(): Promise<void> {
    return this.life.start();
  }

  /**
   * Returns the typed client for a named plugin. The plugin must have been
   * started, and the name must be one of the host's at the agreed protocol
   * version (with `versionedPlugins`, a union of the versions' clients; see
   * dispenseAt).
   */
  dispense<K extends PluginName<P, V>>(name: K): DispensedClient<ServiceFor<P, V, K>> {
    return this.clientFor(name) as DispensedClient<ServiceFor<P, V, K>>;
  }

  /**
   * Like dispense(), typed for one protocol version of `versionedPlugins`.
   * Throws a PluginError when the agreed version is another one.
   */
  dispenseAt<Ver extends keyof V & number, K extends Extract<keyof V[Ver], string>>(
    version: Ver,
    name: K,
  ): DispensedClient<V[Ver][K]> {
    this.life.checkVersion(this.mustRun().version, version, name);
    return this.clientFor(name) as DispensedClient<V[Ver][K]>;
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
    return this.life.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  protected abstract doStart(): Promise<void>;
  protected abstract doClose(): Promise<void>;

  /** Throws when the plugin cannot serve `service` as `name` (default: no check). */
  protected checkDispensable(_running: Running, _name: string, _service: DescService): void {}

  protected mustRun(): Running {
    return this.life.mustRun();
  }

  /** Every version of the plugin sets, offered to the plugin. */
  protected get hostVersions(): number[] {
    return [...this.sets.keys()];
  }

  private clientFor(name: string): unknown {
    const running = this.mustRun();
    return this.life.dispensed(name, () => {
      const hostSet = this.sets.get(running.version) ?? {};
      const service = hostSet[name];
      if (service === undefined) {
        throw new PluginError(
          "unknown-plugin",
          `this host has no plugin named "${name}" at protocol version ${running.version} ` +
            `(it knows: ${quotedList(Object.keys(hostSet))})`,
        );
      }
      this.checkDispensable(running, name, service);
      return createStreamCancellingClient(service, running.transport.transport);
    });
  }
}

/** `"a", "b"`, or `none`. */
export function quotedList(names: readonly string[]): string {
  return names.length === 0 ? "none" : names.map((n) => `"${n}"`).join(", ");
}
