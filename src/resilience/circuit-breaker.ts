import { Code } from "@connectrpc/connect";

/**
 * Settings for a per-endpoint circuit breaker. The defaults suit plugins
 * that answer in milliseconds: five failures in a row open the circuit for
 * two seconds, then one probe call decides.
 */
export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit. Default 5. */
  readonly failureThreshold?: number;
  /** How long an open circuit rejects calls before it lets probes through. Default 2,000 ms. */
  readonly openMs?: number;
  /** Probe calls allowed at once while half-open. Default 1. */
  readonly halfOpenProbes?: number;
  /** Successful probes that close the circuit again. Default 1. */
  readonly successThreshold?: number;
  /**
   * Codes that count as the endpoint failing. Errors the plugin answers on
   * purpose (NotFound, InvalidArgument, ...) prove that it works, so they
   * count as successes. Default: Unavailable, DeadlineExceeded.
   */
  readonly failureCodes?: readonly Code[];
}

export type CircuitState = "closed" | "open" | "half-open";

/**
 * Closed → open → half-open, per endpoint. A small module rather than
 * cockatiel's breaker because the balancer must ask "may this endpoint take
 * a call now?" without making one, and must reserve a half-open probe slot
 * when it picks the endpoint; cockatiel's policy only wraps a function call.
 */
export class CircuitBreaker {
  private stateValue: CircuitState = "closed";
  private failures = 0;
  private successes = 0;
  private openedAt = 0;
  private probes = 0;
  private readonly failureThreshold: number;
  private readonly openMs: number;
  private readonly halfOpenProbes: number;
  private readonly successThreshold: number;
  readonly failureCodes: ReadonlySet<Code>;
  /** Called on every state change. */
  onStateChange: (state: CircuitState) => void = () => {};

  constructor(
    options: CircuitBreakerOptions = {},
    private readonly now: () => number = Date.now,
  ) {
    this.failureThreshold = options.failureThreshold ?? 5;
    this.openMs = options.openMs ?? 2_000;
    this.halfOpenProbes = options.halfOpenProbes ?? 1;
    this.successThreshold = options.successThreshold ?? 1;
    this.failureCodes = new Set(options.failureCodes ?? [Code.Unavailable, Code.DeadlineExceeded]);
  }

  /** The state now; an open circuit whose time is up reads as half-open. */
  get state(): CircuitState {
    if (this.stateValue === "open" && this.now() - this.openedAt >= this.openMs) {
      this.set("half-open");
    }
    return this.stateValue;
  }

  /** Whether a call may go to this endpoint now, without reserving anything. */
  canPass(): boolean {
    const state = this.state;
    return state === "closed" || (state === "half-open" && this.probes < this.halfOpenProbes);
  }

  /**
   * Reserves the right to make one call. Returns a function to report its
   * outcome (`undefined`: it says nothing about the endpoint, e.g. a second
   * call broken by the same connection failure), or undefined when the
   * circuit rejects the call.
   */
  acquire(): ((failed: boolean | undefined) => void) | undefined {
    if (!this.canPass()) return undefined;
    const probe = this.stateValue === "half-open";
    if (probe) this.probes++;
    let reported = false;
    return (failed) => {
      if (reported) return;
      reported = true;
      if (probe) this.probes--;
      if (failed === true) this.failure(probe);
      else if (failed === false) this.success(probe);
    };
  }

  private success(probe: boolean): void {
    this.failures = 0;
    if (probe && this.stateValue === "half-open" && ++this.successes >= this.successThreshold) {
      this.set("closed");
    }
  }

  private failure(probe: boolean): void {
    if (this.stateValue === "open") return;
    if (probe || this.stateValue === "half-open" || ++this.failures >= this.failureThreshold) {
      this.openedAt = this.now();
      this.set("open");
    }
  }

  private set(state: CircuitState): void {
    if (state === this.stateValue) return;
    this.stateValue = state;
    this.failures = 0;
    this.successes = 0;
    this.onStateChange(state);
  }
}
