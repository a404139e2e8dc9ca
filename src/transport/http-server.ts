import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { Duplex } from "node:stream";

/** A request handler that both node:http and node:http2 servers accept. */
export type NodeHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/**
 * TLS for a network-mode server. With `clientCa`, clients must present a
 * certificate signed by it (mutual TLS).
 */
export interface ServerTls {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  readonly clientCa?: string | Buffer;
}

/** Where a server listens. */
export type ListenTarget =
  | { readonly network: "unix"; readonly path: string }
  | { readonly network: "tcp"; readonly host: string; readonly port: number };

/** Where a server ended up listening, with the port resolved. */
export type BoundAddress =
  | { readonly network: "unix"; readonly address: string }
  | {
      readonly network: "tcp";
      readonly address: string;
      readonly host: string;
      readonly port: number;
    };

const H2_PREFACE_START = Buffer.from("PRI");

/**
 * Wraps a socket whose first bytes were already read, so that a server sees
 * them again. (socket.unshift() is not enough: node:http2 reads from the
 * socket's native handle and would never see unshifted bytes.)
 */
function replayHead(socket: net.Socket, head: Buffer): Duplex {
  const duplex = new Duplex({
    read: () => socket.resume(),
    write: (chunk: Buffer, _encoding, callback) => socket.write(chunk, callback),
    final: (callback) => socket.end(callback),
    destroy: (error, callback) => {
      socket.destroy(error ?? undefined);
      callback(error);
    },
  });
  duplex.push(head);
  socket.on("data", (chunk: Buffer) => {
    if (!duplex.push(chunk)) socket.pause();
  });
  socket.once("end", () => duplex.push(null));
  socket.once("close", () => duplex.destroy());
  socket.on("error", (error) => duplex.destroy(error));
  socket.resume();
  return duplex;
}

/**
 * The HTTP server a plugin serves on.
 *
 * On a private socket for its host it speaks HTTP/2 without TLS (h2c with
 * prior knowledge) only: the host is known to speak it, and HTTP/2 carries
 * every streaming kind. In network mode it also speaks HTTP/1.1 on the same
 * port, telling the two apart by the HTTP/2 connection preface, so that
 * curl, browsers, load balancers and Kubernetes probes all reach the plugin.
 *
 * It keeps track of every connection, so that close() can end them all;
 * without that, a keep-alive connection would hold the process open.
 */
export class PluginHttpServer {
  private readonly sockets = new Set<net.Socket>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly h2: http2.Http2Server | http2.Http2SecureServer;
  private readonly h1: http.Server | undefined;
  private closing: Promise<void> | undefined;

  /** Where the server listens (set once it does). */
  bound: BoundAddress = { network: "unix", address: "" };

  private constructor(
    private readonly server: net.Server,
    handler: NodeHandler,
    acceptHttp1: boolean,
    tls: ServerTls | undefined,
  ) {
    if (tls !== undefined) {
      // With TLS, ALPN picks HTTP/2 or HTTP/1.1; no sniffing needed.
      this.h2 = http2.createSecureServer(
        {
          cert: tls.cert,
          key: tls.key,
          allowHTTP1: acceptHttp1,
          minVersion: "TLSv1.2",
          ...(tls.clientCa !== undefined && {
            ca: tls.clientCa,
            requestCert: true,
            rejectUnauthorized: true,
          }),
        },
        handler,
      );
      this.h1 = undefined;
    } else {
      this.h2 = http2.createServer({}, handler);
      this.h1 = acceptHttp1 ? http.createServer({ keepAliveTimeout: 30_000 }, handler) : undefined;
    }
    this.h2.on("session", (session) => {
      this.sessions.add(session);
      session.once("close", () => this.sessions.delete(session));
    });
    server.on("connection", (socket) => this.accept(socket));
  }

  /** Starts a server and resolves once it is listening. */
  static async listen(
    handler: NodeHandler,
    target: ListenTarget,
    options: { acceptHttp1: boolean; tls?: ServerTls },
  ): Promise<PluginHttpServer> {
    const server = net.createServer();
    const plugin = new PluginHttpServer(server, handler, options.acceptHttp1, options.tls);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      const done = (): void => {
        server.off("error", reject);
        resolve();
      };
      if (target.network === "unix") server.listen(target.path, done);
      else server.listen(target.port, target.host, done);
    });
    const addr = server.address();
    if (addr !== null && typeof addr === "object") {
      const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
      plugin.bound = { network: "tcp", address: `${host}:${addr.port}`, host, port: addr.port };
    } else {
      plugin.bound = { network: "unix", address: String(addr) };
    }
    return plugin;
  }

  private accept(socket: net.Socket): void {
    // RPCs are small request/response exchanges: Nagle's algorithm would hold
    // each answer back until the client's delayed ACK, about 40 ms.
    socket.setNoDelay(true);
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
    if (this.closing !== undefined) {
      socket.destroy();
      return;
    }
    const h1 = this.h1;
    if (h1 === undefined) {
      this.h2.emit("connection", socket);
      return;
    }
    // Sniff the first bytes: HTTP/2 with prior knowledge starts with "PRI",
    // which is no HTTP/1.1 method.
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      if (head.length < H2_PREFACE_START.length) return;
      socket.off("data", onData);
      socket.pause();
      const isH2 = head.subarray(0, H2_PREFACE_START.length).equals(H2_PREFACE_START);
      (isH2 ? this.h2 : h1).emit("connection", replayHead(socket, head));
    };
    socket.on("data", onData);
    socket.on("error", () => socket.destroy());
  }

  /**
   * Stops accepting connections and closes the open ones: HTTP/2 sessions get
   * a GOAWAY and may finish their streams, idle HTTP/1.1 connections close at
   * once. Whatever is still open after `graceMs` is destroyed.
   */
  close(graceMs = 0): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const session of this.sessions) session.close();
      this.h1?.closeIdleConnections();
      const timer = setTimeout(() => {
        for (const socket of this.sockets) socket.destroy();
      }, graceMs);
      timer.unref();
      if (this.sockets.size === 0) clearTimeout(timer);
    }).then(() => {
      for (const socket of this.sockets) socket.destroy();
    });
    return this.closing;
  }
}
