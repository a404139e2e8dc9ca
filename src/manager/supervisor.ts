import type { PluginExit } from "../host/launcher.js";
import { ManagementError } from "../manifest/errors.js";
import { defaultLiveness, LivenessWatch, type LivenessPolicy } from "./liveness.js";

/** What the Supervisor needs of a client: PluginClient has all of it. */
export interface SupervisedClient {
  start(): Promise<void>;
  close(): Promise<void>;
  onExit(listener: (exit: PluginExit) => void): () => void;
  /** For liveness checks and upgrades; a client without it is never checked. */
  health?(timeoutMs?: number): Promise<string>;
}

/**
 * How many crashes a supervised plugin may have before it is given up on:
 * at most `maxRestarts` restarts within any `windowMs`; the restart after
 * the n-th crash in the window waits `initialBackoffMs * 2^(n-1)`, capped
 * at `maxBackoffMs`.
 */
export interface RestartPolicy {
  /** Default 3. */
  readonly maxRestarts?: number;
  /** Default 60 s. */
  readonly windowMs?: number;
  /** Default 100 ms. */
  readonly initialBackoffMs?: number;
  /** Default 5 s. */
  readonly maxBackoffMs?: number;
}

export type SupervisorState = "idle" | "starting" | "running" | "backoff" | "failed" | "closed";

/** Lifecycle events, for logs and tests. */
export type SupervisorEvent =
  | {
      readonly type: "started";
      readonly restarts: number;
      /** How long the start took, launch to completed handshake. */
      readonly startMs: number;
    }
  | {
      readonly type: "crashed";
      readonly exit: PluginExit;
      readonly restartInMs: number | undefined;
    }
  | {
      readonly type: "restart-failed";
      readonly error: unknown;
      readonly restartInMs: number | undefined;
    }
  | {
      /** A running plugin stopped answering its health checks; it is restarted as after a crash. */
      readonly type: "unresponsive";
      readonly reason: string;
      readonly restartInMs: number | undefined;
    }
  | { readonly type: "upgraded"; readonly generation: number }
  | { readonly type: "upgrade-failed"; readonly error: ManagementError }
  | { readonly type: "stopped" }
  | { readonly type: "failed"; readonly error: ManagementError };

/**
 * Keeps one plugin running: starts it on first use (one start, however many
 * callers ask at once), notices when its process crashes, and restarts it
 * with exponential backoff as long as the restart budget allows. Once the
 * budget is spent it stops trying, and every get() fails with a
 * "restart-budget-exhausted" error that says how often it crashed and how
 * it last exited. A stop() (say, for idleness) is not a crash: the next
 * get() simply starts it again.
 *
 * It wraps a factory rather than a client because a PluginClient is
 * single-use: each restart makes a fresh one. The factory may be async (the
 * manager verifies the plugin's files in it, before every start). Usable
 * without the manager:
 *
 * ```ts
 * const sup = new Supervisor(() => new PluginClient({ handshake, plugins, source }), { name: "kv" });
 * const kv = (await sup.get()).dispense("kv");
 * ```
 */
export class Supervisor<C extends SupervisedClient> {
  private client: C | undefined;
  private pending: Promise<C> | undefined;
  private crashes: number[] = [];
  private lastExit: PluginExit | undefined;
  private failure: ManagementError | undefined;
  private backoffTimer: NodeJS.Timeout | undefined;
  /** Ends a backoff wait early (stop() during a backoff must not hang). */
  private wake: (() => void) | undefined;
  private _state: SupervisorState = "idle";
  /**
   * Bumped by every stop(): a launch that began before it is stale, whatever
   * `_state` says by now (a later get() may have begun another start).
   */
  private epoch = 0;
  private _restarts = 0;
  /** Counts every process that started serving: starts, restarts and upgrades. */
  private serial = 0;
  private liveness: LivenessWatch | undefined;
  private upgrading: Promise<unknown> = Promise.resolve();
  private readonly policy: Required<RestartPolicy>;
  private readonly livenessPolicy: Required<LivenessPolicy>;

  constructor(
    private readonly factory: () => C | Promise<C>,
    private readonly options: {
      readonly name: string;
      readonly restart?: RestartPolicy;
      /** Liveness checks of the running client; off unless given. */
      readonly liveness?: LivenessPolicy;
      readonly onEvent?: (event: SupervisorEvent) => void;
    },
  ) {
    this.livenessPolicy =
      options.liveness === undefined
        ? { ...defaultLiveness, intervalMs: 0 }
        : { ...defaultLiveness, ...options.liveness };
    this.policy = {
      maxRestarts: options.restart?.maxRestarts ?? 3,
      windowMs: options.restart?.windowMs ?? 60_000,
      initialBackoffMs: options.restart?.initialBackoffMs ?? 100,
      maxBackoffMs: options.restart?.maxBackoffMs ?? 5_000,
    };
  }

  get state(): SupervisorState {
    return this._state;
  }

  /** Restarts after crashes so far. */
  get restarts(): number {
    return this._restarts;
  }

  /**
   * The number of the generation serving now (or last): 1 for the first
   * start, one more for every restart and upgrade.
   */
  get generation(): number {
    return this.serial;
  }

  /** The running client, if any. */
  get current(): C | undefined {
    return this._state === "running" ? this.client : undefined;
  }

  /**
   * The running client, started (or restarted) if need be. Concurrent
   * callers share one start. Rejects with the start's error, or with the
   * terminal "restart-budget-exhausted" error.
   */
  get(): Promise<C> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this._state === "closed") {
      return Promise.reject(
        new ManagementError("stopped", `plugin "${this.options.name}" is closed`),
      );
    }
    if (this._state === "running" && this.client !== undefined) return Promise.resolve(this.client);
    if (this.pending === undefined) {
      const first = this.launch(0);
      this.pending = first;
      // A failed start is not a crash: the next get() tries again.
      first.catch(() => {
        if (this.pending === first) this.pending = undefined;
      });
    }
    return this.pending;
  }

  /** Stops the plugin on purpose (idleness, reconfiguration); get() starts it again. */
  async stop(): Promise<void> {
    clearTimeout(this.backoffTimer);
    this.unwatch();
    const wasBackoff = this._state === "backoff";
    this.epoch++;
    const client = this.client;
    const pending = this.pending;
    this.client = undefined;
    this.pending = undefined;
    if (this._state !== "failed" && this._state !== "closed") this._state = "idle";
    if (wasBackoff) this.wake?.();
    await pending?.catch(() => undefined);
    await client?.close();
    if (client !== undefined) this.options.onEvent?.({ type: "stopped" });
  }

  /** Stops the plugin for good. */
  async close(): Promise<void> {
    await this.stop();
    if (this._state !== "failed") this._state = "closed";
  }

  private async launch(delayMs: number): Promise<C> {
    const generation = this.epoch;
    const stale = () => generation !== this.epoch;
    if (delayMs > 0) {
      this._state = "backoff";
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.backoffTimer = setTimeout(resolve, delayMs);
      });
      this.wake = undefined;
      if (stale() || this._state !== "backoff")
        throw new ManagementError("stopped", `plugin "${this.options.name}" was stopped`);
    }
    this._state = "starting";
    let client: C | undefined;
    let startedAt = performance.now();
    try {
      client = await this.factory();
      if (stale() || this._state !== "starting") {
        throw new ManagementError(
          "stopped",
          `plugin "${this.options.name}" was stopped while starting`,
        );
      }
      this.client = client;
      startedAt = performance.now();
      await client.start();
    } catch (e) {
      if (!stale() && this._state === "starting") {
        this.client = undefined;
        this._state = "idle";
      }
      await client?.close().catch(() => undefined);
      throw e;
    }
    if (stale() || this.client !== client) {
      // stop() ran while we were starting.
      if (this.client === client) this.client = undefined;
      await client.close();
      throw new ManagementError(
        "stopped",
        `plugin "${this.options.name}" was stopped while starting`,
      );
    }
    this.serve(client);
    this.options.onEvent?.({
      type: "started",
      restarts: this._restarts,
      startMs: performance.now() - startedAt,
    });
    return client;
  }

  /**
   * Starts a new generation from the factory beside the running one, checks
   * it with `check` (the manager asks for its health), and only then makes
   * it current, in one synchronous step: a get() sees either the old client
   * or the new one, never neither. Returns the previous client, which is
   * the caller's to drain and close, or undefined when nothing was running
   * (the next start uses the factory anyway). If the new generation fails
   * to start or its check fails, it is closed and the old one keeps
   * serving: the promise rejects with an "upgrade-failed" error, also sent
   * as an event. Upgrades run one at a time.
   */
  upgrade(check: (next: C) => Promise<void>): Promise<{ previous: C; next: C } | undefined> {
    const run = this.upgrading.then(() => this.upgradeNow(check));
    this.upgrading = run.catch(() => undefined);
    return run;
  }

  private async upgradeNow(
    check: (next: C) => Promise<void>,
  ): Promise<{ previous: C; next: C } | undefined> {
    const previous = this.client;
    if (this._state !== "running" || previous === undefined) return undefined;
    const generation = this.epoch;
    let next: C | undefined;
    try {
      next = await this.factory();
      await next.start();
      await check(next);
    } catch (e) {
      await next?.close().catch(() => undefined);
      const message = e instanceof Error ? e.message : String(e);
      const error = new ManagementError(
        "upgrade-failed",
        `upgrading plugin "${this.options.name}" failed, so generation ${this.serial} keeps ` +
          `serving: ${message}`,
        { cause: e },
      );
      this.options.onEvent?.({ type: "upgrade-failed", error });
      throw error;
    }
    if (generation !== this.epoch || this.client !== previous || this._state !== "running") {
      await next.close().catch(() => undefined);
      throw new ManagementError(
        "stopped",
        `plugin "${this.options.name}" was stopped or restarted during its upgrade`,
      );
    }
    this.unwatch();
    this.client = next;
    this.serve(next);
    this.options.onEvent?.({ type: "upgraded", generation: this.serial });
    return { previous, next };
  }

  /** Makes `client` the running one: watches its exit and its liveness. */
  private serve(client: C): void {
    client.onExit((exit) => {
      if (!exit.expected && this.client === client) this.crashed(exit);
    });
    this._state = "running";
    this.serial++;
    const health = client.health?.bind(client);
    if (health !== undefined && this.livenessPolicy.intervalMs > 0) {
      this.liveness = new LivenessWatch(health, this.livenessPolicy, (why) =>
        this.unresponsive(client, why),
      );
    }
  }

  private unwatch(): void {
    this.liveness?.stop();
    this.liveness = undefined;
  }

  /**
   * A running client stopped answering: closed in the background (its close
   * kills it after the grace period, since a hung plugin cannot answer the
   * Shutdown call), and restarted now, counted against the restart budget
   * like a crash.
   */
  private unresponsive(client: C, why: string): void {
    if (this.client !== client || this._state !== "running") return;
    this.unwatch();
    this.client = undefined;
    void client.close().catch(() => undefined);
    this.countCrash(`it stopped answering: ${why}`, (restartInMs) => ({
      type: "unresponsive",
      reason: why,
      restartInMs,
    }));
  }

  private crashed(exit: PluginExit): void {
    this.unwatch();
    this.lastExit = exit;
    const old = this.client;
    this.client = undefined;
    void old?.close().catch(() => undefined);
    const tail = exit.stderrTail.trim();
    this.countCrash(
      `the plugin ${exit.description}` +
        (tail !== "" ? `; last stderr: ${tail.split("\n").slice(-3).join(" | ")}` : ""),
      (restartInMs) => ({ type: "crashed", exit, restartInMs }),
    );
  }

  /**
   * Counts a crash (or a restart that failed to start) against the budget:
   * schedules the next restart with backoff, or gives up for good.
   */
  private countCrash(
    why: string,
    event: (restartInMs: number | undefined) => SupervisorEvent,
  ): void {
    const now = Date.now();
    this.crashes = [...this.crashes.filter((t) => now - t < this.policy.windowMs), now];
    const n = this.crashes.length;
    if (n > this.policy.maxRestarts) {
      this.failure = new ManagementError(
        "restart-budget-exhausted",
        `plugin "${this.options.name}" crashed ${n} time${n === 1 ? "" : "s"} within ` +
          `${this.policy.windowMs / 1000} s, more than its restart budget of ` +
          `${this.policy.maxRestarts}; not restarting it. Last exit: ${why}`,
      );
      this._state = "failed";
      this.pending = undefined;
      this.options.onEvent?.(event(undefined));
      this.options.onEvent?.({ type: "failed", error: this.failure });
      return;
    }
    const delay = Math.min(this.policy.initialBackoffMs * 2 ** (n - 1), this.policy.maxBackoffMs);
    this.options.onEvent?.(event(delay));
    this._restarts++;
    const restart = this.launch(delay);
    this.pending = restart;
    restart.catch((e: unknown) => {
      if (this.pending !== restart) return; // stopped meanwhile
      this.pending = undefined;
      // A restart that cannot start counts against the budget too, so that a
      // plugin crashing at startup is not retried forever.
      const message = e instanceof Error ? e.message : String(e);
      this.countCrash(`its restart failed: ${message}`, (restartInMs) => ({
        type: "restart-failed",
        error: e,
        restartInMs,
      }));
    });
  }

  /** How it last exited, for messages. */
  get exit(): PluginExit | undefined {
    return this.lastExit;
  }
}
