/**
 * When a running plugin counts as hung: alive (its process has not exited)
 * but no longer answering. A crash shows itself by an exit; a plugin whose
 * event loop is blocked, or that deadlocked, shows itself only by silence,
 * so the supervisor asks it for its health at an interval.
 */
export interface LivenessPolicy {
  /** How often to ask. Default 5 s; 0 turns liveness checks off. */
  readonly intervalMs?: number;
  /** How long one health check may take before it counts as failed. Default 3 s. */
  readonly timeoutMs?: number;
  /**
   * Consecutive failed checks (no answer in time, or any answer but
   * serving) after which the plugin is restarted. Default 3: so a hung
   * plugin is restarted within about `failures × intervalMs + timeoutMs`
   * (18 s with the defaults).
   */
  readonly failures?: number;
}

export const defaultLiveness: Required<LivenessPolicy> = {
  intervalMs: 5_000,
  timeoutMs: 3_000,
  failures: 3,
};

/**
 * Asks one running plugin for its health every `intervalMs` (never two
 * checks at once: the next is scheduled when one ends), and calls
 * `unresponsive` once, after `failures` checks in a row failed.
 */
export class LivenessWatch {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private failed = 0;

  constructor(
    private readonly check: (timeoutMs: number) => Promise<string>,
    private readonly policy: Required<LivenessPolicy>,
    private readonly unresponsive: (why: string) => void,
  ) {
    if (policy.intervalMs > 0) this.schedule();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.probe(), this.policy.intervalMs);
    this.timer.unref();
  }

  private async probe(): Promise<void> {
    const status = await this.check(this.policy.timeoutMs).catch(() => "unknown");
    if (this.stopped) return;
    if (status === "serving") {
      this.failed = 0;
    } else if (++this.failed >= this.policy.failures) {
      this.stopped = true;
      this.unresponsive(
        `${this.failed} health checks in a row failed (every ${this.policy.intervalMs} ms, ` +
          `${this.policy.timeoutMs} ms each; last answer: ${status === "unknown" ? "none in time" : status})`,
      );
      return;
    }
    this.schedule();
  }
}
