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

export { silentLogger, stderrLogger } from "./logging/logger.js";
export type { Logger, LogLevel, LogRecord } from "./logging/logger.js";

// Plugin management (issue 6): manifests, signing, OCI distribution, the manager.
export { PluginManager, ManagedPlugin, CONFIG_ENV } from "./manager/manager.js";
export type {
  BuiltinPlugin,
  OpenOptions,
  PluginEntry,
  PluginManagerOptions,
} from "./manager/manager.js";
export { Supervisor } from "./manager/supervisor.js";
export type {
  RestartPolicy,
  SupervisedClient,
  SupervisorEvent,
  SupervisorState,
} from "./manager/supervisor.js";
export { Installer } from "./manager/installer.js";
export type { Installed } from "./manager/installer.js";
export { readLockfile, writeLockfile } from "./manager/lockfile.js";
export type { LockEntry, Lockfile } from "./manager/lockfile.js";
export { resolveSource } from "./manager/resolver.js";
export type { Resolved } from "./manager/resolver.js";
export { ManagementError } from "./manifest/errors.js";
export type { ManagementErrorKind } from "./manifest/errors.js";
export {
  entrypointFor,
  manifestSchema,
  parseManifest,
  validateManifest,
} from "./manifest/manifest.js";
export { computeFiles } from "./manifest/files.js";
export { hostPlatform } from "./manifest/platform.js";
export type { Entrypoint, PluginManifest, ProvidedPlugin } from "./manifest/types.js";
export { canonicalJson } from "./security/canonical.js";
export {
  generateKeyPair,
  loadTrustedKeys,
  signManifest,
  trustedKey,
  verifyManifestSignature,
} from "./security/signing.js";
export type { KeyPair, ManifestSignature, TrustedKey } from "./security/signing.js";
export { loadPluginDir, verifyPluginDir } from "./security/plugin-dir.js";
export type { LoadedPlugin, Verification, VerifyOptions } from "./security/plugin-dir.js";
export { RegistryClient } from "./oci/registry-client.js";
export type {
  FetchedManifest,
  ProgressListener,
  RegistryClientOptions,
} from "./oci/registry-client.js";
export { dockerCredentials } from "./oci/docker-config.js";
export type { Credentials } from "./oci/docker-config.js";
export { pullPlugin, pushPlugin } from "./oci/artifact.js";
export type { PulledPlugin, PushResult } from "./oci/artifact.js";
export { BlobCache } from "./oci/blob-cache.js";
export { formatReference, parseReference } from "./oci/reference.js";
export type { OciReference } from "./oci/reference.js";
