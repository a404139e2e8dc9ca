import * as net from "node:net";
import type {
  ConnectRouter,
  ConnectRouterOptions,
  Interceptor,
  Transport,
} from "@connectrpc/connect";
import { createRouterTransport } from "@connectrpc/connect";
import { H1Pool, type H1Tls } from "./h1-pool.js";
import { stopIterator } from "./stop-iterator.js";
import { H2Session, type H2SessionOptions } from "./h2-session.js";
import {
  createProtocolTransport,
  withReachableTimeouts,
  type RpcProtocol,
} from "./protocol-transport.js";

export type { RpcProtocol } from "./protocol-transport.js";

/**
 * A client transport together with the means to tear down its connections.
 * Connect transports have no close(); the host owns the HTTP/2 session
 * manager so that it can abort every call in flight the moment a plugin dies,
 * instead of waiting for timeouts.
 */
export interface ClientTransport {
  readonly transport: Transport;
  /** Closes the connection; calls in flight fail with `reason`. */
  close(reason?: Error): void;
  /**
   * True when the underlying connection has failed or been closed. Tells a
   * transport failure (the plugin died) apart from an error the plugin sent.
   */
  isBroken(): boolean;
}

export interface TransportOptions {
  readonly protocol?: RpcProtocol;
  readonly interceptors?: Interceptor[];
  /** Largest message accepted from the plugin, in bytes. */
  readonly readMaxBytes?: number;
  /** Largest message sent to the plugin, in bytes. */
  readonly writeMaxBytes?: number;
  /**
   * Headers every call carries on the wire, set after the interceptors
   * (which never see them) over the caller's: a subprocess's launch token.
   * Every protocol and HTTP version (see createProtocolTransport); not
   * createInProcessTransport, which has no wire.
   */
  readonly callHeaders?: readonly (readonly [string, string])[];
}

/**
 * A transport to a plugin subprocess over the socket it announced in its
 * handshake: HTTP/2 with prior knowledge, binary protobuf.
 */
export function createSocketTransport(
  target: { network: "unix" | "tcp"; address: string },
  options: TransportOptions = {},
): ClientTransport {
  const connect =
    target.network === "unix"
      ? () => net.connect(target.address)
      : () => {
          const { host, port } = splitHostPort(target.address);
          return net.connect({ host, port, noDelay: true });
        };
  // The authority is only a name here: the socket comes from createConnection.
  return createH2Transport("http://localhost", { createConnection: connect }, options);
}

/**
 * A transport over one managed HTTP/2 connection (see H2Session): PINGs
 * every 15 s while calls are in flight, 10 s to answer. The gRPC protocol
 * needs HTTP/2, so this is its only path.
 */
export function createH2Transport(
  baseUrl: string,
  session: H2SessionOptions,
  options: TransportOptions,
): ClientTransport {
  const h2 = new H2Session(baseUrl, { pingIntervalMs: 15_000, pingTimeoutMs: 10_000, ...session });
  return {
    transport: createProtocolTransport(options.protocol ?? "connect", h2, {
      baseUrl,
      ...options,
    }),
    close: (reason) => h2.close(reason),
    isBroken: () => h2.isBroken(),
  };
}

/**
 * A transport to a plugin at a URL (sidecar or remote service). HTTP/2 is the
 * default because bidirectional streaming needs it; HTTP/1.1 is there for
 * proxies that only speak it.
 */
export function createUrlTransport(
  url: URL,
  options: TransportOptions & {
    httpVersion?: "1.1" | "2";
    tls?: H1Tls;
  } = {},
): ClientTransport {
  const baseUrl = url.toString().replace(/\/$/, "");
  const tls = options.tls ?? {};
  if (options.httpVersion === "1.1") {
    const pool = new H1Pool(baseUrl, tls);
    return {
      transport: createProtocolTransport(options.protocol ?? "connect", pool, {
        baseUrl,
        ...options,
      }),
      close: (reason) => pool.close(reason),
      isBroken: () => pool.isBroken(),
    };
  }
  return createH2Transport(baseUrl, { tls }, options);
}

/**
 * A transport that hands calls to a router in this process. Messages still
 * go through the full Connect protocol (serialized, with headers, trailers,
 * deadlines and errors), so an in-process plugin behaves exactly like a
 * remote one.
 */
export function createInProcessTransport(
  server: {
    routes: (router: ConnectRouter) => void;
    routerOptions: ConnectRouterOptions;
  },
  options: TransportOptions = {},
): ClientTransport {
  return {
    transport: withReachableTimeouts(
      createRouterTransport(server.routes, {
        transport: { interceptors: options.interceptors ?? [], ...limits(options) },
        router: {
          ...server.routerOptions,
          interceptors: [...(server.routerOptions.interceptors ?? []), stopOutputOnAbort],
        },
      }),
    ),
    close: () => {},
    isBroken: () => false,
  };
}

/**
 * The handler's output stops (return(), its finally runs) when its call is
 * aborted, as the framed and HTTP/2 servers stop it when a stream closes:
 * connect-es' router leaves a handler suspended at a yield when its caller
 * leaves the stream (a `break`), and never resumes it. The innermost
 * server interceptor, so that it holds the handler's own output.
 */
const stopOutputOnAbort: Interceptor = (next) => async (req) => {
  const res = await next(req);
  if (!res.stream) return res;
  const it = res.message[Symbol.asyncIterator]();
  const stop = (): void => stopIterator(it);
  if (req.signal.aborted) stop();
  else req.signal.addEventListener("abort", stop, { once: true });
  return { ...res, message: { [Symbol.asyncIterator]: () => it } };
};

function limits(options: TransportOptions): { readMaxBytes?: number; writeMaxBytes?: number } {
  const out: { readMaxBytes?: number; writeMaxBytes?: number } = {};
  if (options.readMaxBytes !== undefined) out.readMaxBytes = options.readMaxBytes;
  if (options.writeMaxBytes !== undefined) out.writeMaxBytes = options.writeMaxBytes;
  return out;
}

/** Splits "host:port" or "[v6]:port". */
export function splitHostPort(address: string): { host: string; port: number } {
  const match = /^\[?([^\]]*)\]?:(\d+)$/.exec(address);
  if (match === null) throw new Error(`invalid TCP address ${JSON.stringify(address)}`);
  return { host: match[1] ?? "", port: Number(match[2]) };
}
