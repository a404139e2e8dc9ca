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
  PluginHealth,
  PluginInfo,
  PluginName,
} from "./host/plugin-client.js";
export { inProcess, remote, subprocess } from "./host/sources.js";
export type {
  ClientTls,
  InProcessSource,
  PluginSource,
  RemoteSource,
  SubprocessSource,
} from "./host/sources.js";
export type { BoundAddress, ServerTls } from "./transport/http-server.js";
export type { PluginServerOptions } from "./plugin/plugin-server.js";
export type { PluginExit } from "./host/launcher.js";

export { serve, EXIT_NOT_LAUNCHED_BY_HOST } from "./plugin/serve.js";
export type { ServeHandle, ServeOptions } from "./plugin/serve.js";
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
