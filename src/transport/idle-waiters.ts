/**
 * Callers waiting for some count of work to reach zero, each for at most a
 * given time. Shared by the plugin's CallTracker and the host's CallGuard, so it lives
 * below both.
 */
export class IdleWaiters {
  private waiters: Array<() => void> = [];

  /** Resolves at the next wake(), or after `ms`. */
  wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Releases everyone waiting. */
  wake(): void {
    if (this.waiters.length === 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}
