import { createNetworkTransport } from "../../transport/framed/network.js";
import { hostRecord } from "../../logging/logger.js";
import { CallGuard } from "../call-guard.js";
import type { RemoteSource } from "../sources.js";
import type { Connector } from "./connector.js";

/**
 * Connects to a plugin that already runs as a service at a URL. The host
 * owns nothing there: close() only disconnects.
 */
export const connectRemote: Connector<RemoteSource> = (source, context) => {
  const guard = new CallGuard(context.label, () => transport.isBroken());
  const transport = createNetworkTransport(source.url, {
    transport: source.transport ?? "auto",
    log: (message) => context.logger.log(hostRecord(context.name, "info", message)),
    protocol: source.protocol,
    httpVersion: source.httpVersion,
    interceptors: [...context.interceptors, guard.interceptor],
    ...(source.tls !== undefined && { tls: source.tls }),
  });
  return Promise.resolve({ transport, guard, process: undefined, server: undefined });
};
