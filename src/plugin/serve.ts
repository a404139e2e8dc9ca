import { REATTACH_ENV, type ReattachConfig } from "../protocol/reattach.js";
import { readFileSync, writeSync } from "node:fs";
import {
  Code,
  ConnectError,
  createContextValues,
  type ConnectRouter,
  type Interceptor,
} from "@connectrpc/connect";
import { clientAddress } from "../transport/client-address.js";
import { PluginController } from "../gen/connectplugin/v1/controller_pb.js";
import { Env, type WireProtocol } from "../protocol/env.js";
import { formatHandshakeLine } from "../protocol/handshake-line.js";
import type { PluginDefinition } from "../protocol/plugin-set.js";
import { negotiateVersion, parseVersionList } from "../protocol/versions.js";
import type { NodeHandler, PluginHttpServer, ServerTls } from "../transport/http-server.js";
import type { NodeAdapter } from "../transport/node-adapter.js";
import type { BoundAddress, ListenTarget } from "../transport/listen.js";
import { FramedServer, type FramedServerOptions } from "../transport/framed/server.js";
import { DEFAULT_MAX_FRAME_BYTES } from "../transport/framed/frames.js";
import { createPrivateSocket, type PrivateSocket } from "../transport/socket-dir.js";
import type { CorsOptions } from "../security/cors.js";
import { PluginServer, type PluginServerOptions } from "./plugin-server.js";
import { isLoopbackHost } from "../security/plaintext.js";
import { isAuthInterceptor } from "../security/auth.js";
import { pluginLog, takeStderr } from "./plugin-log.js";
import { readLaunchToken } from "./launch-token.js";
import { launchMtls, recordLaunchedBroker } from "./launch-mtls.js";
import type { GoPluginSide } from "./goplugin-serve.js";
import { deferToSnapshotStart } from "./snapshot.js";
import { signalBlind } from "../transport/signal-view.js";

export interface ServeOptions extends PluginServerOptions {
  /**
   * Network mode: serve on this address ("0.0.0.0:8080", ":8080", "8080")
   * over HTTP/1.1 and HTTP/2, for sidecars and remote services. The
   * CONNECT_PLUGIN_LISTEN environment variable does the same without a code
   * change. Without either, the plugin expects to be launched by a host.
   */
  readonly listen?: string;
  /**
   * Exit the process once a shutdown completes. Defaults to true; turn it off
   * to embed a network-mode plugin in a larger server.
   */
  readonly exitProcess?: boolean;
  /**
   * Network mode only: honour the Shutdown RPC. Off by default, because a
   * remote plugin is shared, and one host closing its client must not stop it
   * for every other host. (A launched plugin belongs to its host and always
   * honours it.)
   */
  readonly allowRemoteShutdown?: boolean;
  /**
   * Network mode: serve over TLS (HTTP/2 and HTTP/1.1 chosen by ALPN). With
   * `clientCa`, clients must present a certificate it signed (mutual TLS);
   * with `clientCert` instead, only that one certificate (tls-listener.ts).
   * CONNECT_PLUGIN_TLS_CERT_FILE, CONNECT_PLUGIN_TLS_KEY_FILE and
   * CONNECT_PLUGIN_TLS_CLIENT_CA_FILE do the same with PEM files.
   */
  readonly tls?: ServerTls;
  /**
   * Interceptors run on every call, before the plugin's own: auth
   * (`requireBearer`, `requireApiKey`), rate limits (`rateLimit`), logging.
   */
  readonly interceptors?: readonly Interceptor[];
  /**
   * Largest request message accepted, in bytes; larger ones fail with
   * ResourceExhausted ("message size is larger than configured
   * readMaxBytes M"). Default 256 MiB, the framed transport's frame limit
   * (which also caps it there).
   */
  readonly readMaxBytes?: number;
  /**
   * Largest response message sent, in bytes; larger ones fail with
   * ResourceExhausted. Default: connect-es' 4 GiB over HTTP, and the frame
   * limit, 256 MiB, on the framed transport (which also caps it there).
   */
  readonly writeMaxBytes?: number;
  /**
   * Framed transport: bytes of request messages one call may hold unread by
   * its handler before it fails with ResourceExhausted (no per-call flow
   * control there). Default 16 MiB (framed/limits.ts).
   */
  readonly maxQueuedRequestBytes?: number;
  /**
   * Framed transport: bytes of request messages all streaming calls on one
   * connection may hold unread. Default 64 MiB (framed/limits.ts).
   */
  readonly maxConnectionQueuedRequestBytes?: number;
  /**
   * Network mode: answers `GET /metrics` on the plugin's port with this
   * handler, for Prometheus to scrape (`prometheusMetrics().handler` from
   * connect-plugin/observability). Off by default.
   */
  readonly metrics?: NodeHandler;
  /**
   * Network mode: the web origins whose pages may call this plugin from a
   * browser (Connect and gRPC-web; see docs/browsers.md). Default: none, and
   * requests that carry another Origin are refused. CONNECT_PLUGIN_CORS_ORIGINS
   * does the same without a code change.
   */
  readonly cors?: CorsOptions;
  /**
   * Network mode on a loopback address: Host names answered besides loopback
   * ones (DNS-rebinding guard, see HostGuard); ["*"] turns the check off.
   * CONNECT_PLUGIN_ALLOWED_HOSTS does the same without a code change.
   */
  readonly allowedHosts?: readonly string[];
  /**
   * Network mode: serve gRPC server reflection (grpc.reflection.v1 and
   * v1alpha) for the plugin's services, so that grpcurl and other tools can
   * list and call them. On by default; reflection calls pass the same
   * interceptors (auth) as every other call. `false` turns it off.
   */
  readonly reflection?: boolean;
}

/** A running plugin server, as returned by serve(). */
export interface ServeHandle {
  /** "launched" when a host started this process, "network" otherwise. */
  readonly mode: "launched" | "network";
  /** Where the plugin listens. */
  readonly address: BoundAddress;
  /** The URL a remote host would use (network mode). */
  readonly url: string;
  /** Shuts down gracefully; resolves when the server is closed. */
  shutdown(reason?: string): Promise<void>;
  /** Resolves when the server has shut down. */
  readonly done: Promise<void>;
}

/** Exit code of a plugin that was started without its host (go-plugin uses 1 too). */
export const EXIT_NOT_LAUNCHED_BY_HOST = 1;

/**
 * Serves a plugin. Call it from the plugin's main file:
 *
 * ```ts
 * await serve({ handshake, plugins: { kv: implement(KV, new MemoryKV()) } });
 * ```
 *
 * What it does depends on how the process was started:
 *
 * - **Launched by a host** (the magic cookie is in the environment): it
 *   listens on a unix socket in a fresh private directory (loopback TCP where
 *   that is impossible), prints the handshake line on stdout and nothing else
 *   there, exits gracefully on the Shutdown RPC or SIGTERM, and exits when
 *   the host dies.
 * - **Network mode** (`listen` or CONNECT_PLUGIN_LISTEN): serves HTTP/1.1 and
 *   HTTP/2 on that address until SIGTERM or SIGINT.
 * - **Started by hand**: explains on stderr that this is a plugin and exits
 *   with code 1.
 * - **Built into a startup snapshot** (`connect-plugin snapshot`): does
 *   one of the above when the snapshot starts; the promise settles then.
 */
export function serve(
  definition: PluginDefinition,
  options: ServeOptions = {},
): Promise<ServeHandle> {
  // In a startup snapshot being built (`connect-plugin snapshot`): serve
  // when the snapshot starts, with the launch's environment.
  const start = (): Promise<ServeHandle> => serveNow(definition, options);
  return deferToSnapshotStart(start) ?? start();
}

async function serveNow(definition: PluginDefinition, options: ServeOptions): Promise<ServeHandle> {
  takeStderr(); // In a snapshot: the started process's, before anything replaces its write.
  const listen = options.listen ?? process.env[Env.listen];
  if (listen !== undefined && listen !== "") return serveNetwork(definition, options, listen);

  const { magicCookieKey, magicCookieValue } = definition.handshake;
  const cookie = process.env[magicCookieKey];
  if (process.env[Env.debug] === "1") return serveLaunched(definition, options, true);
  if (cookie !== magicCookieValue) {
    process.stderr.write(notLaunchedMessage(magicCookieKey, cookie));
    process.exit(EXIT_NOT_LAUNCHED_BY_HOST);
  }
  return serveLaunched(definition, options);
}

function notLaunchedMessage(key: string, value: string | undefined): string {
  const why =
    value === undefined
      ? `the magic cookie ${key} is not set`
      : `magic cookie mismatch: ${key} has a value this plugin does not expect`;
  return (
    `This binary is a plugin (${why}).\n` +
    `Plugins are not meant to be executed directly. Run the program that uses this plugin; ` +
    `it starts the plugin itself.\n` +
    `To run the plugin as a network service instead, set ${Env.listen}=HOST:PORT.\n`
  );
}

async function serveLaunched(
  definition: PluginDefinition,
  options: ServeOptions,
  debug = false,
): Promise<ServeHandle> {
  const server = new PluginServer(definition, options);

  // Version: go-plugin's protocolVersion() (server.go): the highest version
  // both list, else the lowest we serve. That covers a host that sent no
  // PLUGIN_PROTOCOL_VERSIONS (a legacy go-plugin host gets the oldest set) and
  // a mismatch (the host sees our version and reports it).
  const hostVersions = parseVersionList(process.env[Env.protocolVersions]);
  const ours = server.versions;
  const version = debug
    ? Math.max(...ours)
    : (negotiateVersion(hostVersions, ours) ?? Math.min(...ours));

  const protocol = chooseWireProtocol(process.env[Env.transports]);

  // The token first: if the host is already gone, exit before making anything.
  const token = await readLaunchToken();
  if (token === "host-gone") process.exit(EXIT_NOT_LAUNCHED_BY_HOST);
  const socketDir = process.env[Env.unixSocketDir] || undefined;
  const socket = createPrivateSocket(socketDir);
  const target: ListenTarget = socket
    ? { network: "unix", path: socket.path }
    : { network: "tcp", host: "127.0.0.1", port: 0 };
  const mtls = launchMtls();
  // go-plugin's services and broker (see goplugin-serve.ts), loaded only
  // when serving HTTP: the framed transport serves neither, and leaving
  // them (and the HTTP server) unloaded shortens a plugin's cold start.
  let goPlugin: GoPluginSide | undefined;
  if (protocol === "framed") {
    recordLaunchedBroker({
      ...(mtls !== undefined && { tls: mtls.peer }),
      ...(socketDir !== undefined && { socketDir }),
    });
  } else {
    goPlugin = (await import("./goplugin-serve.js")).prepareGoPluginSide({
      socketDir,
      mtls,
      // In debug mode hosts come and go (they attach); only Ctrl-C ends it.
      onShutdown: (reason) =>
        debug && reason.startsWith("the go-plugin host went away")
          ? undefined
          : server.onShutdownRequest(reason),
    });
  }
  const launchGuard: Interceptor[] = token ? [token] : [];
  const tls = mtls?.tls;
  const http: Listening =
    goPlugin === undefined
      ? await FramedServer.listen(server.routes, target, {
          ...framedOptions(server, launchGuard, options),
          ...(tls !== undefined && { tls }),
        })
      : await (async () => {
          const rpc = await handler(server, launchGuard, options, goPlugin.routes);
          const { PluginHttpServer } = await import("../transport/http-server.js");
          return PluginHttpServer.listen(rpc, target, {
            acceptHttp1: false,
            streams: rpc.claimStream,
            onWarning: (message) => pluginLog("warn", message),
            onPeerCutOff: (reason) => pluginLog("warn", reason),
            ...(tls !== undefined && { tls }),
          });
        })();

  // When the host dies, the pipes to it break: a log line written then must
  // not crash the plugin before it has cleaned up.
  process.stdout.on("error", () => {});
  process.stderr.on("error", () => {});
  if (socket !== undefined) process.once("exit", () => socket.remove());

  const ignoreSigint = (): void =>
    pluginLog("debug", "ignoring SIGINT; the host stops this plugin");
  // In debug mode the person who started it stops it, with Ctrl-C.
  const interrupted = (): void => void handle.shutdown("interrupted (debug mode)");
  const handle: ServeHandle = lifecycle(server, http, socket, options, "launched", {
    secure: false,
    signals: { SIGINT: debug ? interrupted : ignoreSigint },
  });
  if (debug) {
    writeSync(1, debugReattachLine(protocol, version, http.bound));
    return handle;
  }

  // The handshake line is the only thing this library ever writes to stdout.
  // writeSync, so that it is out before anything else can be.
  writeSync(
    1,
    `${formatHandshakeLine({
      protocolVersion: version,
      network: http.bound.network,
      address: http.bound.address,
      protocol,
      serverCert: mtls?.serverCert,
      multiplex: false,
    })}${muxField()}\n`,
  );
  if (goPlugin?.hostIsGoPlugin) goPlugin.captureStdio();

  watchParent(() => void handle.shutdown("host process went away"));
  return handle;
}

/** Debug mode's stdout line: go-plugin's ReattachConfig as JSON (see protocol/reattach.ts). */
function debugReattachLine(
  protocol: string,
  version: number,
  bound: { network: "unix" | "tcp"; address: string },
): string {
  const config: ReattachConfig = {
    Protocol: protocol === "grpc" ? "grpc" : "connect",
    ProtocolVersion: version,
    Pid: process.pid,
    Test: true,
    Addr: { Network: bound.network, String: bound.address },
  };
  return `${REATTACH_ENV}=${JSON.stringify(config)}\n`;
}

/**
 * go-plugin's seventh field: a host that sets PLUGIN_MULTIPLEX_GRPC reads
 * whether the plugin supports broker multiplexing. We do not, and say so
 * ("|false"), so that a Go host reports ErrGRPCBrokerMuxNotSupported rather
 * than telling the user to recompile an old Go plugin.
 */
function muxField(): string {
  return process.env.PLUGIN_MULTIPLEX_GRPC ? "|false" : "";
}

async function serveNetwork(
  definition: PluginDefinition,
  options: ServeOptions,
  listen: string,
): Promise<ServeHandle> {
  const server = new PluginServer(definition, options);
  const guard: Interceptor[] = options.allowRemoteShutdown ? [] : [refuseRemoteShutdown];
  const from = options.listen !== undefined ? "listen" : Env.listen;
  let http: PluginHttpServer;
  let tls: ServerTls | undefined;
  try {
    // Loaded here, not at start-up: a launched plugin on the framed
    // transport needs none of them.
    const [{ PluginHttpServer }, { CorsEnv, CorsPolicy, list }, { reflectionRoutes }] =
      await Promise.all([
        import("../transport/http-server.js"),
        import("../security/cors.js"),
        import("./reflection.js"),
      ]);
    const target = parseListen(listen);
    tls = options.tls ?? tlsFromEnv();
    const cors = options.cors !== undefined ? new CorsPolicy(options.cors) : CorsPolicy.fromEnv();
    const refused = (origin: string): void =>
      pluginLog("warn", "refused a browser request: origin not allowed by CORS", { origin });
    const allowedHosts = options.allowedHosts ?? list(process.env[CorsEnv.allowedHosts]);
    const routes = options.reflection === false ? undefined : reflectionRoutes;
    const rpc = await handler(server, guard, options, routes);
    const metrics = options.metrics;
    // /metrics behind the same Host and browser checks as the RPCs: a page
    // rebound to 127.0.0.1 must not read it either.
    const hostGuard =
      target.network === "tcp" && isLoopbackHost(target.host) ? { allowedHosts } : undefined;
    const guarded = CorsPolicy.wrap(
      cors,
      metrics === undefined
        ? rpc
        : (req, res) =>
            req.method === "GET" && req.url === "/metrics" ? metrics(req, res) : rpc(req, res),
      refused,
      hostGuard,
    );
    http = await PluginHttpServer.listen(guarded, target, {
      acceptHttp1: true,
      // Lean unary calls straight from the HTTP/2 stream, behind the same checks.
      streams: CorsPolicy.wrapStreams(rpc.claimStream, hostGuard),
      onWarning: (message) => pluginLog("warn", message),
      onPeerCutOff: (reason) => pluginLog("warn", reason),
      ...(tls !== undefined && { tls }),
      framed: networkFramed(server, guard, options),
    });
  } catch (error) {
    const message = `cannot serve on ${JSON.stringify(listen)} (${from}): ${listenProblem(error)}`;
    // A plugin run as a service: one line saying what is wrong, and an exit
    // code, rather than an unhandled rejection's stack trace.
    if (options.exitProcess ?? true) {
      pluginLog("error", message);
      process.exit(EXIT_CANNOT_SERVE);
    }
    // Nothing was served, but the server's shutdown signal and status
    // listeners exist: end them, as a successful serve's shutdown would.
    await server.shutdown("could not listen", 0);
    throw new Error(message, { cause: error });
  }
  const handle = lifecycle(server, http, undefined, options, "network", {
    secure: tls !== undefined,
    signals: { SIGINT: () => void handle.shutdown("SIGINT") },
  });
  const bound = http.bound;
  const scheme = tls !== undefined ? "https" : "http";
  const everywhere = bound.network === "tcp" && !isLoopbackHost(bound.host);
  pluginLog("info", "plugin serving", {
    // What the socket is bound to, and the URL a host on this machine can use.
    ...(everywhere && { listening: `${scheme}://${bound.address}` }),
    url: handle.url,
    versions: server.versions,
  });
  if (everywhere && tls === undefined) {
    // Only real authentication silences "without authentication": a logging
    // or rate-limit interceptor checks nobody.
    const auth = (options.interceptors ?? []).some(isAuthInterceptor);
    pluginLog("warn", plaintextWarning(bound.address, auth));
  }
  return handle;
}

/** Exit code of a network-mode plugin that cannot listen (a bad address, a port in use). */
export const EXIT_CANNOT_SERVE = 2;

/** Why listening failed, in words, for the errors a person can cause. */
function listenProblem(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  switch (code) {
    case "EADDRINUSE":
      return "the address is already in use (EADDRINUSE): another process listens on that port; choose another port";
    case "EACCES":
      return "permission denied (EACCES): ports below 1024 need privileges";
    case "EADDRNOTAVAIL":
      return "no network interface of this machine has that address (EADDRNOTAVAIL)";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `the host name does not resolve (${code})`;
    default:
      return (error as Error).message;
  }
}

/**
 * The warning for plaintext on a non-loopback address: loud, because anyone
 * who can reach the port can call the plugin (without interceptors), or read
 * the credentials (with them).
 */
function plaintextWarning(address: string, auth: boolean): string {
  return (
    `WARNING: serving plaintext HTTP${auth ? "" : " without authentication"} on ${address}, ` +
    `reachable from other machines: ` +
    (auth
      ? "credentials and data cross the network unencrypted. "
      : "anyone who can reach this port can call the plugin. ") +
    `Configure TLS (${Env.tlsCertFile}, ${Env.tlsKeyFile}, ${Env.tlsClientCaFile})` +
    `${auth ? "" : " and authentication (requireBearer, requireApiKey)"}, or listen on 127.0.0.1.`
  );
}

const refuseRemoteShutdown: Interceptor = signalBlind((next) => (req) => {
  if (req.service.typeName === PluginController.typeName && req.method.name === "Shutdown") {
    return Promise.reject(
      new ConnectError(
        "this plugin runs as a network service and does not accept Shutdown from hosts " +
          "(serve with allowRemoteShutdown to change that)",
        Code.PermissionDenied,
      ),
    );
  }
  return next(req);
});

/**
 * The wire protocol to announce: the first of the host's list that this
 * plugin speaks; "grpc" for go-plugin hosts, which send no list.
 */
export function chooseWireProtocol(hostList: string | undefined): WireProtocol {
  for (const name of (hostList ?? "").split(",")) {
    const p = name.trim();
    if (p === "framed" || p === "connect") return p;
  }
  return "grpc";
}

/**
 * The framed protocol on the network-mode port (see framed/preface.ts), for
 * connect-plugin hosts that ask for it: the same services, interceptors
 * (auth included), size limits and shutdown as over HTTP, and the
 * caller's address for per-client limits. CORS and the Host check are not needed:
 * they guard against web pages, and a browser cannot open a raw TCP
 * connection or choose a TLS ALPN id, so no page can speak the framed
 * protocol. Reflection is served over HTTP only (grpcurl and other tools
 * speak gRPC).
 */
function networkFramed(
  server: PluginServer,
  guard: Interceptor[],
  options: ServeOptions,
): FramedServer {
  return FramedServer.detached(server.routes, {
    ...framedOptions(server, guard, options),
    peer: "the caller",
    contextValues: (socket) =>
      createContextValues().set(
        clientAddress,
        "remoteAddress" in socket && typeof socket.remoteAddress === "string"
          ? socket.remoteAddress
          : "",
      ),
  });
}

/**
 * What every framed server of a plugin shares, launched or on the network:
 * the guard first (a call without the launch token or credentials goes no
 * further), then the user's interceptors, then the router's; the size and
 * queue limits of ServeOptions; a peer cut off for sending too much is a
 * warning in the plugin's log.
 */
function framedOptions(
  server: PluginServer,
  guard: Interceptor[],
  options: ServeOptions,
): FramedServerOptions {
  return {
    interceptors: [...guard, ...(options.interceptors ?? []), ...server.routerOptions.interceptors],
    shutdownSignal: server.routerOptions.shutdownSignal,
    readMaxBytes: options.readMaxBytes,
    writeMaxBytes: options.writeMaxBytes,
    maxQueuedRequestBytes: options.maxQueuedRequestBytes,
    maxConnectionQueuedRequestBytes: options.maxConnectionQueuedRequestBytes,
    onPeerCutOff: (reason) => pluginLog("warn", reason),
  };
}

/** What lifecycle() needs from a server: where it listens, and how to close it. */
interface Listening {
  readonly bound: BoundAddress;
  close(graceMs?: number): Promise<void>;
}

/**
 * The Connect HTTP handler. Its module (and connect-es' protocol code) is
 * imported only here, when a plugin serves HTTP: a plugin on the framed
 * transport never loads it, which shortens its cold start.
 */
async function handler(
  server: PluginServer,
  extra: Interceptor[],
  options: ServeOptions = {},
  moreRoutes?: (router: ConnectRouter) => void,
): Promise<NodeAdapter> {
  const [{ createNodeAdapter }, { unimplementedFallback }] = await Promise.all([
    import("../transport/node-adapter.js"),
    import("./grpc-unimplemented.js"),
  ]);
  const { interceptors, shutdownSignal } = server.routerOptions;
  let services = new Set<string>();
  return createNodeAdapter({
    routes: (router) => {
      server.routes(router);
      moreRoutes?.(router);
      services = new Set(router.handlers.map((h) => h.service.typeName));
    },
    fallback: unimplementedFallback(() => services),
    interceptors: [...extra, ...(options.interceptors ?? []), ...interceptors],
    shutdownSignal,
    // connect-es' default is 4 GiB, which a hostile length prefix could
    // make it buffer; the framed transport's limit serves HTTP as well.
    readMaxBytes: options.readMaxBytes ?? DEFAULT_MAX_FRAME_BYTES,
    ...(options.writeMaxBytes !== undefined && { writeMaxBytes: options.writeMaxBytes }),
    // The caller's address, for per-client limits (see clientAddress).
    contextValues: (req) =>
      createContextValues().set(clientAddress, req.socket?.remoteAddress ?? ""),
  });
}

/** Wires shutdown: drain calls, close the server, remove the socket, exit. */
function lifecycle(
  server: PluginServer,
  http: Listening,
  socket: PrivateSocket | undefined,
  options: ServeOptions,
  mode: ServeHandle["mode"],
  extra: {
    secure: boolean;
    /**
     * Signal handlers besides SIGTERM's graceful shutdown. In launched mode
     * SIGINT is ignored: Ctrl-C in a terminal reaches every process in the
     * foreground group, and the host decides when its plugins stop.
     */
    signals: Partial<Record<NodeJS.Signals, () => void>>;
  },
): ServeHandle {
  let finished: Promise<void> | undefined;
  let resolveDone: () => void = () => {};
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  const shutdown = (reason = "shutdown requested", graceMs?: number): Promise<void> => {
    finished ??= (async () => {
      await server.shutdown(reason, graceMs);
      await http.close(1_000);
      socket?.remove();
      for (const [signal, handler] of Object.entries(handlers)) process.off(signal, handler);
      pluginLog("info", "plugin stopped", { reason });
      resolveDone();
      if (options.exitProcess ?? true) process.exit(0);
    })();
    return finished;
  };
  server.onShutdownRequest = (reason, graceMs) => void shutdown(reason, graceMs);
  const handlers: Partial<Record<NodeJS.Signals, () => void>> = {
    SIGTERM: () => void shutdown("SIGTERM"),
    ...extra.signals,
  };
  for (const [signal, handler] of Object.entries(handlers)) process.on(signal, handler);
  const bound = http.bound;
  const host =
    bound.network === "tcp" && !["0.0.0.0", "[::]"].includes(bound.host) ? bound.host : "127.0.0.1";
  const url =
    bound.network === "tcp"
      ? `${extra.secure ? "https" : "http"}://${host}:${bound.port}`
      : `unix:${bound.address}`;
  return {
    mode,
    address: bound,
    url,
    shutdown,
    done,
  };
}

/** Reads TLS PEM files named by CONNECT_PLUGIN_TLS_* variables, if set. */
function tlsFromEnv(): ServerTls | undefined {
  const certFile = process.env[Env.tlsCertFile];
  const keyFile = process.env[Env.tlsKeyFile];
  if (!certFile && !keyFile) return undefined;
  if (!certFile || !keyFile) {
    throw new Error(`set both ${Env.tlsCertFile} and ${Env.tlsKeyFile}, or neither`);
  }
  const clientCaFile = process.env[Env.tlsClientCaFile];
  return {
    cert: readFileSync(certFile),
    key: readFileSync(keyFile),
    ...(clientCaFile ? { clientCa: readFileSync(clientCaFile) } : {}),
  };
}

/** Exits when the host dies: stdin reaches end-of-file, or we are re-parented. */
function watchParent(onGone: () => void): void {
  if (process.env[Env.parentWatch] === "stdin") {
    const stdin = process.stdin;
    if (stdin.readableEnded) {
      onGone();
      return;
    }
    // Discard anything the host sends; only end-of-file matters.
    stdin.on("data", () => {});
    stdin.once("end", onGone);
    stdin.once("error", onGone);
    stdin.resume();
  }
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid !== parent) {
      clearInterval(timer);
      onGone();
    }
  }, 1_000);
  timer.unref();
}

/** Parses "host:port", ":port" or "port"; an empty host means all interfaces. */
export function parseListen(listen: string): ListenTarget {
  const match = /^(?:\[?([^\]]*?)\]?:)?(\d+)$/.exec(listen.trim());
  if (match === null) {
    throw new Error(
      `invalid listen address ${JSON.stringify(listen)}; expected HOST:PORT, :PORT or PORT`,
    );
  }
  const host = match[1] === undefined || match[1] === "" ? "0.0.0.0" : match[1];
  const port = Number(match[2]);
  if (port > 65535)
    throw new Error(
      `invalid listen address ${JSON.stringify(listen)}; the port must be 0 to 65535`,
    );
  return { network: "tcp", host, port };
}
