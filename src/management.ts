/**
 * connect-plugin/manager: finding, verifying, installing, starting and
 * supervising plugins, and shipping them through OCI registries.
 *
 * A separate entry point from the core (`connect-plugin`), so that plugin
 * programs, which import the core, do not carry the manager's dependencies
 * (ajv, yaml, tar, semver) into their bundles.
 */
export { PluginManager, ManagedPlugin, CONFIG_ENV } from "./manager/manager.js";
export type {
  BuiltinPlugin,
  EndpointPlugin,
  ManagedEvent,
  OpenOptions,
  PluginEntry,
  PluginManagerOptions,
  PluginStatus,
  UpgradeResult,
} from "./manager/manager.js";
export type { LivenessPolicy } from "./manager/liveness.js";
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
export type {
  Entrypoint,
  ManifestLimits,
  PluginManifest,
  ProvidedPlugin,
} from "./manifest/types.js";
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
