/**
 * connect-plugin/cluster: the building blocks of a cluster source, for
 * authors of libraries and of their own resilience or discovery.
 *
 * A host author does not need this entry: `cluster({ discovery, retry,
 * circuitBreaker, health, balancer })` from `connect-plugin` builds all of
 * it. Import from here to use a part on its own: a {@link ClusterTransport}
 * as a plain Connect transport, a {@link CircuitBreaker} or
 * {@link RetryPolicy} around other calls, a {@link HealthMonitor}, a
 * balancer, or your own {@link Discovery}.
 *
 * Like connect-es's `@connectrpc/connect/protocol`, these symbols are meant
 * for code that builds on connect-plugin rather than for applications, and
 * they may change in a minor release more readily than the root entry.
 */
export { ClusterTransport } from "./resilience/cluster-transport.js";
export type {
  ClusterEvent,
  ClusterOptions,
  ClusterTls,
  EndpointStatus,
} from "./resilience/cluster-options.js";
export { decideRetry } from "./resilience/retry-decision.js";
export type { FailedAttempt, RetryDecision } from "./resilience/retry-decision.js";
export { CircuitBreaker } from "./resilience/circuit-breaker.js";
export type { CircuitBreakerOptions, CircuitState } from "./resilience/circuit-breaker.js";
export { RetryBudget, RetryPolicy, neverSent } from "./resilience/retry.js";
export type { RetryBudgetOptions, RetryOptions } from "./resilience/retry.js";
export { HealthMonitor } from "./resilience/health-monitor.js";
export type { HealthOptions } from "./resilience/health-monitor.js";
export { leastOutstanding, roundRobin } from "./resilience/balancer.js";
export type { BalancedEndpoint, Balancer, BalancerName } from "./resilience/balancer.js";
export { StaticDiscovery, staticEndpoints } from "./discovery/discovery.js";
export type { Discovery, Endpoint } from "./discovery/discovery.js";
export { isLoopbackHost, plaintextRefusal } from "./security/plaintext.js";
