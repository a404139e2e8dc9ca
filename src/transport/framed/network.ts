import * as net from "node:net";
import type { Duplex } from "node:stream";
import * as tls from "node:tls";
import type { DescMessage, DescMethodStreaming, DescMethodUnary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type StreamRequest,
  type StreamResponse,
  type Transport,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { methodPath, type CallSignal } from "../call-support.js";
import {
  createUrlTransport,
  type ClientTransport,
  type TransportOptions,
} from "../client-transport.js";
import type { H1Tls } from "../h1-pool.js";
import { abortOf } from "../lazy-abort.js";
import { TLS_PORT_HINT } from "../node-errors.js";
import { CallRunner, settleWhenRead, type CallTarget } from "../run-call.js";
import { FramedConnection } from "./client.js";
import { FRAMED_ALPN, FRAMED_PREFACE } from "./preface.js";
import { clientTlsDefaults } from "../tls-defaults.js";
import { requestSignal, withHeader } from "../signal-view.js";
import { urlAuthorization } from "../url-credentials.js";

/**
 * How a host reaches a plugin at a URL: "auto" (the default) asks for the
 * framed protocol and falls back to HTTP when the server does not speak it;
 * "framed" insists on it; "http" never asks.
 */
export type NetworkTransport = "auto" | "framed" | "http";

export interface NetworkTransportOptions extends TransportOptions {
  readonly transport?: NetworkTransport;
  readonly httpVersion?: "1.1" | "2";
  readonly tls?: H1Tls;
  /** Told, once per authority, when "auto" falls back to HTTP and why. */
  readonly log?: (message: string) => void;
  /** How long a server may take to answer the framed preface. Default 5 s. */
  readonly prefaceTimeoutMs?: number;
}

/** What the last dial learnt of each authority, so that "auto" does not ask again and again. */
const httpOnly = new Map<string, number>();
/** How long an authority that did not speak framed is remembered as HTTP-only: 10 minutes. */
const REMEMBER_MS = 10 * 60_000;

/** Whether `url`'s server answered "auto" as HTTP-only in the last 10 minutes. */
export function knownHttpOnly(url: URL): boolean {
  const since = httpOnly.get(url.origin);
  if (since === undefined) return false;
  if (Date.now() - since < REMEMBER_MS) return true;
  httpOnly.delete(url.origin);
  return false;
}

/**
 * A transport to a plugin at a URL that speaks the framed protocol to a
 * connect-plugin server on its network port (negotiated: see preface.ts),
 * and Connect, gRPC or gRPC-web over HTTP to everything else. With
 * "auto", the first call dials and asks; a server that does not answer the
 * framed preface (or ALPN id) has been sent no call, so every call then goes
 * over HTTP/2 (or the httpVersion given) on a new connection, and the
 * authority is remembered as HTTP-only for 10 minutes, with one log line.
 * With "framed", such a server fails the calls with Unavailable, saying so.
 * A framed connection that breaks is dialled again on the next call.
 */
export function createNetworkTransport(
  url: URL,
  options: NetworkTransportOptions = {},
): ClientTransport {
  const kind = options.transport ?? "auto";
  if (kind === "http" || (kind === "auto" && knownHttpOnly(url))) {
    return createUrlTransport(url, options);
  }
  return new NegotiatingTransport(url, options, kind === "framed").client();
}

/** The protocol a transport made by createNetworkTransport() uses now (tests, diagnostics). */
export function negotiatedProtocol(transport: Transport): "framed" | "http" | "unknown" {
  return owners.get(transport)?.chosen ?? "http";
}

/**
 * Dials `url` and asks for the framed protocol: the socket, or why the
 * server does not speak it. `signal` (the transport's close()) ends the dial
 * at once, its socket destroyed.
 */
async function dialFramed(
  url: URL,
  options: NetworkTransportOptions,
  signal: AbortSignal,
): Promise<{ socket: Duplex } | { refused: string }> {
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const secure = url.protocol === "https:";
  const port = url.port === "" ? (secure ? 443 : 80) : Number(url.port);
  const timeoutMs = options.prefaceTimeoutMs ?? 5_000;
  const t = options.tls ?? {};
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (value: { socket: Duplex } | { refused: string } | Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      socket.off("data", onData);
      if (value instanceof Error) {
        socket.destroy();
        reject(value);
      } else {
        if ("refused" in value) socket.destroy();
        resolve(value);
      }
    };
    const socket: net.Socket = secure
      ? tls.connect({
          host,
          port,
          ...(net.isIP(host) === 0 && { servername: host }),
          ...(t.ca !== undefined && { ca: t.ca }),
          ...(t.cert !== undefined && { cert: t.cert }),
          ...(t.key !== undefined && { key: t.key }),
          ALPNProtocols: [FRAMED_ALPN, "h2", "http/1.1"],
          ...clientTlsDefaults(),
        })
      : net.connect({ host, port });
    socket.setNoDelay(true);
    // The framed protocol has no PING (HTTP/2 sessions send one every 15 s
    // while calls are in flight): TCP keepalive finds a peer that vanished.
    socket.setKeepAlive(true, 15_000);
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const n = Math.min(head.length, FRAMED_PREFACE.length);
      if (!head.subarray(0, n).equals(FRAMED_PREFACE.subarray(0, n))) {
        finish({ refused: `it answered the framed preface with ${describeAnswer(head)}` });
        return;
      }
      if (head.length < FRAMED_PREFACE.length) return;
      socket.pause();
      if (head.length > FRAMED_PREFACE.length) socket.unshift(head.subarray(FRAMED_PREFACE.length));
      finish({ socket });
    };
    if (secure) {
      socket.once("secureConnect", () => {
        const alpn = (socket as tls.TLSSocket).alpnProtocol;
        if (alpn === FRAMED_ALPN) finish({ socket });
        else
          finish({ refused: `its TLS server chose ${alpn ? `ALPN ${alpn}` : "no ALPN protocol"}` });
      });
    } else {
      socket.once("connect", () => {
        socket.write(FRAMED_PREFACE);
      });
      socket.on("data", onData);
    }
    // Only an answer decides: other bytes, a TLS server's ALPN choice, or a
    // clean close (a server that hangs up on the preface). A failure to
    // connect, a reset or silence says nothing about the protocol (a fault on
    // the way, a server too busy): the dial fails, and the next one asks again.
    let ended = false;
    socket.once("end", () => (ended = true));
    socket.once("error", (error) => finish(error));
    socket.once("close", () =>
      finish(
        ended
          ? {
              refused:
                "it closed the connection without answering the framed preface" +
                // A TLS port reads the preface as a bad handshake and hangs up.
                (secure ? "" : `; ${TLS_PORT_HINT}`),
            }
          : new Error("the connection closed before the framed preface was answered"),
      ),
    );
    const timer = setTimeout(
      () =>
        finish(
          new Error(
            `no answer to the framed preface within ${timeoutMs} ms ` +
              `(a server that is not connect-plugin's may need transport "http")`,
          ),
        ),
      timeoutMs,
    );
    timer.unref();
    const onAbort = (): void =>
      finish(signal.reason instanceof Error ? signal.reason : new Error("the dial was aborted"));
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** The first bytes of a server's answer, in words (for the fallback log line). */
function describeAnswer(head: Buffer): string {
  // An HTTP/2 server sends a SETTINGS frame first (type 4 at offset 3).
  if (head.length >= 4 && head[3] === 0x04) return "an HTTP/2 SETTINGS frame (an HTTP/2 server)";
  const text = head.subarray(0, 64).toString("latin1");
  if (text.startsWith("HTTP/")) return JSON.stringify(text.split("\r\n")[0]);
  return `bytes ${head.subarray(0, 16).toString("hex")}`;
}

/**
 * The framed runner's target before and after negotiation: every call goes
 * through one CallRunner (so the client's interceptors run once, whichever
 * protocol carries it), then over the framed connection, or over HTTP once
 * the server turned out not to speak framed. Calls made while a dial is
 * under way wait for it, their cancellation and deadline still applying.
 */
class NegotiatingTransport implements CallTarget {
  readonly settlesStreams = true;
  chosen: "framed" | "http" | "unknown" = "unknown";
  /** The HTTP transport after a fallback, without interceptors (the runner ran them). */
  private http: ClientTransport | undefined;
  private readonly runner: CallRunner;
  private current: FramedConnection | undefined;
  private dialing: Promise<FramedConnection | undefined> | undefined;
  private closedWith: ConnectError | undefined;
  /** Aborted by close(): a dial under way stops at once. */
  private readonly closing = new AbortController();
  /** The last framed connection broke and no call has dialled a new one. */
  private lost = false;
  /**
   * Every framed connection not closed yet: the current one, and those told
   * goaway whose calls are still open (close() ends their calls too).
   */
  private readonly live = new Set<FramedConnection>();
  /**
   * The URL's user info as Basic auth, for framed calls without an
   * authorization header (HTTP sends it the same way: H1Pool, H2Session);
   * undefined without user info.
   */
  private readonly basic: string | undefined;

  constructor(
    private readonly url: URL,
    private readonly options: NetworkTransportOptions,
    private readonly required: boolean,
  ) {
    this.runner = new CallRunner(this, options.interceptors);
    owners.set(this.runner, this);
    this.basic = urlAuthorization(url);
  }

  client(): ClientTransport {
    return {
      transport: this.runner,
      close: (reason) => this.close(reason),
      isBroken: () =>
        this.closedWith !== undefined ||
        (this.http !== undefined
          ? this.http.isBroken()
          : this.lost || (this.current?.broken === true && !this.current.draining)),
    };
  }

  private close(reason?: Error): void {
    this.closedWith ??=
      reason === undefined
        ? new ConnectError(`the connection to ${this.url.origin} was closed`, Code.Unavailable)
        : ConnectError.from(reason, Code.Unavailable);
    this.closing.abort(this.closedWith);
    for (const connection of this.live) connection.close(this.closedWith);
    this.http?.close(reason);
  }

  /** The open framed connection, dialling one if there is none (undefined: HTTP was chosen). */
  private connection(): Promise<FramedConnection | undefined> {
    if (this.closedWith !== undefined) return Promise.reject(this.closedWith);
    const current = this.current;
    if (current !== undefined && !current.broken) return Promise.resolve(current);
    if (this.chosen === "http") return Promise.resolve(undefined);
    this.dialing ??= dialFramed(this.url, this.options, this.closing.signal)
      .then((result) => {
        if (this.closedWith !== undefined) {
          if ("socket" in result) result.socket.destroy();
          throw this.closedWith;
        }
        if ("refused" in result) return this.notFramed(result.refused);
        const connection = new FramedConnection(
          { stream: result.socket },
          undefined,
          `the plugin at ${this.url.origin}`,
          { ...this.options, unrefWhenIdle: true },
        );
        this.current = connection;
        this.lost = false;
        this.chosen = "framed";
        // A connection the server closed as idle (goaway) is not lost: the
        // next call dials a new one, as after an HTTP/2 GOAWAY.
        this.live.add(connection);
        result.socket.once("close", () => {
          this.live.delete(connection);
          if (this.current === connection && !connection.draining) this.lost = true;
        });
        return connection;
      })
      .finally(() => (this.dialing = undefined));
    return this.dialing;
  }

  /** The server answered, but not in framed: HTTP from now on, or an error if framed was required. */
  private notFramed(why: string): undefined {
    const where = this.url.origin;
    if (this.required || this.chosen === "framed") {
      // A server that spoke framed before and no longer does is not silently
      // switched to another protocol by a connection that is already in use.
      throw new ConnectError(
        `${where} does not speak the framed protocol (${why}); ` +
          `use transport "auto" to fall back to HTTP, or "http"`,
        Code.Unavailable,
      );
    }
    httpOnly.set(where, Date.now());
    this.options.log?.(
      `${where} does not speak the framed protocol (${why}); using HTTP/${this.options.httpVersion ?? "2"} for it`,
    );
    this.http = createUrlTransport(this.url, { ...this.options, interceptors: [] });
    this.chosen = "http";
    return undefined;
  }

  path(method: DescMethodUnary | DescMethodStreaming): string {
    return methodPath(method);
  }

  unary<I extends DescMessage, O extends DescMessage>(
    req: UnaryRequest<I, O>,
    call: CallSignal,
  ): Promise<UnaryResponse<I, O>> {
    const c = this.current;
    if (c !== undefined && !c.broken) return c.unary(this.authorized(req), call);
    if (this.http !== undefined) return this.unaryOverHttp(this.http, req, call);
    return this.whenConnected(req, (connection) =>
      connection === undefined
        ? this.unaryOverHttp(this.http as ClientTransport, req, call)
        : connection.unary(this.authorized(req), call),
    );
  }

  stream<I extends DescMessage, O extends DescMessage>(
    req: StreamRequest<I, O>,
    call: CallSignal,
  ): Promise<StreamResponse<I, O>> {
    const c = this.current;
    if (c !== undefined && !c.broken) return c.stream(this.authorized(req), call);
    if (this.http !== undefined) return this.streamOverHttp(this.http, req, call);
    return this.whenConnected(req, (connection) =>
      connection === undefined
        ? this.streamOverHttp(this.http as ClientTransport, req, call)
        : connection.stream(this.authorized(req), call),
    );
  }

  /** `req` for a framed connection: with the URL's user info as Basic auth, unless it has an authorization header. */
  private authorized<R extends { readonly header: Headers }>(req: R): R {
    const basic = this.basic;
    if (basic === undefined || req.header.has("authorization")) return req;
    const header = new Headers(req.header);
    header.set("authorization", basic);
    return withHeader(req, header);
  }

  /** A call the runner's interceptors have seen, sent as it is over HTTP. */
  private unaryOverHttp<I extends DescMessage, O extends DescMessage>(
    http: ClientTransport,
    req: UnaryRequest<I, O>,
    call: CallSignal,
  ): Promise<UnaryResponse<I, O>> {
    return http.transport.unary(
      req.method,
      requestSignal(req),
      call.timeoutMs,
      req.header,
      req.message,
      req.contextValues,
    );
  }

  /**
   * A stream the runner's interceptors have seen, sent as it is over HTTP:
   * settled beneath them (`beneath`), so that CallGuard judges a failure
   * with the call's signal as the failure found it (a plugin gone
   * mid-stream is Unavailable, not the caller's cancel).
   */
  private streamOverHttp<I extends DescMessage, O extends DescMessage>(
    http: ClientTransport,
    req: StreamRequest<I, O>,
    call: CallSignal,
  ): Promise<StreamResponse<I, O>> {
    const signal = requestSignal(req);
    return http.transport
      .stream(req.method, signal, call.timeoutMs, req.header, req.message, req.contextValues)
      .then((res) => settleWhenRead(res, call, true));
  }

  /** Runs a call once a dial has answered, unless the caller gives up first. */
  private whenConnected<T>(
    req: { readonly signal: AbortSignal },
    run: (connection: FramedConnection | undefined) => Promise<T>,
  ): Promise<T> {
    const abort = abortOf(req);
    return new Promise<T>((resolve, reject) => {
      const unsubscribe = abort.onAbort((reason) =>
        reject(ConnectError.from(reason, Code.Canceled)),
      );
      this.connection().then(
        (connection) => {
          unsubscribe();
          if (!abort.aborted) run(connection).then(resolve, reject);
        },
        (error: unknown) => {
          unsubscribe();
          reject(dialError(error));
        },
      );
    });
  }
}

/** The negotiating target behind each runner createNetworkTransport() made. */
const owners = new WeakMap<Transport, NegotiatingTransport>();

/**
 * A failed dial as the calls waiting for it see it: Unavailable, the socket
 * error as its cause, and `notSent`: no call is written before the framed
 * preface is answered, so none of them reached the plugin (a cluster may
 * retry even a non-idempotent one elsewhere).
 */
function dialError(error: unknown): ConnectError {
  if (error instanceof ConnectError) return error;
  const e = error as Error;
  return Object.assign(new ConnectError(e.message, Code.Unavailable, undefined, undefined, e), {
    notSent: true,
  });
}
