import type { Interceptor, Transport } from "@connectrpc/connect";
import type { Logger } from "../../logging/logger.js";
import type { HandshakeConfig, PluginSet } from "../../protocol/plugin-set.js";
import type { PluginServer } from "../../plugin/plugin-server.js";
import type { ClientTransport } from "../../transport/client-transport.js";
import type { CallGuard } from "../call-guard.js";
import type { PluginExit, PluginProcess } from "../launcher.js";

/**
 * A plugin reached: the transport that speaks to it, the guard that judges
 * its calls, and what the host owns of where it runs (the subprocess it
 * launched, the server it runs in process), which close() stops.
 */
export interface Connected {
  readonly transport: ClientTransport;
  readonly guard: CallGuard;
  readonly process: PluginProcess | undefined;
  readonly server: PluginServer | undefined;
}

/** What every connector is given by the client that starts the plugin. */
export interface ConnectContext {
  readonly handshake: HandshakeConfig;
  /** The protocol versions the host speaks. */
  readonly hostVersions: readonly number[];
  /** The plugins the host dispenses, by protocol version. */
  readonly pluginSets: ReadonlyMap<number, PluginSet>;
  /** The user's interceptors, run first on every call. */
  readonly interceptors: readonly Interceptor[];
  /** The plugin's name in log records, and in messages. */
  readonly name: string;
  readonly label: string;
  readonly gracePeriodMs: number;
  readonly startTimeoutMs: number;
  readonly logger: Logger;
  /** Fired when the client is closed while starting. */
  readonly signal: AbortSignal;
  /** Told about a launched subprocess at once, so its exit stays readable if the start fails. */
  readonly launched: (process: PluginProcess) => void;
  /**
   * With host services: opens the callback tunnel over one more connection
   * to the plugin (a cluster's instances); returns how to close it.
   */
  readonly tunnel?: (transport: Transport, where: string) => () => void;
  /** Told when a launched subprocess exits, with the transport to fail. */
  readonly exited: (exit: PluginExit, transport: ClientTransport) => void;
}

/**
 * Where a plugin runs, kept apart from what it speaks (go-plugin's
 * runner.Runner in spirit): one connector per kind of source, each in a
 * file of its own, turns a source into a {@link Connected}. The Handshake,
 * dispense, health and close are the client's, the same for every source.
 */
export type Connector<S> = (source: S, context: ConnectContext) => Promise<Connected>;
