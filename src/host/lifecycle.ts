import { PluginError } from "../protocol/errors.js";
import { notifyListeners, type Logger } from "../logging/logger.js";
import type { PluginExit, PluginProcess } from "./launcher.js";

/**
 * The lifecycle both host clients share (PluginClient and GoPluginClient):
 * one start shared by concurrent callers, a close that abandons a start in
 * progress and runs once, exit listeners, the "not started" and "closed"
 * errors, and the cache of dispensed clients. What starting and stopping
 * do is the client's: `begin` and `end`.
 */
export class Lifecycle<Running> {
  /** Set once the plugin is started and until it is closed. */
  running: Running | undefined;
  /** The subprocess, kept after close() so that `exit` stays readable. */
  process: PluginProcess | undefined;
  /** Fired by close() to abandon a start in progress. */
  readonly startAbort = new AbortController();
  private starting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private readonly exitListeners = new Set<(exit: PluginExit) => void>();
  private readonly clients = new Map<string, unknown>();

  constructor(
    private readonly label: string,
    private readonly begin: () => Promise<void>,
    private readonly end: () => Promise<void>,
  ) {}

  /** Where the client is in its life, for status pages. */
  get state(): "not started" | "starting" | "running" | "closed" {
    if (this.closing !== undefined) return "closed";
    if (this.running !== undefined) return "running";
    return this.starting !== undefined ? "starting" : "not started";
  }

  /** close() was called. */
  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** Concurrent and repeated calls share one start; after close() it rejects. */
  start(): Promise<void> {
    if (this.closing !== undefined) {
      return Promise.reject(new PluginError("not-running", `plugin ${this.label} is closed`));
    }
    this.starting ??= this.begin();
    return this.starting;
  }

  /** Abandons a start in progress, then stops once; later calls share the first. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.startAbort.abort();
      await this.starting?.catch(() => {});
      await this.end();
    })();
    return this.closing;
  }

  /** Throws a PluginError if the start was abandoned by close(). */
  checkNotClosedWhileStarting(): void {
    if (this.closing !== undefined) {
      throw new PluginError("not-running", `plugin ${this.label} was closed while starting`);
    }
  }

  mustRun(): Running {
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

  onExit(listener: (exit: PluginExit) => void): () => void {
    this.exitListeners.add(listener);
    return () => this.exitListeners.delete(listener);
  }

  notifyExit(exit: PluginExit, logger: Logger, name: string): void {
    notifyListeners(this.exitListeners, exit, logger, name);
  }

  /** The client dispensed for `name`, made once. */
  dispensed(name: string, make: () => unknown): unknown {
    const cached = this.clients.get(name);
    if (cached !== undefined) return cached;
    const client = make();
    this.clients.set(name, client);
    return client;
  }

  /** For dispenseAt(): throws unless `version` is the one agreed. */
  checkVersion(agreed: number, version: number, name: string): void {
    if (agreed !== version) {
      throw new PluginError(
        "unknown-plugin",
        `cannot dispense "${name}" at protocol version ${version}: plugin ${this.label} ` +
          `agreed on version ${agreed}`,
      );
    }
  }
}
