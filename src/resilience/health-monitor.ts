import { createClient, type Transport } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../gen/grpc/health/v1/health_pb.js";

/** Settings for the continuous health check of each endpoint. */
export interface HealthOptions {
  /** Time between checks. Default 1,000 ms. */
  readonly intervalMs?: number;
  /** Time a check may take. Default 500 ms. */
  readonly timeoutMs?: number;
  /** Failed checks in a row that make a healthy endpoint unhealthy. Default 2. */
  readonly failureThreshold?: number;
  /** Passed checks in a row that make an unhealthy endpoint healthy. Default 1. */
  readonly successThreshold?: number;
  /** The grpc.health.v1 service name to check; "" (the default) asks about the whole server. */
  readonly service?: string;
  readonly onHealthy?: (endpointId: string) => void;
  readonly onUnhealthy?: (endpointId: string, reason: string) => void;
}

/**
 * Checks one endpoint with grpc.health.v1 Health/Check on a timer and keeps
 * a healthy/unhealthy verdict with hysteresis (failure and success
 * thresholds), so that one slow check does not eject an instance and one
 * lucky check does not readmit a broken one. An endpoint starts healthy:
 * calls may go to it before the first check, and the circuit breaker covers
 * that window.
 */
export class HealthMonitor {
  private healthyValue = true;
  private failures = 0;
  private successes = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly abort = new AbortController();
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private readonly failureThreshold: number;
  private readonly successThreshold: number;
  /** Why the last check failed. */
  lastError = "";

  constructor(
    readonly endpointId: string,
    private readonly transport: Transport,
    private readonly options: HealthOptions = {},
    /** Also told about every verdict change (the cluster's own bookkeeping). */
    private readonly onChange: (healthy: boolean) => void = () => {},
  ) {
    this.intervalMs = options.intervalMs ?? 1_000;
    this.timeoutMs = options.timeoutMs ?? 500;
    this.failureThreshold = options.failureThreshold ?? 2;
    this.successThreshold = options.successThreshold ?? 1;
  }

  get healthy(): boolean {
    return this.healthyValue;
  }

  start(): void {
    if (this.timer !== undefined || this.abort.signal.aborted) return;
    const loop = async (): Promise<void> => {
      await this.checkOnce();
      if (!this.abort.signal.aborted) this.timer = setTimeout(() => void loop(), this.intervalMs);
    };
    this.timer = setTimeout(() => void loop(), 0);
  }

  stop(): void {
    this.abort.abort();
    clearTimeout(this.timer);
  }

  /** Runs one check now and updates the verdict. Resolves with the check's result. */
  async checkOnce(): Promise<boolean> {
    let ok: boolean;
    try {
      const res = await createClient(Health, this.transport).check(
        { service: this.options.service ?? "" },
        { timeoutMs: this.timeoutMs, signal: this.abort.signal },
      );
      ok = res.status === ServingStatus.SERVING;
      if (!ok) this.lastError = `health check answered ${ServingStatus[res.status]}`;
    } catch (error) {
      ok = false;
      this.lastError = `health check failed: ${error instanceof Error ? error.message : String(error)}`;
    }
    if (this.abort.signal.aborted) return ok;
    this.record(ok);
    return ok;
  }

  /** Feeds one outcome into the thresholds. */
  record(ok: boolean): void {
    if (ok) {
      this.failures = 0;
      if (!this.healthyValue && ++this.successes >= this.successThreshold) this.set(true);
    } else {
      this.successes = 0;
      if (this.healthyValue && ++this.failures >= this.failureThreshold) this.set(false);
    }
  }

  private set(healthy: boolean): void {
    this.healthyValue = healthy;
    this.failures = 0;
    this.successes = 0;
    this.onChange(healthy);
    if (healthy) this.options.onHealthy?.(this.endpointId);
    else this.options.onUnhealthy?.(this.endpointId, this.lastError);
  }
}
