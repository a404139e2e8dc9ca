import type { Interceptor, Transport } from "@connectrpc/connect";
import type { Discovery } from "../discovery/discovery.js";
import type { RpcProtocol } from "../transport/client-transport.js";
import type { NetworkTransport } from "../transport/framed/network.js";
import type { Balancer, BalancerName } from "./balancer.js";
import type { CircuitBreakerOptions, CircuitState } from "./circuit-breaker.js";
import type { HealthOptions } from "./health-monitor.js";
import type { InstanceNegotiation } from "./negotiation.js";
import type { RetryOptions } from "./retry.js";

/** TLS for the connections to every instance, as PEM. */
export interface ClusterTls {
  readonly ca?: string | Buffer;
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
}

/**
 * Options for a {@link ClusterTransport}: where the instances come from and
 * how calls are spread over them and protected from their failures. Every
 * part has defaults; `false` turns retries, circuit breaking or health
 * checks off.
 */
export interface ClusterOptions {
  readonly discovery: Discovery;
  /** Default "least-outstanding". */
  readonly balancer?: BalancerName | Balancer;
  readonly retry?: RetryOptions | false;
  readonly circuitBreaker?: CircuitBreakerOptions | false;
  readonly health?: HealthOptions | false;
  /**
   * Deadline for calls made without one (a timeoutMs of 0 or less is none,
   * as connect-es reads it). Default 30,000 ms: a call through a cluster
   * always has a deadline, because a partitioned instance would otherwise
   * hold it forever.
   */
  readonly defaultTimeoutMs?: number;
  /**
   * Time one attempt may take, within the call's deadline, so that an
   * idempotent call stuck on a partitioned instance still has time to fail
   * over. Only idempotent calls are cut short this way: a call that will
   * not be retried gets the whole deadline. Default: the whole deadline.
   */
  readonly attemptTimeoutMs?: number;
  /** Default "connect". */
  readonly protocol?: RpcProtocol;
  /**
   * How instances are reached: "auto" asks each for the framed protocol
   * (connect-plugin servers speak it on their network port) and falls back
   * to HTTP/2 for those that do not; "framed" requires it; "http" never
   * asks. Default "auto", or "http" when `protocol` is set.
   */
  readonly transport?: NetworkTransport;
  readonly tls?: ClusterTls;
  /** Needed for http:// endpoints that are not loopback addresses. */
  readonly allowPlaintext?: boolean;
  /** Run on every call to every instance (auth, tracing). */
  readonly interceptors?: readonly Interceptor[];
  readonly readMaxBytes?: number;
  readonly writeMaxBytes?: number;
  /**
   * Where calls go when no instance can take them (or all attempts failed in
   * a way that allows another try): another plugin's transport, or an
   * in-process implementation. A non-idempotent call that may have reached
   * an instance never falls back, since it might then run twice.
   */
  readonly fallback?: Transport;
  /**
   * Called for each connection to an instance (health probes aside) with its
   * transport; the function it returns runs when that connection closes.
   * PluginClient opens its host-services tunnel here, so that every instance
   * can call the host back (docs/callbacks.md).
   */
  readonly onConnection?: (transport: Transport, instance: string) => () => void;
  /** Told about endpoint, health and circuit changes. */
  readonly onEvent?: (event: ClusterEvent) => void;
  /**
   * Handshake every instance before it takes calls (and again when it
   * recovers from being unhealthy), hold out the ones that cannot serve
   * these versions and plugins, and send a call for a plugin's service only
   * to instances that announced it. A PluginClient's cluster source sets it
   * from the client's plugin sets; without it (a bare ClusterTransport),
   * every instance takes every call.
   */
  readonly negotiation?: InstanceNegotiation;
}

export type ClusterEvent =
  | { readonly type: "endpoints"; readonly ids: readonly string[] }
  | { readonly type: "healthy" | "unhealthy"; readonly id: string; readonly reason?: string }
  | { readonly type: "circuit"; readonly id: string; readonly state: CircuitState }
  /** A call failed on one attempt and is tried again; `method` is "Service/Method". */
  | { readonly type: "retry"; readonly method: string; readonly attempt: number }
  /** A call that would have been tried again was not: the retry budget is spent. */
  | { readonly type: "retry-refused"; readonly method: string }
  | { readonly type: "discovery-error"; readonly message: string }
  /** An instance answered its Handshake and takes calls at `version`. */
  | { readonly type: "negotiated"; readonly id: string; readonly version: number }
  /** An instance answered, but cannot serve this host: it takes no calls. */
  | { readonly type: "held-out"; readonly id: string; readonly reason: string }
  /** With transport "auto": an instance does not speak the framed protocol and is called over HTTP. */
  | { readonly type: "http-fallback"; readonly id: string; readonly reason: string };

/** What the cluster knows about one instance, for diagnostics and tests. */
export interface EndpointStatus {
  readonly id: string;
  /** The instance's URL, its password (or a user name given without one) shown as `***`: calls still send it. */
  readonly url: string;
  readonly healthy: boolean;
  readonly circuit: CircuitState;
  readonly outstanding: number;
  /** Gone from discovery; listed until its calls in flight have ended. */
  readonly leaving?: true;
  /**
   * Per-instance negotiation: "negotiating" (no answer yet), "serving", or
   * "held-out" (cannot serve this host; `reason` says why). "serving" when
   * the cluster negotiates nothing.
   */
  readonly admission: "negotiating" | "serving" | "held-out";
  /** The protocol version the instance agreed, when serving after a Handshake. */
  readonly protocolVersion?: number;
  /** Why the instance is negotiating or held out. */
  readonly reason?: string;
}
