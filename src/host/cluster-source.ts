import type { Discovery, Endpoint } from "../discovery/discovery.js";
import { staticEndpoints } from "../discovery/discovery.js";
import type { ClusterOptions } from "../resilience/cluster-transport.js";
import type { InProcessSource, RemoteSource } from "./sources.js";

/**
 * A plugin served by a pool of instances (sidecars, a Kubernetes service, a
 * fleet registered in etcd). The host dispenses the same typed client as for
 * any other source; behind it, every call picks a healthy instance, gets
 * retried when that is safe, and fails over.
 */
export interface ClusterSource extends Omit<ClusterOptions, "fallback"> {
  readonly kind: "cluster";
  /**
   * Used when no instance can take a call: an in-process implementation or
   * another remote plugin. Non-idempotent calls that may have reached an
   * instance never fall back.
   */
  readonly fallback?: InProcessSource | RemoteSource;
}

/**
 * `cluster({ discovery: dnsSrv("_kv._tcp.plugins.internal"), balancer: "round-robin" })`,
 * or `cluster(["http://127.0.0.1:8081", "http://127.0.0.1:8082"])` for a static list.
 */
export function cluster(
  options:
    | (Omit<ClusterSource, "kind" | "discovery"> & { discovery: Discovery })
    | readonly (string | Endpoint)[],
): ClusterSource {
  if (isEndpointList(options)) return { kind: "cluster", discovery: staticEndpoints(options) };
  return { kind: "cluster", ...options };
}

function isEndpointList(
  options: object | readonly (string | Endpoint)[],
): options is readonly (string | Endpoint)[] {
  return Array.isArray(options);
}
