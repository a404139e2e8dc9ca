import { join } from "node:path";
import { Ajv } from "ajv";
import semver from "semver";
import { PluginClient, type PluginInfo } from "../host/plugin-client.js";
import {
  cluster,
  inProcess,
  remote,
  subprocess,
  type ClusterSource,
  type PluginSource,
  type RemoteSource,
} from "../host/sources.js";
import type { Discovery } from "../discovery/discovery.js";
import { staticEndpoints } from "../discovery/discovery.js";
import { dnsSrv } from "../discovery/dns-srv.js";
import { kubernetesDiscovery } from "../discovery/kubernetes.js";
import { etcdDiscovery } from "../discovery/etcd.js";
import { GoPluginGeneration, type GoPluginLaunch } from "./goplugin-generation.js";
import { silentLogger, type Logger } from "../logging/logger.js";
import { withMaskedCredentials } from "../transport/url-credentials.js";
import { ManagementError } from "../manifest/errors.js";
import { entrypointFor } from "../manifest/manifest.js";
import { hostPlatform } from "../manifest/platform.js";
import type { ClusterSettings, PluginManifest, ProvidedPlugin } from "../manifest/types.js";
import type { PluginDefinition, PluginSet } from "../protocol/plugin-set.js";
import {
  loadPluginDir,
  verifyPluginDir,
  type LoadedPlugin,
  type Verification,
} from "../security/plugin-dir.js";
import { loadTrustedKeys, type TrustedKey } from "../security/signing.js";
import { hostVersion as packageVersion } from "./host-version.js";
import { installedNames } from "./installer.js";
import type { LivenessPolicy } from "./liveness.js";
import {
  ManagedPlugin,
  type ManagedEvent,
  type OpenOptions,
  type UpgradeResult,
} from "./managed-plugin.js";
import { defaultRunRoot, snapshotForRun } from "./run-snapshot.js";
import type { RestartPolicy } from "./supervisor.js";

export {
  ManagedPlugin,
  type ManagedEvent,
  type OpenOptions,
  type UpgradeResult,
} from "./managed-plugin.js";

/** The environment variable that carries a plugin's configuration (JSON). */
export const CONFIG_ENV = "CONNECT_PLUGIN_CONFIG";

export interface PluginManagerOptions {
  /** Directories to scan; each holds installed plugins as `<dir>/<name>/`. */
  readonly directories: readonly string[];
  /** Keys trusted to sign plugins. */
  readonly trustedKeys?: readonly TrustedKey[];
  /** A directory of `*.pub` keys, added to trustedKeys. */
  readonly trustedKeysDir?: string;
  /**
   * Run unsigned plugins. Off by default: they fail closed. Their files are
   * still checked against the digests in their manifest, but anyone who can
   * write an unsigned plugin's directory can change the manifest too; and
   * with this on, a signed plugin whose plugin.sig is deleted counts as
   * unsigned. Use it for development only.
   */
  readonly allowUnsigned?: boolean;
  /**
   * Where verified private copies of plugins are made and run from (see
   * snapshotForRun). Must be this user's and 0700; created if missing.
   * Defaults to `<tmpdir>/connect-plugin-run-<uid>`.
   */
  readonly runDir?: string;
  /** Stop a plugin after this long with no call in flight. Default 5 minutes; 0 never. */
  readonly idleTimeoutMs?: number;
  readonly restart?: RestartPolicy;
  /**
   * Health checks of every running plugin; one that stops answering (hung,
   * not dead) is restarted, counted against the restart budget. On by
   * default (see LivenessPolicy); `{ intervalMs: 0 }` turns it off.
   */
  readonly liveness?: LivenessPolicy;
  /**
   * After an upgrade, how long the old generation may finish its calls in
   * flight before it is stopped. Default 30 s.
   */
  readonly drainTimeoutMs?: number;
  readonly logger?: Logger;
  /** Checked against manifests' hostVersions. Defaults to this package's version. */
  readonly hostVersion?: string;
  readonly platform?: string;
  /** Passed to each PluginClient. */
  readonly startTimeoutMs?: number;
  readonly gracePeriodMs?: number;
  readonly onEvent?: (plugin: string, event: ManagedEvent) => void;
}

/** A built-in plugin: runs in the host's process, behind the same interface. */
export interface BuiltinPlugin {
  /** Makes the plugin's definition from its (validated) configuration. */
  readonly definition: (config: unknown) => PluginDefinition;
  readonly version?: string;
  readonly description?: string;
  readonly configSchema?: Readonly<Record<string, unknown>>;
}

/** What status() says of one open plugin. */
export interface PluginStatus {
  readonly name: string;
  /** The version installed now (the one the next generation runs). */
  readonly version: string;
  readonly kind: PluginEntry["kind"];
  readonly state: ManagedPlugin<PluginSet>["state"];
  /** Where it runs: "subprocess", "in-process", or the endpoint's URL or discovery (a URL's password, or a user name given without one, as `***`). */
  readonly location: string;
  readonly generation: number;
  readonly restarts: number;
  readonly inFlight: number;
  /** The process serving now, for a running subprocess. */
  readonly pid?: number;
}

/**
 * A plugin that runs elsewhere, as a service: a remote endpoint or a
 * cluster with its discovery. The manager launches and verifies nothing
 * (there are no files to verify), but supervises it like any other:
 * liveness checks, idle disconnect, describe()/probe(), status(), and
 * upgrade() (which connects afresh, checks the endpoint's health, and
 * drains the old connection).
 */
export interface EndpointPlugin {
  readonly source: RemoteSource | ClusterSource;
  readonly version?: string;
  readonly description?: string;
}

/** One plugin the manager knows of. */
export interface PluginEntry {
  readonly name: string;
  readonly version: string;
  readonly kind: "installed" | "builtin" | "endpoint";
  /** The plugin's directory, for installed plugins. */
  readonly dir?: string;
  readonly description: string;
  readonly provides: readonly ProvidedPlugin[];
  readonly manifest?: PluginManifest;
}

/**
 * Finds, verifies, starts, supervises and retires plugins.
 *
 * Installed plugins (found by scan() in the configured directories) and
 * built-in ones (registerBuiltin) sit in one registry and are used the same
 * way: `open(name, { handshake, plugins })` returns a ManagedPlugin whose
 * dispensed clients start the plugin on their first call. Nothing from a
 * plugin directory runs before it is verified (signature over the manifest
 * against the trusted keys, and the sha256 of every file), and it is
 * verified again at every start. What runs is a private copy made while
 * hashing (snapshotForRun), so a file swapped in the plugin directory after
 * the check is not what runs. Code a plugin loads from outside its own
 * files (absolute paths, the user's global Node folders) is not covered.
 */
export class PluginManager {
  private readonly installed = new Map<string, { loaded: LoadedPlugin; entry: PluginEntry }>();
  private readonly builtins = new Map<string, BuiltinPlugin>();
  private readonly endpoints = new Map<string, EndpointPlugin>();
  private readonly open_ = new Map<string, ManagedPlugin<PluginSet>>();
  private readonly trusted: TrustedKey[];
  private readonly logger: Logger;
  /** Scan problems by plugin directory. */
  readonly problems = new Map<string, ManagementError>();

  constructor(private readonly options: PluginManagerOptions) {
    this.trusted = [
      ...(options.trustedKeys ?? []),
      ...(options.trustedKeysDir !== undefined ? loadTrustedKeys(options.trustedKeysDir) : []),
    ];
    this.logger = options.logger ?? silentLogger;
  }

  /** Adds a built-in plugin. It wins over nothing: installed plugins of the same name come first. */
  registerBuiltin(name: string, builtin: BuiltinPlugin): void {
    this.builtins.set(name, builtin);
  }

  /**
   * Adds a plugin that runs as a service elsewhere (a `remote(...)` or
   * `cluster(...)` source). Installed plugins and built-ins of the same
   * name come first.
   */
  registerEndpoint(name: string, endpoint: EndpointPlugin): void {
    this.endpoints.set(name, endpoint);
  }

  /**
   * Reads every plugin directory's manifest. Invalid ones are left out and
   * recorded in `problems`; verification happens before each start.
   */
  async scan(): Promise<PluginEntry[]> {
    this.installed.clear();
    this.problems.clear();
    for (const root of this.options.directories) {
      for (const name of await installedNames(root)) {
        const dir = join(root, name);
        try {
          const loaded = await loadPluginDir(dir);
          if (this.installed.has(loaded.manifest.name)) continue; // earlier directories win
          const m = loaded.manifest;
          this.installed.set(m.name, {
            loaded,
            entry: {
              name: m.name,
              version: m.version,
              kind: "installed",
              dir,
              description: m.description,
              provides: m.plugins,
              manifest: m,
            },
          });
        } catch (e) {
          this.problems.set(
            dir,
            e instanceof ManagementError ? e : new ManagementError("io", String(e)),
          );
        }
      }
    }
    return this.list();
  }

  /** Every known plugin, installed first, then built-ins not shadowed by one. */
  list(): PluginEntry[] {
    const out = [...this.installed.values()].map((i) => i.entry);
    for (const [name, b] of this.builtins) {
      if (this.installed.has(name)) continue;
      out.push({
        name,
        version: b.version ?? "",
        kind: "builtin",
        description: b.description ?? "",
        provides: this.builtinProvides(b),
      });
    }
    for (const [name, e] of this.endpoints) {
      if (out.some((o) => o.name === name)) continue;
      out.push({
        name,
        version: e.version ?? "",
        kind: "endpoint",
        description: e.description ?? "",
        provides: [],
      });
    }
    return out;
  }

  /**
   * What a plugin provides, without starting it: from the manifest for an
   * installed plugin, from the definition for a built-in one.
   */
  describe(name: string): PluginEntry {
    const entry = this.list().find((e) => e.name === name);
    if (entry === undefined) throw this.notFound(name);
    return entry;
  }

  /** Verifies an installed plugin now (signature and every file). */
  async verify(name: string): Promise<Verification> {
    const found = this.installed.get(name);
    if (found === undefined) throw this.notFound(name);
    const loaded = await loadPluginDir(found.loaded.dir);
    return verifyPluginDir(loaded, this.verifyOptions());
  }

  /**
   * A handle on the plugin `name`, typed by the host's plugin set. Nothing
   * starts until the first call (or start()). One handle (one process) per
   * name: a second open() with the same configuration, handshake and plugin
   * set returns the first handle; with different ones it throws
   * "invalid-config" rather than silently dropping them. A closed handle is
   * replaced by a new one.
   */
  open<P extends PluginSet>(name: string, options: OpenOptions<P>): ManagedPlugin<P> {
    const existing = this.open_.get(name);
    if (existing !== undefined && !existing.closed) {
      const why = existing.mismatch(options);
      if (why !== undefined) {
        throw new ManagementError(
          "invalid-config",
          `plugin "${name}" is already open with ${why}; close that handle first (one process per plugin name)`,
        );
      }
      return existing as unknown as ManagedPlugin<P>;
    }
    const makeSource = this.sourceMaker(name, options);
    const managed: ManagedPlugin<P> = new ManagedPlugin<P>(name, options, makeSource, {
      restart: this.options.restart,
      liveness: this.options.liveness ?? {},
      drainTimeoutMs: this.options.drainTimeoutMs ?? 30_000,
      idleTimeoutMs: this.options.idleTimeoutMs ?? 300_000,
      logger: this.logger,
      startTimeoutMs: this.options.startTimeoutMs,
      gracePeriodMs: this.options.gracePeriodMs,
      onEvent: (e) => this.options.onEvent?.(name, e),
    });
    this.open_.set(name, managed);
    return managed;
  }

  /** The handles open() has made and not closed, by plugin name (for status pages). */
  opened(): ReadonlyMap<string, ManagedPlugin<PluginSet>> {
    return new Map([...this.open_].filter(([, handle]) => !handle.closed));
  }

  /**
   * Asks the plugin itself what it provides (the capabilities query): a
   * short-lived start, verified like any other, the handshake, and a close.
   * describe() answers from the manifest without starting anything.
   */
  async probe<P extends PluginSet>(name: string, options: OpenOptions<P>): Promise<PluginInfo[]> {
    const source = await this.sourceMaker(name, options)();
    const timeouts = {
      logger: this.logger,
      ...(this.options.startTimeoutMs !== undefined && {
        startTimeoutMs: this.options.startTimeoutMs,
      }),
    };
    if (source.kind === "go-plugin") {
      // go-plugin has no Handshake that lists plugins: the probe proves that
      // it starts and answers Ping, and returns what its manifest declares.
      const generation = new GoPluginGeneration(source, options.plugins, {
        ...timeouts,
        interceptors: [],
      });
      try {
        await generation.start();
        const health = await generation.health();
        if (health !== "serving") {
          throw new ManagementError("incompatible", `plugin "${name}" did not answer Ping`);
        }
        return this.describe(name).provides.map((p) => ({
          name: p.name,
          service: p.service,
          version: p.version ?? "",
          capabilities: p.capabilities ?? [],
        }));
      } finally {
        await generation.close();
      }
    }
    const client = new PluginClient<P>({
      handshake: options.handshake,
      plugins: options.plugins,
      ...timeouts,
      source,
    });
    try {
      await client.start();
      return client.availablePlugins;
    } finally {
      await client.close();
    }
  }

  /** Checks the configuration now, and returns what makes a verified source at each start. */
  private sourceMaker(
    name: string,
    options: OpenOptions<PluginSet>,
  ): () => Promise<PluginSource | GoPluginLaunch> {
    const installed = this.installed.get(name);
    const builtin = this.builtins.get(name);
    const endpoint = this.endpoints.get(name);
    if (installed === undefined && builtin === undefined) {
      if (endpoint === undefined) throw this.notFound(name);
      return () => Promise.resolve(endpoint.source);
    }
    const schema = installed?.loaded.manifest.configSchema ?? builtin?.configSchema;
    if (schema !== undefined) checkConfig(name, schema, options.config);
    return async () => {
      if (installed === undefined) {
        return inProcess((builtin as BuiltinPlugin).definition(options.config));
      }
      return this.sourceFor(name, installed.loaded.dir, options);
    };
  }

  /**
   * Runs the version of `name` that is installed now: call it after
   * installing a new version (Installer.fromDirectory, fromArchive,
   * fromPulled). The manifest is read again, and the open handle, if
   * running, is upgraded in place with no call lost (ManagedPlugin.upgrade):
   * the new version is verified, started and health-checked beside the old
   * one, and if any of that fails the old version keeps serving and this
   * rejects with "upgrade-failed". A plugin not running starts the new
   * version at its next call.
   */
  async upgrade(name: string): Promise<UpgradeResult> {
    const found = this.installed.get(name);
    if (found === undefined && !this.builtins.has(name) && !this.endpoints.has(name)) {
      throw this.notFound(name);
    }
    if (found !== undefined) {
      const loaded = await loadPluginDir(found.loaded.dir);
      const m = loaded.manifest;
      this.installed.set(name, {
        loaded,
        entry: {
          ...found.entry,
          version: m.version,
          description: m.description,
          provides: m.plugins,
          manifest: m,
        },
      });
    }
    const handle = this.open_.get(name);
    if (handle === undefined || handle.closed) {
      return { upgraded: false, generation: 0, servingAfterMs: 0, abandoned: 0 };
    }
    return handle.upgrade();
  }

  /** Every open plugin: where it runs, its generation, state and restarts. */
  status(): PluginStatus[] {
    return [...this.open_.entries()]
      .filter(([, m]) => !m.closed)
      .map(([name, m]) => {
        const entry = this.list().find((e) => e.name === name);
        return {
          name,
          version: entry?.version ?? "",
          kind: entry?.kind ?? "installed",
          state: m.state,
          location: this.location(name),
          generation: m.generation,
          restarts: m.restarts,
          inFlight: m.inFlight,
          ...(m.pid !== undefined && { pid: m.pid }),
        };
      });
  }

  /** For status pages and logs: a URL's password, or a user name given without one (a token), is shown as `***`. */
  private location(name: string): string {
    const m = this.installed.get(name)?.loaded.manifest;
    if (m?.kind === "remote") return withMaskedCredentials(m.endpoint?.url ?? "");
    if (m?.kind === "cluster") {
      const [how, what] = Object.entries(m.cluster?.discovery ?? {})[0] ?? ["", ""];
      const shown = JSON.stringify(what, (_key, value: unknown) =>
        typeof value === "string" ? withMaskedCredentials(value) : value,
      );
      return `cluster (${how} ${shown})`;
    }
    if (m?.kind === "go-plugin") return "subprocess (go-plugin)";
    if (m !== undefined) return "subprocess";
    if (this.builtins.has(name)) return "in-process";
    const source = this.endpoints.get(name)?.source;
    if (source?.kind === "remote") return withMaskedCredentials(source.url.toString());
    return source === undefined ? "" : `cluster of ${source.discovery.description}`;
  }

  /** Stops every plugin this manager started. */
  async close(): Promise<void> {
    await Promise.all([...this.open_.values()].map((m) => m.close()));
    this.open_.clear();
  }

  private async sourceFor(
    name: string,
    dir: string,
    options: OpenOptions<PluginSet>,
  ): Promise<PluginSource | GoPluginLaunch> {
    const loaded = await loadPluginDir(dir);
    await verifyPluginDir(loaded, this.verifyOptions());
    const m = loaded.manifest;
    if (m.name !== name) {
      throw new ManagementError(
        "verification-failed",
        `${dir} now holds plugin "${m.name}", not "${name}"; scan again to use it`,
      );
    }
    // The manifest may have changed since open(): check the config against this one.
    if (m.configSchema !== undefined) checkConfig(name, m.configSchema, options.config);
    const hostVersion = this.options.hostVersion ?? packageVersion();
    if (!semver.satisfies(hostVersion, m.hostVersions, { includePrerelease: true })) {
      throw new ManagementError(
        "incompatible",
        `plugin "${m.name}" ${m.version} needs a connect-plugin host ${m.hostVersions}; this host is ${hostVersion}`,
      );
    }
    const wanted = options.handshake.protocolVersion ?? 1;
    if (!m.protocolVersions.includes(wanted)) {
      throw new ManagementError(
        "incompatible",
        `plugin "${m.name}" ${m.version} serves protocol versions ${m.protocolVersions.join(", ")}; this host speaks ${wanted}`,
      );
    }
    // Services elsewhere: the verified manifest says where.
    if (m.kind === "remote" && m.endpoint !== undefined) {
      return remote(m.endpoint.url, {
        ...(m.endpoint.protocol !== undefined && { protocol: m.endpoint.protocol }),
      });
    }
    if (m.kind === "cluster" && m.cluster !== undefined) return clusterFrom(m.cluster);
    const platform = this.options.platform ?? hostPlatform();
    const entry = entrypointFor(m, platform);
    const runDir = await snapshotForRun(loaded, platform, this.options.runDir ?? defaultRunRoot());
    const file = join(runDir, entry.file);
    const env: Record<string, string> =
      options.config === undefined ? {} : { [CONFIG_ENV]: JSON.stringify(options.config) };
    const l = m.limits;
    const limits = l && {
      ...(l.memoryMiB !== undefined && { memoryBytes: l.memoryMiB * 1024 * 1024 }),
      ...(l.cpuSeconds !== undefined && { cpuSeconds: l.cpuSeconds }),
      ...(l.openFiles !== undefined && { openFiles: l.openFiles }),
    };
    if (m.kind === "go-plugin" && m.goPlugin !== undefined) {
      const node = entry.runtime === "node";
      return {
        kind: "go-plugin",
        command: node ? process.execPath : file,
        args: node
          ? [...(entry.nodeOptions ?? []), file, ...(entry.args ?? [])]
          : (entry.args ?? []),
        cwd: runDir,
        env: node ? { ...env, NODE_PATH: "" } : env,
        handshake: {
          magicCookieKey: m.goPlugin.magicCookieKey,
          magicCookieValue: m.goPlugin.magicCookieValue,
          protocolVersion: wanted,
        },
        autoMTLS: m.goPlugin.autoMTLS ?? false,
        ...(limits !== undefined && { limits }),
      };
    }
    return entry.runtime === "node"
      ? subprocess(process.execPath, [...(entry.nodeOptions ?? []), file, ...(entry.args ?? [])], {
          env: { ...env, NODE_PATH: "" },
          cwd: runDir,
          ...(limits !== undefined && { limits }),
        })
      : subprocess(file, entry.args ?? [], {
          env,
          cwd: runDir,
          ...(limits !== undefined && { limits }),
        });
  }

  private verifyOptions() {
    return {
      trustedKeys: this.trusted,
      ...(this.options.trustedKeysDir !== undefined && {
        trustedKeysDir: this.options.trustedKeysDir,
      }),
      allowUnsigned: this.options.allowUnsigned ?? false,
      ...(this.options.platform !== undefined && { platform: this.options.platform }),
    };
  }

  private builtinProvides(b: BuiltinPlugin): ProvidedPlugin[] {
    let def: PluginDefinition;
    try {
      def = b.definition(undefined);
    } catch {
      return [];
    }
    return Object.entries(def.plugins ?? {}).map(([name, impl]) => ({
      name,
      service: impl.service.typeName,
      version: impl.version,
      capabilities: impl.capabilities,
    }));
  }

  private notFound(name: string): ManagementError {
    const known = this.list().map((e) => e.name);
    return new ManagementError(
      "not-found",
      `no plugin named "${name}" (known: ${known.length > 0 ? known.join(", ") : "none"}; ` +
        `scanned: ${this.options.directories.join(", ") || "no directories"})`,
    );
  }
}

/** The cluster source a manifest of kind "cluster" declares. */
function clusterFrom(settings: ClusterSettings): ClusterSource {
  const d = settings.discovery;
  let discovery: Discovery;
  if (d.static !== undefined) discovery = staticEndpoints(d.static);
  else if (d.dnsSrv !== undefined) {
    discovery = dnsSrv(d.dnsSrv.name, {
      ...(d.dnsSrv.servers !== undefined && { servers: d.dnsSrv.servers }),
      ...(d.dnsSrv.scheme !== undefined && { scheme: d.dnsSrv.scheme }),
    });
  } else if (d.kubernetes !== undefined) discovery = kubernetesDiscovery(d.kubernetes);
  else discovery = etcdDiscovery({ hosts: [...d.etcd!.hosts], prefix: d.etcd!.prefix });
  return cluster({
    discovery,
    ...(settings.balancer !== undefined && { balancer: settings.balancer }),
    ...(settings.protocol !== undefined && { protocol: settings.protocol }),
  });
}

function checkConfig(
  name: string,
  schema: Readonly<Record<string, unknown>>,
  config: unknown,
): void {
  const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
  if (!validate(config ?? {})) {
    const problems = (validate.errors ?? []).map(
      (e) =>
        `${e.instancePath === "" ? "(config)" : e.instancePath.slice(1).replace(/\//g, ".")}: ${e.message ?? "invalid"}` +
        (e.keyword === "required"
          ? ` (${String((e.params as { missingProperty?: string }).missingProperty)})`
          : ""),
    );
    throw new ManagementError(
      "invalid-config",
      `configuration for plugin "${name}" is invalid: ${problems.join("; ")}`,
    );
  }
}
