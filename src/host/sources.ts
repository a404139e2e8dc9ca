import { checkLimits, type ResourceLimits } from "./resource-limits.js";
import type { Interceptor } from "@connectrpc/connect";
import type { Discovery, Endpoint } from "../discovery/discovery.js";
import { staticEndpoints } from "../discovery/discovery.js";
import type { LocalTransport } from "../protocol/env.js";
import { parseReattach, type ReattachConfig } from "../protocol/reattach.js";
import type { ClusterOptions } from "../resilience/cluster-transport.js";
import { plaintextRefusal } from "../security/plaintext.js";
import type { PluginDefinition } from "../protocol/plugin-set.js";
import type { RpcProtocol } from "../transport/client-transport.js";
import type { NetworkTransport } from "../transport/framed/network.js";
import { withoutUserInfo } from "../transport/url-credentials.js";

/**
 * Where a plugin runs. A PluginClient takes exactly one source; everything
 * after start() (dispense, calls, health, close) is the same for all four.
 */
export type PluginSource =
  SubprocessSource | RemoteSource | InProcessSource | ClusterSource | ReattachSource;

/**
 * A plugin already running on this machine, started by hand in debug mode
 * or by another host: attached to from its reattach config, never launched
 * and never stopped (close() detaches).
 */
export interface ReattachSource {
  readonly kind: "reattach";
  readonly config: ReattachConfig;
}

/**
 * `reattach(process.env.CONNECT_PLUGIN_REATTACH!)`: attach to the plugin
 * whose debug-mode line (or go-plugin ReattachConfig JSON) is given.
 */
export function reattach(config: ReattachConfig | string): ReattachSource {
  return { kind: "reattach", config: typeof config === "string" ? parseReattach(config) : config };
}

/** Run the plugin as a child process that the host starts and owns. */
export interface SubprocessSource {
  readonly kind: "subprocess";
  readonly command: string;
  readonly args: readonly string[];
  /** Extra environment variables; the host's environment is passed too. */
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
  /**
   * go-plugin's AutoMTLS between host and plugin: each makes a throwaway
   * certificate, and the connection is mutual TLS that accepts only the
   * other's, so nothing else on the machine can call the plugin or pose as
   * it, even over loopback TCP. On by default (`undefined`): used when the
   * plugin answers with a certificate (connect-plugin and go-plugin plugins
   * do), plaintext with the launch token otherwise. `true` requires it;
   * `false` turns it off.
   */
  readonly autoMTLS?: boolean;
  /**
   * Local wire protocols to offer the plugin, best first. Defaults to
   * `["framed", "connect"]`: the framed transport where the plugin supports
   * it, HTTP/2 Connect otherwise. `["connect"]` forces HTTP/2.
   */
  readonly transports?: readonly LocalTransport[];
  /**
   * Operating-system limits on the plugin's memory, CPU time and open files.
   * A plugin that exceeds one is stopped, and its exit (and every call it
   * fails) names the limit. Default: none.
   */
  readonly limits?: ResourceLimits;
}

/** Use a plugin that already runs as a service at a URL (sidecar or remote). */
export interface RemoteSource {
  readonly kind: "remote";
  readonly url: URL;
  /** RPC protocol; defaults to "connect". */
  readonly protocol: RpcProtocol;
  /** Defaults to "2"; bidirectional streaming needs HTTP/2. */
  readonly httpVersion: "1.1" | "2";
  /** For https:// URLs: a private CA, and a client certificate for mutual TLS. */
  readonly tls?: ClientTls;
  /** The user's explicit consent to plaintext over a real network. */
  readonly allowPlaintext: boolean;
  /**
   * "auto" (default): the framed protocol when the server speaks it on its
   * port (a connect-plugin plugin in network mode: ALPN on https, a preface
   * on http), HTTP otherwise, remembered per authority and logged once;
   * "framed" fails the calls with a clear message when the server does not
   * speak it; "http" always uses `protocol` over `httpVersion`.
   */
  readonly transport?: NetworkTransport;
}

/** TLS settings for a remote plugin, as PEM. */
export interface ClientTls {
  /** CA certificate(s) to trust instead of the system's. */
  readonly ca?: string | Buffer;
  /** Client certificate and key, for plugins that require mutual TLS. */
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
}

/** Run the plugin inside the host's own process. */
export interface InProcessSource {
  readonly kind: "in-process";
  readonly definition: PluginDefinition;
  /**
   * "direct" (the default) hands messages to the implementation as they are,
   * with no serialization; "serialize" sends every call through the Connect
   * protocol in memory, so that messages are copied as over a wire.
   */
  readonly mode?: "direct" | "serialize";
  /**
   * The plugin side's interceptors, as `serve(definition, { interceptors })`
   * would run them in a plugin process (serverObservability(), auth, ...):
   * they run after the host's, around the implementation. None by default.
   */
  readonly interceptors?: readonly Interceptor[];
}

/** A plugin subprocess: `subprocess("node", ["plugin.js"])`. */
export function subprocess(
  command: string,
  args: readonly string[] = [],
  options: {
    env?: Readonly<Record<string, string>>;
    cwd?: string;
    autoMTLS?: boolean;
    transports?: readonly LocalTransport[];
    limits?: ResourceLimits;
  } = {},
): SubprocessSource {
  if (options.limits !== undefined) checkLimits(options.limits);
  return { kind: "subprocess", command, args, ...options };
}

/**
 * A plugin at a URL: `remote("http://kv-plugin:8080")`.
 *
 * Plain http:// is accepted only for loopback addresses; a plugin reached over
 * a real network must use https:// unless `allowPlaintext` is set, because the
 * calls and their credentials would otherwise cross the network in clear.
 */
export function remote(
  url: string | URL,
  options: {
    protocol?: RpcProtocol;
    httpVersion?: "1.1" | "2";
    allowPlaintext?: boolean;
    tls?: ClientTls;
    /** Default "auto", or "http" when `protocol` or `httpVersion` is given (they name an HTTP path). */
    transport?: NetworkTransport;
  } = {},
): RemoteSource {
  const namesHttp = options.protocol !== undefined || options.httpVersion !== undefined;
  const source: RemoteSource = {
    kind: "remote",
    url: new URL(url),
    protocol: options.protocol ?? "connect",
    httpVersion: options.httpVersion ?? "2",
    allowPlaintext: options.allowPlaintext ?? false,
    transport: options.transport ?? (namesHttp ? "http" : "auto"),
    ...(options.tls !== undefined && { tls: options.tls }),
  };
  checkRemoteSource(source);
  return source;
}

/**
 * Throws a TypeError for a remote source that is unsafe or inconsistent.
 * PluginClient checks again, so a hand-built source cannot skip it.
 */
export function checkRemoteSource(source: RemoteSource): void {
  const url = source.url;
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(
      `remote plugin URL must be http:// or https://, got ${withoutUserInfo(url.toString())}`,
    );
  }
  const refusal = plaintextRefusal(url, source.allowPlaintext, `host ${url.hostname}`);
  if (refusal !== undefined) throw new TypeError(refusal);
  if (source.tls !== undefined && url.protocol !== "https:") {
    throw new TypeError(
      `TLS options were given for ${withoutUserInfo(url.toString())}, which is not https://`,
    );
  }
}

/** A plugin that runs in the host's process, from the same definition it serves. */
export function inProcess(
  definition: PluginDefinition,
  options: { mode?: "direct" | "serialize"; interceptors?: readonly Interceptor[] } = {},
): InProcessSource {
  return { kind: "in-process", definition, ...options };
}

/**
 * A plugin served by a pool of instances (sidecars, a Kubernetes service, a
 * fleet registered in etcd). The host dispenses the same typed client as for
 * any other source; behind it, every call picks a healthy instance, gets
 * retried when that is safe, and fails over.
 */
export interface ClusterSource extends Omit<ClusterOptions, "fallback" | "negotiation"> {
  readonly kind: "cluster";
  /**
   * Every instance is handshaken (protocol version and plugin set, the
   * client's own) before it takes calls, and held out when it cannot serve
   * them; calls for a plugin go only to instances that announced its
   * service. `timeoutMs` (5 s) bounds one Handshake, `retryMs` (5 s) is how
   * soon a held-out instance is asked again. `false` skips it: every
   * instance takes every call, and the client's Handshake goes to whichever
   * instance the balancer picks.
   */
  readonly negotiation?: false | { readonly timeoutMs?: number; readonly retryMs?: number };
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
