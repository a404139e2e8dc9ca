/**
 * connect-plugin: plugins for Node.js hosts over Connect RPC, with one typed
 * interface whether a plugin runs in process, as a subprocess, or as a
 * remote service.
 *
 * Host side: {@link PluginClient} with a source from {@link subprocess},
 * {@link remote} or {@link inProcess}. Plugin side: {@link serve} with a
 * {@link PluginDefinition} built from {@link implement}.
 */
export { PluginClient } from "./host/plugin-client.js";
export type {
  DispensedClient,
  PluginClientOptions,
  PluginClientStatus,
  PluginHealth,
  PluginInfo,
  PluginName,
} from "./host/plugin-client.js";
export type { ResourceLimits } from "./host/resource-limits.js";
export { inProcess, reattach, remote, subprocess } from "./host/sources.js";
export { parseReattach, REATTACH_ENV, type ReattachConfig } from "./protocol/reattach.js";
export type {
  ClientTls,
  InProcessSource,
  PluginSource,
  RemoteSource,
  SubprocessSource,
  ReattachSource,
} from "./host/sources.js";
export type { ServerTls } from "./transport/http-server.js";
export type { BoundAddress } from "./transport/listen.js";
export type { PluginServerOptions } from "./plugin/plugin-server.js";
export type { PluginExit } from "./host/launcher.js";

export { serve, EXIT_CANNOT_SERVE, EXIT_NOT_LAUNCHED_BY_HOST } from "./plugin/serve.js";
export type { ServeHandle, ServeOptions } from "./plugin/serve.js";
export { hostClient } from "./plugin/host-sessions.js";
export type { CorsOptions } from "./security/cors.js";
export { pluginLog } from "./plugin/plugin-log.js";

export { implement } from "./protocol/plugin-set.js";
export type {
  HandshakeConfig,
  PluginDefinition,
  PluginImplementation,
  PluginImplementations,
  PluginSet,
  VersionedPluginSets,
} from "./protocol/plugin-set.js";
export { PluginError } from "./protocol/errors.js";
export type { PluginErrorKind } from "./protocol/errors.js";
export type { RpcProtocol } from "./transport/client-transport.js";
export type { LocalTransport } from "./protocol/env.js";

export { silentLogger, stderrLogger } from "./logging/logger.js";
export type { Logger, LogLevel, LogRecord } from "./logging/logger.js";

// Remote-first: a plugin served by a pool of instances, and where the pool
// comes from. The parts a cluster is built from (ClusterTransport, breaker,
// retry policy, health monitor, balancers) are in `connect-plugin/cluster`.
export { cluster } from "./host/sources.js";
export type { ClusterSource } from "./host/sources.js";
export { staticEndpoints } from "./discovery/discovery.js";
export type { Discovery, Endpoint } from "./discovery/discovery.js";
export type { ClusterEvent, ClusterTls, EndpointStatus } from "./resilience/cluster-options.js";
export type { CircuitBreakerOptions, CircuitState } from "./resilience/circuit-breaker.js";
export type { RetryBudgetOptions, RetryOptions } from "./resilience/retry.js";
export type { HealthOptions } from "./resilience/health-monitor.js";
export type { BalancedEndpoint, Balancer, BalancerName } from "./resilience/balancer.js";
export { dnsSrv } from "./discovery/dns-srv.js";
export type { DnsSrvOptions } from "./discovery/dns-srv.js";
export { kubernetesDiscovery } from "./discovery/kubernetes.js";
export type { KubeConfigLike, KubernetesDiscoveryOptions } from "./discovery/kubernetes.js";
export { etcdDiscovery, registerInEtcd } from "./discovery/etcd.js";
export type {
  EtcdClientOptions,
  EtcdDiscoveryOptions,
  EtcdRegistration,
  EtcdRegistrationOptions,
} from "./discovery/etcd.js";
export {
  apiKeyAuth,
  bearerAuth,
  requireApiKey,
  requireBearer,
  verifiedPrincipal,
} from "./security/auth.js";
export { rateLimit } from "./security/rate-limit.js";
export type { RateLimitOptions } from "./security/rate-limit.js";
export { clientAddress } from "./transport/client-address.js";
export { tlsFromFiles } from "./security/tls-files.js";

// go-plugin interoperability (docs/go-plugin.md).
export { goPluginBroker } from "./plugin/goplugin-serve.js";
export type { GrpcBroker } from "./transport/goplugin-broker.js";
export type { BrokeredService } from "./transport/goplugin-broker.js";
export { GoPluginClient } from "./host/goplugin-client.js";
export type { GoPluginClientOptions } from "./host/goplugin-client.js";
export { generateAutoMtlsCertificate, type AutoMtlsCertificate } from "./security/auto-mtls.js";

// A live status page for a host's plugins (docs/status-page.md).
export { statusPage } from "./status/status-page.js";
export type { StatusPageOptions } from "./status/status-page.js";
export type {
  PluginStatus,
  StatusReporter,
  StatusSnapshot,
  StatusSource,
  WatchedClient,
} from "./status/snapshot.js";
export { CallStats } from "./host/call-stats.js";
export type { CallStatsOptions, MethodStats } from "./host/call-stats.js";
