import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import { PluginError } from "./errors.js";

/**
 * What host and plugin agree on before they ever talk, usually kept in a
 * small package that both import (go-plugin calls it HandshakeConfig).
 *
 * The magic cookie is not a security feature. It is a UX feature: a plugin
 * started by hand, or by the wrong host, sees that the cookie is missing or
 * different and says so, instead of printing a handshake line at a person.
 */
export interface HandshakeConfig {
  /** Environment variable that carries the cookie, e.g. "KV_PLUGIN". */
  readonly magicCookieKey: string;
  /** The value the plugin expects in that variable. */
  readonly magicCookieValue: string;
  /**
   * The protocol version of `plugins` when `versionedPlugins` is not used.
   * Defaults to 1.
   */
  readonly protocolVersion?: number;
}

/**
 * The host's view of the plugins it can dispense at one protocol version:
 * plugin name to the protobuf service that the plugin implements.
 */
export type PluginSet = { readonly [name: string]: DescService };

/** Plugin sets by protocol version, like go-plugin's VersionedPlugins. */
export type VersionedPluginSets = { readonly [version: number]: PluginSet };

/**
 * One named plugin as a plugin process serves it: the service, its
 * implementation, and what the host is told about it in the handshake.
 * Create it with {@link implement}, which type-checks the implementation
 * against the service.
 */
export interface PluginImplementation {
  readonly service: DescService;
  /** The implementation's own version, reported in the handshake. */
  readonly version: string;
  /** Free-form capability flags, reported in the handshake. */
  readonly capabilities: readonly string[];
  /** Registers the implementation on a router. */
  readonly register: (router: ConnectRouter) => void;
}

/** Named plugin implementations served at one protocol version. */
export type PluginImplementations = { readonly [name: string]: PluginImplementation };

/**
 * Everything a plugin process serves, independent of where it runs: the same
 * definition is passed to `serve()` in a plugin's main file and to
 * `inProcess()` on a host that wants to run the plugin in its own process.
 */
export interface PluginDefinition {
  readonly handshake: HandshakeConfig;
  /** The plugins served at `handshake.protocolVersion` (default 1). */
  readonly plugins?: PluginImplementations;
  /** Or: the plugins served at each protocol version. */
  readonly versionedPlugins?: { readonly [version: number]: PluginImplementations };
}

/**
 * Pairs a service with its implementation for a PluginDefinition.
 *
 * ```ts
 * const kv = implement(KV, { get: ..., put: ..., ... }, { version: "1.2.0" });
 * ```
 */
export function implement<S extends DescService>(
  service: S,
  implementation: ServiceImpl<S>,
  info: { version?: string; capabilities?: readonly string[] } = {},
): PluginImplementation {
  return {
    service,
    version: info.version ?? "",
    capabilities: info.capabilities ?? [],
    register: (router) => {
      router.service(service, implementation);
    },
  };
}

/**
 * Turns "plugins or versionedPlugins" into a map by version, and checks that
 * exactly one was given. Shared by host and plugin so that both read
 * configurations the same way.
 */
export function byVersion<T>(
  what: string,
  plugins: T | undefined,
  versioned: { readonly [version: number]: T } | undefined,
  protocolVersion = 1,
): Map<number, T> {
  if ((plugins === undefined) === (versioned === undefined)) {
    throw new PluginError(
      "invalid-config",
      `${what}: give exactly one of "plugins" and "versionedPlugins"`,
    );
  }
  const result = new Map<number, T>();
  if (plugins !== undefined) {
    result.set(protocolVersion, plugins);
    return result;
  }
  for (const [key, set] of Object.entries(versioned ?? {})) {
    const version = Number(key);
    if (!Number.isInteger(version) || version < 1) {
      throw new PluginError(
        "invalid-config",
        `${what}: protocol version ${JSON.stringify(key)} is not a positive integer`,
      );
    }
    result.set(version, set);
  }
  if (result.size === 0) {
    throw new PluginError("invalid-config", `${what}: "versionedPlugins" is empty`);
  }
  return result;
}
