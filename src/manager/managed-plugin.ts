import type { DescService } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { CallStats } from "../host/call-stats.js";
import type { PluginExit } from "../host/launcher.js";
import { PluginClient, type PluginClientStatus, type PluginHealth } from "../host/plugin-client.js";
import type { PluginSource } from "../host/sources.js";
import type { Logger } from "../logging/logger.js";
import { ManagementError } from "../manifest/errors.js";
import { canonicalJson } from "../security/canonical.js";
import type { HandshakeConfig, PluginSet } from "../protocol/plugin-set.js";
import type { LivenessPolicy } from "./liveness.js";
import { GoPluginGeneration, type GoPluginLaunch } from "./goplugin-generation.js";
import { Supervisor, type RestartPolicy, type SupervisorEvent } from "./supervisor.js";

/**
 * What a ManagedPlugin needs of the client of one generation: a
 * PluginClient (subprocess, in-process, remote, cluster) or a
 * GoPluginGeneration (a go-plugin plugin).
 */
export interface GenerationClient {
  start(): Promise<void>;
  close(): Promise<void>;
  onExit(listener: (exit: PluginExit) => void): () => void;
  dispense(name: never): unknown;
  health(timeoutMs?: number): Promise<PluginHealth>;
  readonly pid: number | undefined;
  status(): PluginClientStatus;
}

/** What a host says when it opens a plugin: its contract and the configuration. */
export interface OpenOptions<P extends PluginSet> {
  readonly handshake: HandshakeConfig;
  readonly plugins: P;
  /** Passed to the plugin (CONNECT_PLUGIN_CONFIG), after validation against its configSchema. */
  readonly config?: unknown;
}

/** What a managed plugin reports, beside the supervisor's events. */
export type ManagedEvent =
  | SupervisorEvent
  | { readonly type: "idle-stop" }
  | {
      /** An old generation was stopped after an upgrade; `abandoned` calls were still running at the deadline. */
      readonly type: "retired";
      readonly generation: number;
      readonly abandoned: number;
    };

/** What upgrade() did. */
export interface UpgradeResult {
  /** False when the plugin was not running: its next start runs the new version. */
  readonly upgraded: boolean;
  /** The generation serving now. */
  readonly generation: number;
  /** From the call to the new generation taking calls (started, handshaken, healthy). */
  readonly servingAfterMs: number;
  /** Calls of the old generation still running at the drain deadline, and cut off. */
  readonly abandoned: number;
}

/** What the manager passes to each ManagedPlugin. */
export interface ManagedOptions {
  readonly restart: RestartPolicy | undefined;
  readonly liveness: LivenessPolicy | undefined;
  /**
   * How long an old generation may finish its calls in flight after an
   * upgrade before it is stopped (its grace period then applies on top).
   */
  readonly drainTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly logger: Logger;
  readonly startTimeoutMs: number | undefined;
  readonly gracePeriodMs: number | undefined;
  readonly onEvent: (e: ManagedEvent) => void;
}

/**
 * One plugin as the manager runs it. dispense() returns a typed Connect
 * client whose calls start the plugin if it is not running (one start for
 * any number of concurrent first calls), count as in-flight work while they
 * run, and go to whichever process is current, so that a client stays
 * usable across idle stops, crash restarts and upgrades. Each call stays
 * on the generation it began on to its end (a stream to its last message):
 * an upgrade switches new calls only, and stops the old generation once its
 * calls are done or `drainTimeoutMs` has passed.
 */
export class ManagedPlugin<P extends PluginSet> {
  private readonly supervisor: Supervisor<GenerationClient>;
  private inFlight_ = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private closed_ = false;
  /** Per-method calls, rates and latencies of this plugin, across restarts (for the status page). */
  readonly stats = new CallStats();
  /** Calls in flight per generation (per client), and who waits for them to end. */
  private readonly calls = new Map<GenerationClient, { count: number; idle?: () => void }>();
  private readonly retiring = new Set<GenerationClient>();

  constructor(
    readonly name: string,
    private readonly options: OpenOptions<P>,
    makeSource: () => Promise<PluginSource | GoPluginLaunch>,
    private readonly managed: ManagedOptions,
  ) {
    // The factory verifies the plugin before every start: first use, after
    // an idle stop, and after a crash.
    this.supervisor = new Supervisor<GenerationClient>(
      async (): Promise<GenerationClient> => {
        const source = await makeSource();
        const common = {
          logger: managed.logger,
          ...(managed.startTimeoutMs !== undefined && { startTimeoutMs: managed.startTimeoutMs }),
          ...(managed.gracePeriodMs !== undefined && { gracePeriodMs: managed.gracePeriodMs }),
          interceptors: [this.stats.interceptor],
        };
        if (source.kind === "go-plugin") {
          return new GoPluginGeneration(source, options.plugins, common);
        }
        return new PluginClient<P>({
          handshake: options.handshake,
          plugins: options.plugins,
          source,
          ...common,
        });
      },
      {
        name,
        ...(managed.restart !== undefined && { restart: managed.restart }),
        ...(managed.liveness !== undefined && { liveness: managed.liveness }),
        onEvent: managed.onEvent,
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

  /** The generation serving now, or last: 1 for the first start, one more per restart and upgrade. */
  get generation(): number {
    return this.supervisor.generation;
  }

  /** The running plugin's client, if it is running (it is not started for asking). */
  get current(): GenerationClient | undefined {
    return this.supervisor.current;
  }

  /** The running plugin's pid, when it is a running subprocess. */
  get pid(): number | undefined {
    return this.supervisor.current?.pid;
  }

  /** Starts the plugin now (verifying it first); otherwise the first call does. */
  async start(): Promise<GenerationClient> {
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
      const target = (running: GenerationClient) =>
        (running.dispense(name as never) as Record<string, (...a: unknown[]) => unknown>)[
          method.localName
        ] as (...a: unknown[]) => unknown;
      client[method.localName] = streamingOut
        ? (...args: unknown[]) =>
            this.trackStream((running) => target(running)(...args) as AsyncIterable<unknown>)
        : (...args: unknown[]) =>
            this.track((running) => Promise.resolve(target(running)(...args)));
    }
    return client as Client<P[K]>;
  }

  /**
   * Replaces the running generation with a new one made the way every
   * start is (for an installed plugin: from its directory as it is now,
   * verified). The new generation must start, handshake and answer its
   * health check with serving before it takes any call; then new calls go
   * to it, calls in flight finish on the old one (up to `drainTimeoutMs`),
   * and the old one is stopped. Resolves once the old one is stopped. If
   * the new generation fails, it is stopped, the old one keeps serving,
   * and this rejects with an "upgrade-failed" ManagementError (also sent as
   * an event). When the plugin is not running, nothing starts: the next
   * call runs the new version.
   */
  async upgrade(): Promise<UpgradeResult> {
    const began = performance.now();
    const swapped = await this.supervisor.upgrade(async (next) => {
      const health = await next.health();
      if (health !== "serving") {
        throw new Error(`the new generation's health check answered ${health}, not serving`);
      }
    });
    const servingAfterMs = performance.now() - began;
    if (swapped === undefined) {
      return { upgraded: false, generation: this.generation, servingAfterMs: 0, abandoned: 0 };
    }
    const generation = this.generation;
    if (this.inFlight_ === 0) this.armIdleTimer();
    const abandoned = await this.retire(swapped.previous, generation - 1);
    return { upgraded: true, generation, servingAfterMs, abandoned };
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
    await Promise.all([this.supervisor.close(), ...[...this.retiring].map((c) => c.close())]);
  }

  /**
   * Waits until the old generation has no call in flight, or the drain
   * deadline, then closes it. Returns how many calls it cut off.
   */
  private async retire(old: GenerationClient, generation: number): Promise<number> {
    this.retiring.add(old);
    const entry = this.calls.get(old);
    if (entry !== undefined && entry.count > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        entry.idle = resolve;
        timer = setTimeout(resolve, this.managed.drainTimeoutMs);
      });
      clearTimeout(timer);
    }
    const abandoned = this.calls.get(old)?.count ?? 0;
    await old.close();
    this.retiring.delete(old);
    this.calls.delete(old);
    this.managed.onEvent({ type: "retired", generation, abandoned });
    return abandoned;
  }

  /**
   * The running client, counted as busy with one more call of its
   * generation. Chosen synchronously from the supervisor's current client,
   * so that an upgrade cannot slip between choosing a client and counting
   * the call on it.
   */
  private async acquire(): Promise<GenerationClient> {
    for (;;) {
      const current = this.supervisor.current;
      if (current !== undefined) {
        const entry = this.calls.get(current) ?? { count: 0 };
        entry.count++;
        this.calls.set(current, entry);
        return current;
      }
      await this.start();
    }
  }

  private release(client: GenerationClient): void {
    const entry = this.calls.get(client);
    if (entry === undefined) return;
    entry.count--;
    if (entry.count === 0) {
      if (entry.idle !== undefined) entry.idle();
      else if (!this.retiring.has(client)) this.calls.delete(client);
    }
  }

  private async track<T>(run: (client: GenerationClient) => Promise<T>): Promise<T> {
    this.begin();
    try {
      const client = await this.acquire();
      try {
        return await run(client);
      } finally {
        this.release(client);
      }
    } finally {
      this.end();
    }
  }

  private async *trackStream<T>(
    open: (client: GenerationClient) => AsyncIterable<T>,
  ): AsyncIterable<T> {
    this.begin();
    try {
      const client = await this.acquire();
      try {
        yield* open(client);
      } finally {
        this.release(client);
      }
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
