import type { DescService } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { CallStats } from "../host/call-stats.js";
import { PluginClient } from "../host/plugin-client.js";
import type { PluginSource } from "../host/sources.js";
import type { Logger } from "../logging/logger.js";
import { ManagementError } from "../manifest/errors.js";
import { canonicalJson } from "../security/canonical.js";
import type { HandshakeConfig, PluginSet } from "../protocol/plugin-set.js";
import { Supervisor, type RestartPolicy, type SupervisorEvent } from "./supervisor.js";

/** What a host says when it opens a plugin: its contract and the configuration. */
export interface OpenOptions<P extends PluginSet> {
  readonly handshake: HandshakeConfig;
  readonly plugins: P;
  /** Passed to the plugin (CONNECT_PLUGIN_CONFIG), after validation against its configSchema. */
  readonly config?: unknown;
}

/** What the manager passes to each ManagedPlugin. */
export interface ManagedOptions {
  readonly restart: RestartPolicy | undefined;
  readonly idleTimeoutMs: number;
  readonly logger: Logger;
  readonly startTimeoutMs: number | undefined;
  readonly gracePeriodMs: number | undefined;
  readonly onEvent: (e: SupervisorEvent | { type: "idle-stop" }) => void;
}

/**
 * One plugin as the manager runs it. dispense() returns a typed Connect
 * client whose calls start the plugin if it is not running (one start for
 * any number of concurrent first calls), count as in-flight work while they
 * run, and go to whichever process is current, so that a client stays
 * usable across idle stops and crash restarts.
 */
export class ManagedPlugin<P extends PluginSet> {
  private readonly supervisor: Supervisor<PluginClient<P>>;
  private inFlight_ = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private closed_ = false;
  private generation_ = 0;
  /** Per-method calls, rates and latencies of this plugin, across restarts (for the status page). */
  readonly stats = new CallStats();

  constructor(
    readonly name: string,
    private readonly options: OpenOptions<P>,
    makeSource: () => Promise<PluginSource>,
    private readonly managed: ManagedOptions,
  ) {
    // The factory verifies the plugin before every start: first use, after
    // an idle stop, and after a crash.
    this.supervisor = new Supervisor<PluginClient<P>>(
      async () =>
        new PluginClient<P>({
          handshake: options.handshake,
          plugins: options.plugins,
          logger: managed.logger,
          ...(managed.startTimeoutMs !== undefined && { startTimeoutMs: managed.startTimeoutMs }),
          ...(managed.gracePeriodMs !== undefined && { gracePeriodMs: managed.gracePeriodMs }),
          source: await makeSource(),
          interceptors: [this.stats.interceptor],
        }),
      {
        name,
        ...(managed.restart !== undefined && { restart: managed.restart }),
        onEvent: (e) => {
          if (e.type === "started") this.generation_++;
          managed.onEvent(e);
        },
      },
    );
  }

  /** Calls in flight right now. */
  get inFlight(): number {
    return this.inFlight_;
  }

  get state() {
    return this.supervisor.state;
  }

  get restarts(): number {
    return this.supervisor.restarts;
  }

  /** How many processes (or connections) this handle has started: 1 for the first, +1 per restart or start after an idle stop. */
  get generation(): number {
    return this.generation_;
  }

  /** The running plugin's client, if it is running (it is not started for asking). */
  get current(): PluginClient<P> | undefined {
    return this.supervisor.current;
  }

  /** The running plugin's pid, when it is a running subprocess. */
  get pid(): number | undefined {
    return this.supervisor.current?.pid;
  }

  /** Starts the plugin now (verifying it first); otherwise the first call does. */
  async start(): Promise<PluginClient<P>> {
    const client = await this.supervisor.get();
    if (this.inFlight_ === 0) this.armIdleTimer();
    return client;
  }

  /** A typed client for the named plugin; calls start the plugin as needed. */
  dispense<K extends Extract<keyof P, string>>(name: K): Client<P[K]> {
    const service: DescService | undefined = this.options.plugins[name];
    if (service === undefined) {
      throw new ManagementError(
        "not-found",
        `this host has no plugin named "${name}" in its plugin set`,
      );
    }
    const client: Record<string, unknown> = {};
    for (const method of service.methods) {
      const streamingOut =
        method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming";
      const call = async (args: unknown[]) => {
        const running = await this.start();
        const target = running.dispense(name as never) as unknown as Record<
          string,
          (...a: unknown[]) => unknown
        >;
        return (target[method.localName] as (...a: unknown[]) => unknown)(...args);
      };
      client[method.localName] = streamingOut
        ? (...args: unknown[]) =>
            this.trackStream(() => call(args) as Promise<AsyncIterable<unknown>>)
        : (...args: unknown[]) => this.track(() => call(args));
    }
    return client as Client<P[K]>;
  }

  /** Stops the plugin; the next call starts it again. */
  async stop(): Promise<void> {
    clearTimeout(this.idleTimer);
    await this.supervisor.stop();
  }

  /** True after close(): the manager's open() then makes a new handle. */
  get closed(): boolean {
    return this.closed_;
  }

  /**
   * Why `options` cannot share this handle, or undefined when they can: the
   * same configuration (compared as canonical JSON), handshake and plugin
   * set (same names, same services).
   */
  mismatch(options: OpenOptions<PluginSet>): string | undefined {
    if (canonicalJson(options.config ?? null) !== canonicalJson(this.options.config ?? null)) {
      return "a different configuration";
    }
    if (canonicalJson(options.handshake) !== canonicalJson(this.options.handshake)) {
      return "a different handshake";
    }
    const mine = Object.entries(this.options.plugins).map(([k, v]) => `${k}=${v.typeName}`);
    const theirs = Object.entries(options.plugins).map(([k, v]) => `${k}=${v.typeName}`);
    if (mine.sort().join(",") !== theirs.sort().join(",")) return "a different plugin set";
    return undefined;
  }

  async close(): Promise<void> {
    this.closed_ = true;
    clearTimeout(this.idleTimer);
    await this.supervisor.close();
  }

  private async track<T>(run: () => Promise<T>): Promise<T> {
    this.begin();
    try {
      return await run();
    } finally {
      this.end();
    }
  }

  private async *trackStream<T>(open: () => Promise<AsyncIterable<T>>): AsyncIterable<T> {
    this.begin();
    try {
      yield* await open();
    } finally {
      this.end();
    }
  }

  private begin(): void {
    this.inFlight_++;
    clearTimeout(this.idleTimer);
  }

  private end(): void {
    this.inFlight_--;
    if (this.inFlight_ === 0) this.armIdleTimer();
  }

  private armIdleTimer(): void {
    clearTimeout(this.idleTimer);
    if (this.managed.idleTimeoutMs > 0) {
      this.idleTimer = setTimeout(() => {
        if (this.inFlight_ !== 0) return;
        this.managed.onEvent({ type: "idle-stop" });
        void this.supervisor.stop();
      }, this.managed.idleTimeoutMs);
      this.idleTimer.unref();
    }
  }
}
