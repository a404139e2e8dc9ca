/**
 * A plugin's manifest: the one document a plugin ships that says what it is,
 * what it provides and how to run it, and that pins every file it ships by
 * sha256. Signing the manifest therefore signs every file. The JSON Schema is
 * published as `schema/plugin-manifest.schema.json`.
 */
export interface PluginManifest {
  readonly schemaVersion: 1;
  /** Lower-case name; the installed directory and the OCI repository's last part. */
  readonly name: string;
  /** Semantic version. */
  readonly version: string;
  readonly description: string;
  /** SPDX expression. */
  readonly license: string;
  /** How the host runs or reaches the plugin; default "subprocess". */
  readonly kind?: PluginKind;
  /** kind "go-plugin": go-plugin's handshake settings. */
  readonly goPlugin?: GoPluginSettings;
  /** kind "remote": where the plugin serves. */
  readonly endpoint?: EndpointSettings;
  /** kind "cluster": how its instances are found. */
  readonly cluster?: ClusterSettings;
  /**
   * The program to run, by platform (`os/arch` with OCI names, e.g.
   * `linux/amd64`). Empty for kinds "remote" and "cluster" (the parser
   * fills in `{}` when they leave it out).
   */
  readonly entrypoints: Readonly<Record<string, Entrypoint>>;
  /** Protocol versions the plugin serves. */
  readonly protocolVersions: readonly number[];
  /** The named plugins it provides, as its handshake will announce them. */
  readonly plugins: readonly ProvidedPlugin[];
  /** JSON Schema for the configuration the host passes to the plugin. */
  readonly configSchema?: Readonly<Record<string, unknown>>;
  /** semver range of compatible connect-plugin host versions. */
  readonly hostVersions: string;
  /** Every file, by relative path (`/`-separated), as `sha256:<hex>`. Empty for "remote" and "cluster". */
  readonly files: Readonly<Record<string, string>>;
  /** OS limits the host puts on the plugin process; none by default. */
  readonly limits?: ManifestLimits;
}

/** A manifest's resource limits (see ResourceLimits for what each bounds). */
export interface ManifestLimits {
  readonly memoryMiB?: number;
  readonly cpuSeconds?: number;
  readonly openFiles?: number;
}

/** subprocess: launched connect-plugin program; go-plugin: launched go-plugin program; remote, cluster: services. */
export type PluginKind = "subprocess" | "go-plugin" | "remote" | "cluster";

export interface GoPluginSettings {
  readonly magicCookieKey: string;
  readonly magicCookieValue: string;
  /** go-plugin's AutoMTLS; default false, as in go-plugin. */
  readonly autoMTLS?: boolean;
}

export interface EndpointSettings {
  readonly url: string;
  readonly protocol?: "connect" | "grpc" | "grpc-web";
}

export interface ClusterSettings {
  /** Exactly one source of instances. */
  readonly discovery: {
    readonly static?: readonly string[];
    readonly dnsSrv?: {
      readonly name: string;
      readonly servers?: readonly string[];
      readonly scheme?: "http" | "https";
    };
    readonly kubernetes?: { readonly namespace: string; readonly service: string };
    readonly etcd?: { readonly hosts: readonly string[]; readonly prefix: string };
  };
  readonly balancer?: "least-outstanding" | "round-robin";
  readonly protocol?: "connect" | "grpc" | "grpc-web";
}

/** How to run a plugin on one platform. */
export interface Entrypoint {
  /** A path listed in `files`. */
  readonly file: string;
  /** `exec` runs the file itself (default); `node` runs it with the host's Node.js. */
  readonly runtime?: "exec" | "node";
  readonly args?: readonly string[];
  /**
   * `runtime: "node"` only: Node.js options put before the file, from a
   * short list (NODE_OPTIONS_ALLOWED: heap, thread and compiler settings,
   * nothing that loads code), e.g. `["--max-semi-space-size=1"]`, which keeps an idle
   * plugin near 20 MB of anonymous memory where the default takes 17-29 MB
   * (docs/plugin-memory.md). None by default.
   */
  readonly nodeOptions?: readonly string[];
}

/**
 * The Node.js options a manifest's `nodeOptions` may give (with `=N`, a
 * whole number, or alone): V8 heap, thread and compiler settings. Options that load or run other code (--require,
 * --import, --loader, --eval, --inspect, ...) are refused, because only the
 * plugin's own files are verified.
 */
export const NODE_OPTIONS_ALLOWED: Readonly<Record<string, "=N" | "flag">> = {
  "--max-semi-space-size": "=N",
  "--max-old-space-size": "=N",
  "--v8-pool-size": "=N",
  "--stack-size": "=N",
  "--single-threaded": "flag",
  "--single-threaded-gc": "flag",
  "--optimize-for-size": "flag",
  "--no-opt": "flag",
};

/** One named plugin a plugin provides. */
export interface ProvidedPlugin {
  readonly name: string;
  /** Fully-qualified protobuf service name. */
  readonly service: string;
  readonly version?: string;
  readonly capabilities?: readonly string[];
}

/** The file names a manifest may have in a plugin directory, in the order looked for. */
export const MANIFEST_FILES = ["plugin.json", "plugin.yaml", "plugin.yml"] as const;
/** The detached signature's file name in a plugin directory. */
export const SIGNATURE_FILE = "plugin.sig";
