import type { LocalTransport } from "../protocol/env.js";
import type { PluginDefinition } from "../protocol/plugin-set.js";
import type { RpcProtocol } from "../transport/client-transport.js";
import type { ClusterSource } from "./cluster-source.js";

/**
 * Where a plugin runs. A PluginClient takes exactly one source; everything
 * after start() (dispense, calls, health, close) is the same for all three.
 */
export type PluginSource = SubprocessSource | RemoteSource | InProcessSource | ClusterSource;

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
  } = {},
): SubprocessSource {
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
  } = {},
): RemoteSource {
  const source: RemoteSource = {
    kind: "remote",
    url: new URL(url),
    protocol: options.protocol ?? "connect",
    httpVersion: options.httpVersion ?? "2",
    allowPlaintext: options.allowPlaintext ?? false,
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
    throw new TypeError(`remote plugin URL must be http:// or https://, got ${url.toString()}`);
  }
  if (url.protocol === "http:" && !isLoopback(url.hostname) && !source.allowPlaintext) {
    throw new TypeError(
      `refusing plaintext http:// to non-loopback host ${url.hostname}: use https://, ` +
        `or pass { allowPlaintext: true } if the network is trusted`,
    );
  }
  if (source.tls !== undefined && url.protocol !== "https:") {
    throw new TypeError(`TLS options were given for ${url.toString()}, which is not https://`);
  }
}

/** A plugin that runs in the host's process, from the same definition it serves. */
export function inProcess(
  definition: PluginDefinition,
  options: { mode?: "direct" | "serialize" } = {},
): InProcessSource {
  return { kind: "in-process", definition, ...options };
}

/**
 * True for "localhost", 127.0.0.0/8 and ::1. Other "*.localhost" names are
 * not trusted: resolvers need not keep them on this machine.
 */
export function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
