import type { PluginExit } from "../host/launcher.js";
import { ManagementError } from "../manifest/errors.js";

/** What the Supervisor needs of a client: PluginClient has all of it. */
export interface SupervisedClient {
  start(): Promise<void>;
  close(): Promise<void>;
  onExit(listener: (exit: PluginExit) => void): () => void;
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
  private generation = 0;
  private _restarts = 0;
  private readonly policy: Required<RestartPolicy>;

  constructor(
    private readonly factory: () => C | Promise<C>,
    private readonly options: {
      readonly name: string;
      readonly restart?: RestartPolicy;
      readonly onEvent?: (event: SupervisorEvent) => void;
    },
  ) {
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
    const wasBackoff = this._state === "backoff";
    this.generation++;
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
    const generation = this.generation;
    const stale = () => generation !== this.generation;
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
    client.onExit((exit) => {
      if (!exit.expected && this.client === client) this.crashed(exit);
    });
    this._state = "running";
    this.options.onEvent?.({
      type: "started",
      restarts: this._restarts,
      startMs: performance.now() - startedAt,
    });
    return client;
  }

  private crashed(exit: PluginExit): void {
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
