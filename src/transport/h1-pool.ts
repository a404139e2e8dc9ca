import * as http from "node:http";
import type * as http2 from "node:http2";
import * as https from "node:https";
import { Code, ConnectError } from "@connectrpc/connect";
import { closedBeforeFirstAnswer, errorFromNode, hasNodeCode } from "./node-errors.js";
import { originOf, urlCredentials } from "./url-credentials.js";

/** TLS options for an https URL. */
export interface H1Tls {
  readonly ca?: string | Buffer;
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
}

/** What an exchange over node:http tells its call (h1-target.ts, h1-stream-call.ts). */
export interface H1Call {
  /** The call fails (the request's error, a cut response, the pool's close). */
  fail(reason: unknown): void;
  /** The response's status and headers; its body follows (data, bodyEnd). */
  answered(response: http.IncomingMessage): void;
  data(chunk: Uint8Array): void;
  /** The response's body ended; `complete`: node read all of it. */
  bodyEnd(complete: boolean): void;
  /** The request closed (after the response's end, or cut); no event follows. */
  closed(): void;
}

/**
 * The host's HTTP/1.1 connections to one origin (for proxies that speak
 * nothing else): node:http or node:https with a keep-alive agent of its
 * own (LIFO, free sockets closed after 5 s idle and unref()ed: node's
 * global agent's settings), the TLS options of an https URL given to every
 * connection. Calls in flight are tracked so that close() fails them with
 * its reason, as an H2Session does.
 */
export class H1Pool {
  /**
   * The base URL up to its path: scheme, user info if any, host and port,
   * as the URL's string (and so the method URLs made from it) spells them.
   */
  readonly origin: string;
  private readonly agent: http.Agent;
  private readonly secure: boolean;
  private readonly host: string;
  private readonly port: number;
  /** User and password of the URL, sent as Basic auth (as node:http does for a URL that has them). */
  private readonly auth: string | undefined;
  private readonly live = new Set<H1Call>();
  private closedWith: Error | undefined;

  constructor(baseUrl: string, tls: H1Tls = {}) {
    const url = new URL(baseUrl);
    this.origin = originOf(url);
    this.auth = urlCredentials(url);
    this.secure = url.protocol === "https:";
    this.host = url.hostname.replace(/^\[(.*)\]$/, "$1");
    this.port = url.port === "" ? (this.secure ? 443 : 80) : Number(url.port);
    const options = { keepAlive: true, scheduling: "lifo" as const, timeout: 5_000 };
    this.agent = this.secure
      ? new https.Agent({
          ...options,
          ...(tls.ca !== undefined && { ca: tls.ca }),
          ...(tls.cert !== undefined && { cert: tls.cert }),
          ...(tls.key !== undefined && { key: tls.key }),
        })
      : new http.Agent(options);
  }

  /**
   * A POST with `headers` (a wire's HTTP/2 headers: `:path` is the
   * request's path, the other pseudo-headers are dropped); throws a
   * ConnectError once close() was called. The caller hands its call to
   * listen() before the event loop turns.
   */
  request(headers: http2.OutgoingHttpHeaders): http.ClientRequest {
    if (this.closedWith !== undefined) throw this.closedWith;
    const options: http.RequestOptions = {
      agent: this.agent,
      host: this.host,
      port: this.port,
      method: "POST",
      path: headers[":path"] as string,
      headers: withoutPseudo(headers),
      ...(this.auth !== undefined && { auth: this.auth }),
    };
    return this.secure ? https.request(options) : http.request(options);
  }

  /** Feeds `request`'s events to `call` until the request closes. */
  listen(request: http.ClientRequest, call: H1Call): void {
    this.live.add(call);
    let responded = false;
    request.on("error", (e) => {
      // The server answered and ended while we were still sending: its answer counts.
      if (request.writableEnded && hasNodeCode(e, "ERR_STREAM_WRITE_AFTER_END")) return;
      call.fail(requestError(request, e, responded));
    });
    request.on("response", (response: http.IncomingMessage) => {
      responded = true;
      call.answered(response);
      response.on("data", (chunk: Uint8Array) => call.data(chunk));
      response.on("end", () => call.bodyEnd(response.complete));
      response.on("error", (e) => call.fail(e));
    });
    request.on("close", () => {
      this.live.delete(call);
      call.closed();
    });
  }

  /** True once close() was called. */
  isBroken(): boolean {
    return this.closedWith !== undefined;
  }

  /** Fails every call in flight with `reason`, later calls too, and closes the connections. */
  close(reason?: Error): void {
    this.closedWith ??= reason ?? new ConnectError("connection aborted", Code.Canceled);
    for (const call of [...this.live]) call.fail(this.closedWith);
    this.live.clear();
    this.agent.destroy();
  }
}

/**
 * Why a request closed before its response ended: node's error for a
 * response the connection cut (`cause`: "aborted", ECONNRESET, which the
 * host's CallGuard reports as a lost connection, as for HTTP/2), else
 * Unavailable once the response had begun, Internal before, as for an
 * HTTP/2 stream closed without a code (node-errors.ts' closedBefore).
 */
export function cutBefore(responded: boolean, cause?: unknown): ConnectError {
  if (cause !== undefined && cause !== null) return errorFromNode(cause);
  return responded
    ? new ConnectError("http/1.1 connection closed before the response ended", Code.Unavailable)
    : new ConnectError("http/1.1 connection closed before the response", Code.Internal);
}

/**
 * The error of a request's "error" event. A connection of its own (not
 * reused from the pool) that the plugin closes before any response is
 * Unavailable, with the likely reason: a plugin that refuses this client's
 * TLS certificate completes the handshake, then closes the connection
 * (tls-listener.ts), which node reports as "socket hang up", taken for the
 * host's own abort (Aborted); so does a TLS port to a cleartext request.
 * The same words as an H2Session's (h2-session.ts). Every other error as
 * errorFromNode maps it (a refused connect stays Unavailable with its
 * syscall, a reused connection's hang-up Aborted, as connect-es' Node
 * transports report them).
 */
function requestError(request: http.ClientRequest, e: unknown, responded: boolean): ConnectError {
  if (
    !responded &&
    !request.reusedSocket &&
    (hasNodeCode(e, "ECONNRESET") || hasNodeCode(e, "EPIPE"))
  ) {
    const error = closedBeforeFirstAnswer(
      "HTTP/1.1 response",
      request.protocol === "https:" ? "tls" : "cleartext url",
    );
    error.cause = e;
    return error;
  }
  return errorFromNode(e);
}

/** Headers for node:http, made once per frozen (shared) wire object. */
const plainOf = new WeakMap<object, http.OutgoingHttpHeaders>();

/** `headers` without HTTP/2 pseudo-headers (`:path`, `:method`). */
function withoutPseudo(headers: http2.OutgoingHttpHeaders): http.OutgoingHttpHeaders {
  const frozen = Object.isFrozen(headers);
  if (frozen) {
    const made = plainOf.get(headers);
    if (made !== undefined) return made;
  }
  const out: http.OutgoingHttpHeaders = {};
  for (const key in headers) if (key.charCodeAt(0) !== 58 /* ":" */) out[key] = headers[key];
  if (frozen) plainOf.set(headers, Object.freeze(out));
  return out;
}
