import type { Interceptor } from "@connectrpc/connect";
import { ClusterTransport } from "../../resilience/cluster-transport.js";
import {
  createInProcessTransport,
  type ClientTransport,
} from "../../transport/client-transport.js";
import { createNetworkTransport } from "../../transport/framed/network.js";
import { hostRecord, type Logger } from "../../logging/logger.js";
import { PluginServer } from "../../plugin/plugin-server.js";
import { CallGuard } from "../call-guard.js";
import { checkRemoteSource, type ClusterSource } from "../sources.js";
import type { ConnectContext, Connector } from "./connector.js";
import type { InstanceNegotiation } from "../../resilience/negotiation.js";

/**
 * Connects to a cluster source: the cluster
 * transport, wrapped as a ClientTransport whose close() stops discovery and
 * health checks and fails the calls still in flight. The guard sees no
 * calls (the cluster names the failing instance in its errors itself); it
 * is there because PluginClient keeps one per source.
 */
export const connectCluster: Connector<ClusterSource> = (source, context) =>
  Promise.resolve(
    clusterParts(
      source,
      context.interceptors,
      context.label,
      context.gracePeriodMs,
      context.logger,
      context.tunnel,
      negotiationFor(source, context),
    ),
  );

/** What every instance is handshaken with: the client's versions and plugin sets. */
function negotiationFor(
  source: ClusterSource,
  context: ConnectContext,
): InstanceNegotiation | undefined {
  if (source.negotiation === false) return undefined;
  const plugins = new Map<number, Record<string, string>>();
  for (const [version, set] of context.pluginSets) {
    plugins.set(
      version,
      Object.fromEntries(Object.entries(set).map(([name, service]) => [name, service.typeName])),
    );
  }
  return { versions: context.hostVersions, plugins, ...source.negotiation };
}

function clusterParts(
  source: ClusterSource,
  interceptors: readonly Interceptor[],
  label: string,
  gracePeriodMs: number,
  logger: Logger,
  tunnel: ConnectContext["tunnel"],
  negotiation: InstanceNegotiation | undefined,
): { transport: ClientTransport; guard: CallGuard; process: undefined; server: undefined } {
  let fallback: ClientTransport | undefined;
  let fallbackServer: PluginServer | undefined;
  if (source.fallback?.kind === "in-process") {
    fallbackServer = new PluginServer(source.fallback.definition, {
      gracePeriodMs,
      log: (level, message, fields = {}) =>
        logger.log({
          level,
          message,
          plugin: label,
          source: "in-process",
          fields,
          time: new Date(),
        }),
    });
    fallback = createInProcessTransport(fallbackServer, { interceptors: [...interceptors] });
  } else if (source.fallback?.kind === "remote") {
    checkRemoteSource(source.fallback);
    // The fallback stands in for the cluster's instances, so it gets the
    // cluster's interceptors (its credentials) too.
    fallback = createNetworkTransport(source.fallback.url, {
      transport: source.fallback.transport ?? "auto",
      log: (message) => logger.log(hostRecord(label, "info", message)),
      protocol: source.fallback.protocol,
      httpVersion: source.fallback.httpVersion,
      interceptors: [...(source.interceptors ?? []), ...interceptors],
      ...(source.fallback.tls !== undefined && { tls: source.fallback.tls }),
    });
  }
  const guard = new CallGuard(label, () => false, undefined, false);
  const { fallback: _ignored, kind: _kind, negotiation: _n, ...options } = source;
  const cluster = new ClusterTransport({
    ...options,
    ...(negotiation !== undefined && { negotiation }),
    interceptors: [...(source.interceptors ?? []), ...interceptors],
    ...(fallback !== undefined && { fallback: fallback.transport }),
    ...(tunnel !== undefined && { onConnection: tunnel }),
  });
  return {
    transport: {
      transport: cluster,
      close: (reason) => {
        cluster.close();
        fallback?.close(reason);
        void fallbackServer?.shutdown("host closed the plugin client");
      },
      isBroken: () => false,
    },
    guard,
    process: undefined,
    server: undefined,
  };
}
