import type { DescMethod } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import type { Endpoint } from "../discovery/discovery.js";
import { plaintextRefusal } from "../security/plaintext.js";
import type { ClientTransport } from "../transport/client-transport.js";
import { createNetworkTransport } from "../transport/framed/network.js";
import { withMaskedCredentials, withoutUserInfo } from "../transport/url-credentials.js";
import { balancerByName, type Balancer } from "./balancer.js";
import { CircuitBreaker, type CircuitBreakerOptions } from "./circuit-breaker.js";
import type { ClusterEvent, ClusterOptions, EndpointStatus } from "./cluster-options.js";
import { HealthMonitor } from "./health-monitor.js";
import {
  NEGOTIATING,
  describeAdmission,
  negotiateInstance,
  negotiatedServices,
  type Admission,
} from "./negotiation.js";
import { neverSent } from "./retry.js";

/** A connection to an instance with its calls in flight; retired ones close once idle. */
export class Connection {
  outstanding = 0;
  retired = false;
  /** A break of this connection has been reported to the breaker. */
  countedBreak = false;
  constructor(readonly client: ClientTransport) {}
  release(): void {
    this.outstanding--;
    if (this.retired && this.outstanding === 0) this.client.close();
  }
  retire(): void {
    this.retired = true;
    if (this.outstanding === 0) this.client.close();
  }
}

export class EndpointState {
  removed = false;
  connection: Connection;
  readonly breaker: CircuitBreaker | undefined;
  health: HealthMonitor | undefined;
  /** Per-instance negotiation; undefined when the cluster negotiates nothing. */
  admission: Admission | undefined;
  negotiationTimer: NodeJS.Timeout | undefined;
  /** Handshakes in a row that got no answer (for the retry backoff). */
  unanswered = 0;
  /** Its first Handshake has been answered or has failed. */
  asked = false;
  /** Aborts a Handshake in flight when the instance leaves. */
  readonly leaving = new AbortController();
  constructor(
    readonly endpoint: Endpoint,
    private readonly connect: () => ClientTransport,
    breaker: CircuitBreakerOptions | false | undefined,
  ) {
    this.connection = new Connection(connect());
    this.breaker = breaker === false ? undefined : new CircuitBreaker(breaker);
  }
  get id(): string {
    return this.endpoint.id;
  }
  get outstanding(): number {
    return this.connection.outstanding;
  }
  get healthy(): boolean {
    return this.health?.healthy ?? true;
  }
  /**
   * Starts a fresh connection for new calls; the old one finishes its calls
   * and closes. Used when the instance looked dead, so that the next calls
   * do not queue on a connection that a partition left hanging.
   */
  reconnect(): void {
    if (this.removed) return;
    const old = this.connection;
    this.connection = new Connection(this.connect());
    old.retire();
  }
  /** May take a call for `service` (a host's plugin service, or anything when `routed` lacks it). */
  admits(service: string, routed: ReadonlySet<string>): boolean {
    const a = this.admission;
    if (a === undefined) return true;
    return a.state === "serving" && (!routed.has(service) || a.services.has(service));
  }
  remove(): void {
    this.removed = true;
    clearTimeout(this.negotiationTimer);
    this.leaving.abort();
    this.health?.stop();
    this.connection.retire();
  }
}

/** An instance reserved for one attempt: release() and report() settle the reservation. */
export interface Picked {
  readonly state: EndpointState;
  readonly connection: Connection;
  readonly report: (failed: boolean | undefined) => void;
}

/**
 * The instances of a cluster as discovery reports them: their connections,
 * health monitors and circuit breakers, which instance takes the next
 * attempt, and why none can. Instances whose URL the plaintext policy
 * refuses never join (and are never dialled).
 */
export class EndpointPool {
  private readonly endpoints = new Map<string, EndpointState>();
  /** Instances gone from discovery whose calls are still running. */
  private readonly leaving = new Set<EndpointState>();
  private readonly balancer: Balancer;
  private closed = false;
  private lastDiscoveryError = "";
  /** The host's plugin services: calls to them go only to instances that announced them. */
  private readonly routed: ReadonlySet<string>;
  /** Calls waiting for an instance to finish its Handshake. */
  private waiters: Array<() => void> = [];

  constructor(
    private readonly options: ClusterOptions,
    private readonly emit: (event: ClusterEvent) => void,
  ) {
    this.balancer = balancerByName(options.balancer ?? "least-outstanding");
    this.routed =
      options.negotiation === undefined ? new Set() : negotiatedServices(options.negotiation);
  }

  /** Every instance's negotiation state, for the cluster's own Handshake answer. */
  admissions(): Admission[] {
    return [...this.endpoints.values()].flatMap((e) => (e.admission ? [e.admission] : []));
  }

  /**
   * Resolves when a call for `service` has something to go by: an instance
   * admitted for it, or no instance whose first Handshake is still to come
   * (then the call fails at once with the reasons: Unavailable, as gRPC
   * fails a call on a channel in transient failure), or no instance at all.
   * An instance whose last Handshake got no answer does not hold calls
   * back: it is retried in the background, and a call must not wait its
   * whole deadline for an instance that may never come up.
   */
  whenSettled(service: string): Promise<void> {
    return this.until(() => this.settled(service));
  }

  /** True when a call for `service` need not wait for a Handshake (see whenSettled). */
  settled(service: string): boolean {
    const states = [...this.endpoints.values()];
    return (
      states.every((e) => e.admission?.state !== "negotiating" || e.unanswered > 0) ||
      states.some((e) => e.admits(service, this.routed))
    );
  }

  /**
   * Resolves when some instance has answered its Handshake (serving or held
   * out), or every instance has failed `attempts` Handshakes in a row: the
   * cluster's own Handshake answer rides out a transient failure at start,
   * and still fails soon when nothing can be reached.
   */
  whenAnswered(attempts: number): Promise<void> {
    return this.until(() => {
      const states = [...this.endpoints.values()];
      return (
        states.some((e) => e.asked && e.admission?.state !== "negotiating") ||
        states.every((e) => e.unanswered >= attempts)
      );
    });
  }

  /**
   * Resolves when every instance has answered (or failed) its first
   * Handshake: the cluster's own Handshake answer waits for that, so that
   * it sees every instance, and the first calls are spread over all of them.
   */
  whenAllAsked(): Promise<void> {
    return this.until(() => [...this.endpoints.values()].every((e) => e.asked));
  }

  private until(done: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.closed || done()) resolve();
        else this.waiters.push(check);
      };
      check();
    });
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  get size(): number {
    return this.endpoints.size;
  }

  /** Remembers a discovery failure, for the message of a call no instance can take. */
  discoveryFailed(message: string): void {
    this.lastDiscoveryError = message;
    this.emit({ type: "discovery-error", message });
  }

  /**
   * Every instance, and those that left discovery while their calls still
   * run (`leaving`), so that an operator can stop an instance once its
   * calls from this host are done.
   */
  status(): EndpointStatus[] {
    for (const e of this.leaving) if (e.outstanding === 0) this.leaving.delete(e);
    return [...this.endpoints.values(), ...this.leaving].map((e) => ({
      id: e.id,
      // For status pages and logs: the user info stays in e.endpoint.url, for the calls.
      url: withMaskedCredentials(e.endpoint.url),
      healthy: e.healthy,
      circuit: e.breaker?.state ?? "closed",
      outstanding: e.outstanding,
      ...(e.removed && { leaving: true }),
      admission: e.admission?.state ?? "serving",
      ...(e.admission?.state === "serving" && { protocolVersion: e.admission.version }),
      ...(e.admission !== undefined &&
        e.admission.state !== "serving" && { reason: e.admission.reason }),
    }));
  }

  close(): void {
    this.closed = true;
    for (const e of this.endpoints.values()) e.remove();
    this.endpoints.clear();
    this.leaving.clear();
    this.wake();
  }

  /**
   * Reports a failed attempt to the instance's breaker. A broken
   * connection fails every call on it at once: that is one failure of the
   * instance, not one per call, so only the first call to notice counts,
   * and it moves new calls to a fresh connection.
   */
  reportFailure(picked: Picked, error: unknown, code: Code, callerGaveUp: boolean): void {
    const { state, connection, report } = picked;
    let failed = !callerGaveUp && (state.breaker?.failureCodes.has(code) ?? false);
    if (failed && code === Code.Unavailable && !neverSent(error)) {
      if (connection === state.connection) state.reconnect();
      else failed = false;
      report(connection.countedBreak ? undefined : true);
      connection.countedBreak = true;
    } else {
      report(failed);
    }
  }

  /** Applies a new list: new instances join, gone ones drain their calls and close. */
  update(list: readonly Endpoint[]): void {
    if (this.closed) return;
    const ids = new Set(list.map((e) => e.id));
    for (const [id, state] of this.endpoints) {
      const now = list.find((e) => e.id === id);
      if (!ids.has(id) || now?.url !== state.endpoint.url) {
        state.remove();
        if (state.outstanding > 0) this.leaving.add(state);
        this.endpoints.delete(id);
      }
    }
    for (const endpoint of list) {
      if (this.endpoints.has(endpoint.id)) continue;
      const refusal = this.refusal(endpoint);
      if (refusal !== undefined) {
        this.discoveryFailed(refusal);
        continue;
      }
      this.endpoints.set(endpoint.id, this.createState(endpoint));
    }
    this.emit({ type: "endpoints", ids: [...this.endpoints.keys()] });
    this.wake();
  }

  /**
   * Handshakes an instance (after `delayMs`) and records its admission;
   * asks again later while it is held out or does not answer.
   */
  private negotiate(state: EndpointState, delayMs: number): void {
    const negotiation = this.options.negotiation;
    if (negotiation === undefined || state.removed) return;
    clearTimeout(state.negotiationTimer);
    state.negotiationTimer = setTimeout(() => {
      void negotiateInstance(
        state.connection.client.transport,
        negotiation,
        state.leaving.signal,
        new URL(state.endpoint.url),
      ).then((admission) => {
        if (state.removed || this.closed) return;
        state.asked = true;
        const was = state.admission;
        // A check of a serving instance that got no answer changes nothing:
        // its health checks decide whether it takes calls.
        if (admission.state === "negotiating" && was?.state === "serving") return;
        state.admission = admission;
        const retryMs = negotiation.retryMs ?? 5_000;
        if (admission.state === "serving") {
          state.unanswered = 0;
          if (was?.state !== "serving" || was.version !== admission.version) {
            this.emit({ type: "negotiated", id: state.id, version: admission.version });
          }
        } else if (admission.state === "held-out") {
          state.unanswered = 0;
          if (was?.state !== "held-out" || was.reason !== admission.reason) {
            this.emit({ type: "held-out", id: state.id, reason: admission.reason });
          }
          this.negotiate(state, retryMs);
        } else {
          state.unanswered++;
          this.negotiate(state, Math.min(retryMs, 200 * 2 ** (state.unanswered - 1)));
        }
        this.wake();
      });
    }, delayMs);
  }

  /** Why an instance must not be dialled, if it must not. */
  private refusal(endpoint: Endpoint): string | undefined {
    let url: URL;
    // The URL's password (sent as Basic auth) is shown in no message.
    const shown = withoutUserInfo(endpoint.url);
    try {
      url = new URL(endpoint.url);
    } catch {
      return `instance ${endpoint.id} has an invalid URL ${JSON.stringify(shown)}`;
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      return `instance ${endpoint.id}: URL must be http:// or https://, got ${shown}`;
    }
    return plaintextRefusal(url, this.options.allowPlaintext ?? false, `instance ${shown}`);
  }

  private createState(endpoint: Endpoint): EndpointState {
    const url = new URL(endpoint.url);
    const dial = (): ClientTransport =>
      createNetworkTransport(url, {
        transport: this.options.transport ?? (this.options.protocol ? "http" : "auto"),
        log: (reason) => this.emit({ type: "http-fallback", id: endpoint.id, reason }),
        protocol: this.options.protocol ?? "connect",
        httpVersion: "2",
        interceptors: [...(this.options.interceptors ?? [])],
        ...(url.protocol === "https:" &&
          this.options.tls !== undefined && { tls: this.options.tls }),
        ...(this.options.readMaxBytes !== undefined && { readMaxBytes: this.options.readMaxBytes }),
        ...(this.options.writeMaxBytes !== undefined && {
          writeMaxBytes: this.options.writeMaxBytes,
        }),
      });
    const onConnection = this.options.onConnection;
    const connect = (): ClientTransport => {
      const client = dial();
      if (onConnection === undefined) return client;
      const closed = onConnection(client.transport, endpoint.url);
      return {
        ...client,
        close: (reason) => {
          closed();
          client.close(reason);
        },
      };
    };
    const state = new EndpointState(endpoint, connect, this.options.circuitBreaker);
    if (this.options.negotiation !== undefined) {
      state.admission = NEGOTIATING;
      this.negotiate(state, 0);
    }
    if (state.breaker !== undefined) {
      state.breaker.onStateChange = (circuit) => {
        if (circuit === "open") state.reconnect();
        this.emit({ type: "circuit", id: endpoint.id, state: circuit });
      };
    }
    const health = this.options.health;
    if (health !== false) {
      // The monitor checks over its own connection, so that a backlog of
      // calls on the main one cannot make a healthy instance look dead.
      const probe = dial();
      state.health = new HealthMonitor(endpoint.id, probe.transport, health ?? {}, (healthy) => {
        if (!healthy) state.reconnect();
        // Back from unhealthy, it may be another process (restarted,
        // upgraded in place): it is handshaken again. A serving instance
        // keeps serving meanwhile (holding it out would slow failover back
        // to it); the answer replaces its admission when it comes.
        if (healthy && state.admission !== undefined) this.negotiate(state, 0);
        this.emit(
          healthy
            ? { type: "healthy", id: endpoint.id }
            : { type: "unhealthy", id: endpoint.id, reason: state.health?.lastError ?? "" },
        );
      });
      const stop = state.health.stop.bind(state.health);
      state.health.stop = () => {
        stop();
        probe.close();
      };
      state.health.start();
    }
    return state;
  }

  /**
   * Picks an instance that may take a call now and reserves it (a half-open
   * probe slot, an outstanding call). Prefers instances not tried yet.
   */
  pick(tried: ReadonlySet<string>, service: string): Picked | undefined {
    for (let round = 0; round < 3; round++) {
      const usable = [...this.endpoints.values()].filter(
        (e) =>
          !e.removed &&
          e.admits(service, this.routed) &&
          e.healthy &&
          (e.breaker?.canPass() ?? true),
      );
      const fresh = usable.filter((e) => !tried.has(e.id));
      const candidates = fresh.length > 0 ? fresh : usable;
      if (candidates.length === 0) return undefined;
      const state = this.balancer.pick(candidates);
      const report = state.breaker === undefined ? () => {} : state.breaker.acquire();
      if (report === undefined) continue;
      const connection = state.connection;
      connection.outstanding++;
      return { state, connection, report };
    }
    return undefined;
  }

  /** Why no instance could take the call, instance by instance. */
  noInstanceMessage(method: DescMethod): string {
    const states = [...this.endpoints.values()];
    const why =
      states.length === 0
        ? `discovery (${this.options.discovery.description}) found no instances` +
          (this.lastDiscoveryError ? `; last discovery error: ${this.lastDiscoveryError}` : "")
        : states.map((e) => `${e.id} ${this.whyNot(e, method.parent.typeName)}`).join("; ");
    return `no instance of ${this.options.discovery.description} can take ${methodName(method)}: ${why}`;
  }

  private whyNot(e: EndpointState, service: string): string {
    const a = e.admission;
    if (a !== undefined && a.state !== "serving") return describeAdmission(a);
    if (!e.admits(service, this.routed) && a?.state === "serving") {
      return `serves protocol version ${a.version} without ${service}`;
    }
    return e.healthy
      ? `circuit ${e.breaker?.state ?? "closed"}`
      : `unhealthy (${e.health?.lastError ?? ""})`;
  }
}

export function methodName(method: DescMethod): string {
  return `${method.parent.typeName}/${method.name}`;
}
