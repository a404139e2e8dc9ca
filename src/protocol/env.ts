/**
 * Environment variables that a host sets for a plugin subprocess.
 *
 * The `PLUGIN_*` names are go-plugin's, spelled exactly as go-plugin spells
 * them, so that a plugin written with either library can be launched by a
 * host written with either library. The `CONNECT_PLUGIN_*` names are ours:
 * their presence tells a plugin that its host is a connect-plugin host, which
 * unlocks the transports and lifecycle features that go-plugin hosts lack.
 */
export const Env = {
  /** Comma-separated protocol versions the host speaks (go-plugin). */
  protocolVersions: "PLUGIN_PROTOCOL_VERSIONS",
  /** Directory in which the plugin should create its unix socket (go-plugin). */
  unixSocketDir: "PLUGIN_UNIX_SOCKET_DIR",
  /** Group that should own the socket (go-plugin; unused on our side). */
  unixSocketGroup: "PLUGIN_UNIX_SOCKET_GROUP",
  /**
   * Port range for TCP listeners (go-plugin's; its plugins use it on
   * Windows). Our TCP fallback takes any free loopback port instead.
   */
  minPort: "PLUGIN_MIN_PORT",
  maxPort: "PLUGIN_MAX_PORT",
  /**
   * Comma-separated wire protocols the host accepts in the handshake line's
   * protocol field, best first. Set only by connect-plugin hosts.
   */
  transports: "CONNECT_PLUGIN_TRANSPORTS",
  /**
   * "stdin" when the host holds the write end of the plugin's stdin pipe: the
   * plugin exits when it reads end-of-file, which happens the moment the host
   * dies, even by SIGKILL.
   */
  parentWatch: "CONNECT_PLUGIN_PARENT_WATCH",
  /**
   * "stdin" when the host sends a secret as the first line on the plugin's
   * stdin. The plugin then requires it as a bearer token on every call
   * (health checks excepted), so that only the host that launched it can
   * call it, even over loopback TCP where any local user could connect. The
   * secret never appears in an environment that code or children could read.
   */
  launchToken: "CONNECT_PLUGIN_LAUNCH_TOKEN",
  /**
   * Network mode: the address to listen on (for example "0.0.0.0:8080" or
   * ":8080"). Lets one plugin binary run as a sidecar or remote service
   * without code changes.
   */
  listen: "CONNECT_PLUGIN_LISTEN",
  /**
   * "1": debug mode for a plugin started by hand. No cookie needed; it
   * serves on a private unix socket as if launched, prints
   * `CONNECT_PLUGIN_REATTACH=<json>` (go-plugin's ReattachConfig) on stdout
   * for a host to attach with, and runs until SIGINT or SIGTERM.
   */
  debug: "CONNECT_PLUGIN_DEBUG",
  /**
   * Read by the loader that `connect-plugin code-cache` writes, not by
   * serve(): "write" saves V8's code cache next to the bundle when the
   * process exits (the build's one launch); "check" prints on stderr whether
   * the cache was used. Unset, a valid cache is used and never written. A
   * host passes no CONNECT_PLUGIN_ variable on from its own environment.
   */
  codeCache: "CONNECT_PLUGIN_CODE_CACHE",
  /** Network mode: PEM files for TLS, so a sidecar needs no code change. */
  tlsCertFile: "CONNECT_PLUGIN_TLS_CERT_FILE",
  tlsKeyFile: "CONNECT_PLUGIN_TLS_KEY_FILE",
  /** Network mode: CA that client certificates must chain to (mutual TLS). */
  tlsClientCaFile: "CONNECT_PLUGIN_TLS_CLIENT_CA_FILE",
} as const;

/**
 * Values of the handshake line's protocol field.
 *
 * - `grpc`: go-plugin's gRPC protocol, understood by every go-plugin host.
 * - `connect`: Connect RPC (Connect, gRPC and gRPC-web served at once) over
 *   HTTP/2 without TLS on the announced socket. Announced only to hosts that
 *   list it in CONNECT_PLUGIN_TRANSPORTS.
 * - `framed`: connect-plugin's local framing (src/transport/framed): the same
 *   call semantics as Connect, without HTTP/2, for a fraction of the cost per
 *   call. Announced only to hosts that list it.
 */
export type WireProtocol = "grpc" | "connect" | "framed" | "netrpc";

/** The local transports a connect-plugin host can accept, best first by default. */
export type LocalTransport = "framed" | "connect";
export const DEFAULT_LOCAL_TRANSPORTS: readonly LocalTransport[] = ["framed", "connect"];

/** The go-plugin core protocol version: the first field of the handshake line. */
export const CORE_PROTOCOL_VERSION = 1;
