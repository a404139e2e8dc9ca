import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import type * as tlsModule from "node:tls";
import { listenOn, peerOf, type BoundAddress, type ListenTarget } from "./listen.js";
import { watchPings, type PingWatchOptions } from "./h2-watchdog.js";
import { FRAMED_ALPN, FRAMED_PREFACE, FRAMED_PREFACE_FIRST_BYTE } from "./framed/preface.js";

import { SESSION_IDLE_TIMEOUT_MS, closeWhenIdle } from "./h2-idle.js";
import { STREAMS_UNCLAIMED_WARNING, claimStreams, type StreamClaim } from "./h2-streams.js";
import type { NodeHandler } from "./node-adapter.js";
import { createTlsListener, type TlsListenerOptions } from "./tls-listener.js";

export type { NodeHandler } from "./node-adapter.js";

/**
 * TLS for a plugin's HTTP server: its certificate, and which client
 * certificates it accepts (`clientCert`: only that one, AutoMTLS;
 * `clientCa`: any it signed, mutual TLS; see tls-listener.ts).
 */
export type ServerTls = Pick<TlsListenerOptions, "cert" | "key" | "clientCert" | "clientCa">;

/**
 * Answers 400 to a request the handler throws on synchronously. The adapter
 * builds a URL from the request's authority and path before anything else,
 * and throws on one that is not a URL (an HTTP/2 `:authority` of
 * "127.0f0.1:80", found by fuzzing): unguarded, that throw escaped the
 * server's event and killed the plugin process, so any client could stop it.
 */
function answerMalformed(handler: NodeHandler): NodeHandler {
  return (req, res) => {
    try {
      handler(req, res);
    } catch (error) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      res.statusCode = 400;
      res.setHeader("content-type", "text/plain; charset=utf-8");
      res.end(`malformed request: ${error instanceof Error ? error.message : String(error)}\n`);
    }
  };
}

/**
 * Gives `streams` the streams of `h2` before its "request" listener (the
 * guarded handler) sees them. A claimed stream skips answerMalformed: the
 * claim throws only before it touches a stream, and such a stream goes to
 * the handler. `warn` hears it if node:http2 does not let them be taken.
 */
function claim(
  h2: http2.Http2Server | http2.Http2SecureServer,
  streams: StreamClaim | undefined,
  warn: ((message: string) => void) | undefined,
): void {
  if (streams !== undefined && !claimStreams(h2, streams)) warn?.(STREAMS_UNCLAIMED_WARNING);
}

/**
 * What one HTTP/2 peer may hold. Streams over the limit are refused
 * (REFUSED_STREAM; well-behaved clients queue them), and after 100 refusals
 * (node's maxSessionRejectedStreams) the session is closed. node's default
 * limit is 2^32-1 streams, so a hostile client could start thousands of
 * handlers on one connection. maxSessionMemory is node's default (10 MB),
 * stated so that it is not lost.
 */
const H2_LIMITS: http2.ServerOptions = {
  maxSessionMemory: 10,
  settings: { maxConcurrentStreams: 256 },
};

/** How long a new plaintext connection may take to say which protocol it speaks. */
const SNIFF_TIMEOUT_MS = 10_000;

/**
 * Where a network-mode port sends the connections that asked for the framed
 * protocol (preface or ALPN, see framed/preface.ts): a detached FramedServer.
 */
export interface FramedListener {
  accept(socket: net.Socket): void;
  close(graceMs?: number): Promise<void>;
}
const H2_PREFACE_START = Buffer.from("PRI");

/** How the server watches its HTTP/2 sessions: idle timeout, PINGs, and where it says why it cut one off. */
interface SessionWatch {
  readonly idleTimeoutMs: number;
  readonly ping: PingWatchOptions;
  readonly onCutOff: ((reason: string) => void) | undefined;
}

/**
 * The HTTP server a plugin serves on. Three shapes, one interface:
 *
 * - **h2c only** (a launched plugin on its private socket, go-plugin hosts
 *   without AutoMTLS): node:http2 without TLS, given each connection as
 *   network mode's h2c is (serveH2c), so that a peer's end of input ends the
 *   connection at once. The host is known to speak HTTP/2 with prior
 *   knowledge, and HTTP/2 carries every streaming kind.
 * - **HTTP/1.1 and h2c on one port** (network mode): node:http listens, so
 *   its header, request and keep-alive timeouts apply, and hands each
 *   connection that starts with the HTTP/2 preface ("PRI", no HTTP/1.1
 *   method) to an HTTP/2 server instead, which reads the socket (serveH2c).
 *   curl, browsers, load balancers and gRPC clients all reach the plugin on
 *   the same port.
 * - **TLS** (network mode, AutoMTLS): our TLS listener (tlsRouter) listens,
 *   checks the client's certificate, and ALPN picks the framed protocol,
 *   HTTP/2 or HTTP/1.1.
 *
 * It tracks every connection, so that close() can end them all; without that,
 * a keep-alive connection would hold the process open. An HTTP/2 session
 * without streams is closed after 5 minutes (h2-idle.ts), an HTTP/1.1
 * keep-alive connection after 30 s, and an HTTP/2 session that does not
 * answer a PING within 10 s (asked within 500 ms of reading bytes, or every
 * 10 s when idle), or whose PING never leaves node:http2 because it stopped
 * after a protocol error, is destroyed (h2-watchdog.ts).
 */
export class PluginHttpServer {
  private readonly sockets = new Set<net.Socket>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private closing: Promise<void> | undefined;
  /** Where the server listens (set once it does). */
  bound: BoundAddress = { network: "unix", address: "" };

  private constructor(
    private readonly listener: net.Server,
    private readonly h1: http.Server | undefined,
    private readonly h2: http2.Http2Server | http2.Http2SecureServer,
    sessions: SessionWatch,
    private readonly framed?: FramedListener,
  ) {
    listener.prependListener("connection", (socket: net.Socket) => {
      // RPCs are small request/response exchanges: Nagle's algorithm would
      // hold each answer back until the client's delayed ACK, about 40 ms.
      socket.setNoDelay(true);
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
      if (this.closing !== undefined) socket.destroy();
    });
    h2.on("session", (session: http2.ServerHttp2Session) => {
      closeWhenIdle(session, sessions.idleTimeoutMs);
      this.sessions.add(session);
      session.once("close", () => this.sessions.delete(session));
      const peer = peerOf(session.socket);
      const cutOff = (why: string): void =>
        sessions.onCutOff?.(`HTTP/2 session from ${peer} cut off: ${why}`);
      watchPings(session, sessions.ping, cutOff);
      session.on("error", (error: Error) => cutOff(error.message));
    });
  }

  /** Starts a server and resolves once it is listening. */
  static async listen(
    unguarded: NodeHandler,
    target: ListenTarget,
    options: {
      acceptHttp1: boolean;
      tls?: ServerTls;
      /** Told why a peer was cut off (a session error, a PING not answered), for a log line. */
      onPeerCutOff?: (reason: string) => void;
      /**
       * Serves the HTTP/2 streams it takes before node:http2 builds its
       * compatibility objects for them (h2-streams.ts; the adapter's
       * claimStream). Every other stream, and every HTTP/1.1 request, goes
       * to the handler. Default: all go to the handler.
       */
      streams?: StreamClaim;
      /** Told, once, if `streams` cannot be given the streams (STREAMS_UNCLAIMED_WARNING), for a log line. */
      onWarning?: (message: string) => void;
      /** Every HTTP/2 session is PINGed; one that does not answer is destroyed (h2-watchdog.ts). */
      ping?: PingWatchOptions;
      /** An HTTP/2 session with no open stream this long is closed. Default SESSION_IDLE_TIMEOUT_MS (5 min). */
      idleTimeoutMs?: number;
      /**
       * Network mode: serve the framed protocol on the same port to clients
       * that ask for it (the preface on cleartext, ALPN on TLS).
       */
      framed?: FramedListener;
      /**
       * Network mode: how long a connection may take, from its start, to say
       * which protocol it speaks (its preface on cleartext, its TLS handshake
       * on TLS). Default 10 s.
       */
      prefaceTimeoutMs?: number;
    },
  ): Promise<PluginHttpServer> {
    const { tls } = options;
    const prefaceTimeoutMs = options.prefaceTimeoutMs ?? SNIFF_TIMEOUT_MS;
    const sessions: SessionWatch = {
      idleTimeoutMs: options.idleTimeoutMs ?? SESSION_IDLE_TIMEOUT_MS,
      ping: options.ping ?? {},
      onCutOff: options.onPeerCutOff,
    };
    const handler = answerMalformed(unguarded);
    let server: PluginHttpServer;
    const framed = options.framed;
    if (tls !== undefined) {
      const { listener, h1, h2 } = tlsRouter(handler, tls, {
        acceptHttp1: options.acceptHttp1,
        handshakeTimeoutMs: prefaceTimeoutMs,
        onRefused: options.onPeerCutOff,
        framed,
      });
      claim(h2, options.streams, options.onWarning);
      server = new PluginHttpServer(listener, h1, h2, sessions, framed);
    } else if (options.acceptHttp1) {
      const h1 = http.createServer({ keepAliveTimeout: 30_000 }, handler);
      const h2 = http2.createServer(H2_LIMITS, handler);
      claim(h2, options.streams, options.onWarning);
      routeByPreface(h1, h2, {
        prefaceTimeoutMs,
        onCutOff: options.onPeerCutOff,
        framed,
      });
      server = new PluginHttpServer(h1, h1, h2, sessions, framed);
    } else {
      // h2c only (a launched plugin's private socket, go-plugin hosts):
      // node:http2 reads each connection's socket, as network mode's h2c.
      const h2 = http2.createServer(H2_LIMITS, handler);
      claim(h2, options.streams, options.onWarning);
      const listener = net.createServer((socket) => serveH2c(h2, socket, Buffer.alloc(0)));
      server = new PluginHttpServer(listener, undefined, h2, sessions);
    }
    await server.start(target);
    return server;
  }

  private async start(target: ListenTarget): Promise<void> {
    this.bound = await listenOn(this.listener, target);
  }

  /**
   * Stops accepting connections and closes the open ones: HTTP/2 sessions get
   * a GOAWAY and may finish their streams, idle HTTP/1.1 connections close at
   * once. Whatever is still open after `graceMs` is destroyed.
   */
  close(graceMs = 0): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.listener.close(() => resolve());
      for (const session of this.sessions) session.close();
      this.h1?.closeIdleConnections();
      void this.framed?.close(graceMs);
      const timer = setTimeout(() => {
        for (const socket of this.sockets) socket.destroy();
      }, graceMs);
      timer.unref();
    }).then(() => {
      for (const socket of this.sockets) socket.destroy();
    });
    return this.closing;
  }
}

/**
 * Every TLS port of the HTTP server: a TLS listener of our own
 * (tls-listener.ts, which checks client certificates) offers ALPN
 * `connect-plugin-framed/1` (with `framed`), `h2` and (with `acceptHttp1`)
 * `http/1.1`, and hands each accepted connection to the server for the
 * protocol negotiated. (node:http2's secure server fixes its ALPN list to h2
 * and http/1.1, and would make its session before a pinned certificate is
 * checked.) A client that offers no ALPN is served HTTP/1.1 if accepted,
 * else cut off.
 */
function tlsRouter(
  handler: NodeHandler,
  tls: ServerTls,
  options: {
    readonly acceptHttp1: boolean;
    readonly handshakeTimeoutMs: number;
    readonly onRefused: ((reason: string) => void) | undefined;
    readonly framed: FramedListener | undefined;
  },
): { listener: tlsModule.Server; h1: http.Server | undefined; h2: http2.Http2SecureServer } {
  const { framed, acceptHttp1 } = options;
  // Never listens: it is given the TLS connections that chose h2. `ca: []`:
  // its (unused) TLS context would otherwise load the root store.
  const h2 = http2.createSecureServer({ ca: [], ...H2_LIMITS }, handler);
  const h1 = acceptHttp1 ? http.createServer({ keepAliveTimeout: 30_000 }, handler) : undefined;
  const listener = createTlsListener(
    {
      ...tls,
      ALPNProtocols: [
        ...(framed !== undefined ? [FRAMED_ALPN] : []),
        "h2",
        ...(acceptHttp1 ? ["http/1.1"] : []),
      ],
      handshakeTimeoutMs: options.handshakeTimeoutMs,
      onRefused: options.onRefused,
    },
    (socket) => {
      if (socket.alpnProtocol === FRAMED_ALPN && framed !== undefined) framed.accept(socket);
      else if (socket.alpnProtocol === "h2") h2.emit("secureConnection", socket);
      else if (h1 !== undefined) h1.emit("connection", socket);
      else socket.destroy();
    },
  );
  return { listener, h1, h2 };
}

/**
 * Makes `h1` pass connections that begin with the HTTP/2 preface to `h2`,
 * and (with `framed`) those that begin with the framed preface to the framed
 * server, after answering it with the same preface. HTTP/1.1 connections stay
 * with `h1` as real sockets (the sniffed bytes are unshifted, which node:http
 * reads), so all of node:http's timeouts apply; HTTP/2 connections go to
 * `h2` as the same real sockets, read natively (serveH2c). A connection that
 * has not said which protocol it speaks within `prefaceTimeoutMs` is closed;
 * the sniffed bytes are at most one read.
 */
function routeByPreface(
  h1: http.Server,
  h2: http2.Http2Server,
  options: {
    prefaceTimeoutMs: number;
    onCutOff: ((reason: string) => void) | undefined;
    framed: FramedListener | undefined;
  },
): void {
  const { onCutOff, framed } = options;
  const serveHttp1 = h1.listeners("connection") as Array<(socket: net.Socket) => void>;
  h1.removeAllListeners("connection");
  h1.on("connection", (socket: net.Socket) => {
    // From the connection's start, not from its last byte: a peer that
    // trickles the preface a byte at a time must not hold the socket longer.
    const sniffing = setTimeout(() => {
      onCutOff?.(
        `connection from ${peerOf(socket)} cut off: no protocol preface within ${options.prefaceTimeoutMs} ms`,
      );
      socket.destroy();
    }, options.prefaceTimeoutMs).unref();
    socket.once("close", () => clearTimeout(sniffing));
    let head = Buffer.alloc(0);
    let needed = H2_PREFACE_START.length;
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      if (framed !== undefined && head[0] === FRAMED_PREFACE_FIRST_BYTE) {
        needed = FRAMED_PREFACE.length;
      }
      if (head.length < needed) return;
      socket.off("data", onData);
      socket.pause();
      clearTimeout(sniffing);
      if (needed === FRAMED_PREFACE.length && framed !== undefined) {
        startFramed(socket, head, framed, onCutOff);
      } else if (head.subarray(0, H2_PREFACE_START.length).equals(H2_PREFACE_START)) {
        serveH2c(h2, socket, head);
      } else {
        socket.unshift(head);
        for (const listener of serveHttp1) listener.call(h1, socket);
        socket.resume();
      }
    };
    socket.on("data", onData);
    socket.on("error", () => socket.destroy());
    // A peer that hangs up before it has said which protocol it speaks is gone.
    socket.once("end", () => {
      if (socket.listenerCount("data") > 0 && head.length < needed) socket.destroy();
    });
  });
}

/**
 * Hands a cleartext HTTP/2 connection to `h2`, which reads the socket's own
 * handle (no JavaScript between the socket and nghttp2). `head`: bytes
 * already read from it (network mode's sniff), put back with unshift():
 * node:http2 feeds what a socket has buffered to its session first.
 *
 * An HTTP/2 client never half-closes (it says GOAWAY): end of input means it
 * is gone, and streams waiting for request bodies end with it. A peer that
 * breaks the protocol or stops in the middle of a frame is left to the PING
 * watchdog (h2-watchdog.ts), as on TLS listeners.
 */
function serveH2c(h2: http2.Http2Server, socket: net.Socket, head: Buffer): void {
  // node:http2 makes the session synchronously in its "connection" listener.
  h2.once("session", (session: http2.ServerHttp2Session) => {
    socket.once("end", () => session.destroy());
  });
  if (head.length > 0) socket.unshift(head);
  h2.emit("connection", socket);
}

/**
 * A connection that began with the framed preface's first byte: the whole
 * preface answers it, and the connection goes to the framed server with
 * whatever followed; anything else is cut off (it is not HTTP either).
 */
function startFramed(
  socket: net.Socket,
  head: Buffer,
  framed: FramedListener,
  onCutOff: ((reason: string) => void) | undefined,
): void {
  const n = FRAMED_PREFACE.length;
  if (!head.subarray(0, n).equals(FRAMED_PREFACE)) {
    onCutOff?.(
      `connection from ${peerOf(socket)} cut off: not a protocol preface this port speaks`,
    );
    socket.destroy();
    return;
  }
  socket.write(FRAMED_PREFACE);
  if (head.length > n) socket.unshift(head.subarray(n));
  framed.accept(socket);
  socket.resume();
}
