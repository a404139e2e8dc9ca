import * as http2 from "node:http2";
import type { Duplex } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";
import { pathOn } from "./http-target.js";
import { requestLeanBound } from "./lean-bind.js";
import { closedBeforeFirstAnswer, errorFromNode, hasNodeCode, streamError } from "./node-errors.js";
import { originOf, urlAuthorization } from "./url-credentials.js";

/** Options of an HTTP/2 client session. */
export interface H2SessionOptions {
  /**
   * Opens the byte stream (a unix socket, a TCP socket, a TLS socket).
   * Default: node:http2's own dial of the authority, with `tls` for https.
   */
  readonly createConnection?: () => Duplex;
  /** TLS options for an https authority (ca, cert, key, servername, ...). */
  readonly tls?: http2.SecureClientSessionOptions;
  /**
   * How often a session with calls in flight sends a PING, to find a dead
   * peer that never closed the connection. Default 15 s.
   */
  readonly pingIntervalMs?: number;
  /** How long a PING may go unanswered before the session is destroyed. Default 10 s. */
  readonly pingTimeoutMs?: number;
  /** How long a session without calls stays open. Default 15 min (connect-es' default). */
  readonly idleTimeoutMs?: number;
}

/**
 * One HTTP/2 connection to one authority, reopened as needed: a session
 * that ended (peer gone, GOAWAY, idle close) is replaced on the next call.
 * Streams already open on a session that received GOAWAY finish there.
 *
 * Node lets requests be made on a session that is still connecting (it
 * queues them), so the hot path is synchronous: no promise per call.
 * A session with no calls in flight is unref()ed: an idle connection never
 * keeps the process alive.
 */
export class H2Session {
  readonly authority: string;
  /** The authority as the URL spells it, user info included: method URLs made from the URL start with it. */
  private readonly origin: string;
  /**
   * The URL's user info as Basic auth, sent on a request without an
   * authorization header (what node:http does over HTTP/1.1); undefined
   * without user info.
   */
  private readonly basic: string | undefined;
  private current: Connection | undefined;
  private readonly live = new Set<Connection>();
  private closedWith: Error | undefined;
  /** The last session ended without GOAWAY or our say-so: the peer is gone. */
  private lost = false;
  private readonly timing: Timing;

  constructor(
    authority: string,
    private readonly options: H2SessionOptions = {},
  ) {
    const url = new URL(authority);
    this.authority = url.origin;
    this.origin = originOf(url);
    this.basic = urlAuthorization(url);
    this.timing = {
      pingIntervalMs: options.pingIntervalMs ?? 15_000,
      pingTimeoutMs: options.pingTimeoutMs ?? 10_000,
      idleTimeoutMs: options.idleTimeoutMs ?? 15 * 60_000,
    };
  }

  /**
   * The `:path` of a request to `url`; throws a ConnectError when `url` is
   * not on this session's authority (an interceptor may rewrite the URL).
   */
  pathOf(url: string): string {
    return pathOn(this.origin, url, "http2 session");
  }

  /**
   * Opens a stream; throws a ConnectError once close() was called.
   * `onClose`, a listener of the stream's "close" (called with the stream
   * as `this`, after the session's own bookkeeping), shares the one
   * listener the session puts there: with two, node's emitter keeps an
   * array per stream and copies it on the event.
   */
  request(headers: http2.OutgoingHttpHeaders, onClose?: StreamListener): http2.ClientHttp2Stream {
    if (this.closedWith !== undefined) throw this.closedWith;
    if (this.basic !== undefined && headers.authorization === undefined) {
      headers = { ...headers, authorization: this.basic };
    }
    for (let attempt = 0; ; attempt++) {
      const connection = this.connection();
      try {
        return connection.request(headers, onClose);
      } catch (e) {
        // The session ended between our check and the request (nodejs/help#2105).
        if (attempt < 2 && connection.ended()) {
          if (this.current === connection) this.current = undefined;
          continue;
        }
        throw errorFromNode(e);
      }
    }
  }

  /**
   * True once close() was called, or when the last session ended without a
   * GOAWAY (the peer died or the connection broke) and none replaced it.
   */
  isBroken(): boolean {
    return this.closedWith !== undefined || this.lost;
  }

  /** Destroys every session; calls in flight fail with `reason`, later calls too. */
  close(reason?: Error): void {
    this.closedWith ??= reason ?? new ConnectError("connection aborted", Code.Canceled);
    this.current = undefined;
    for (const connection of this.live) connection.destroy(this.closedWith);
  }

  private connection(): Connection {
    const current = this.current;
    if (current !== undefined && !current.retired && !current.ended()) return current;
    const session =
      this.options.createConnection !== undefined
        ? http2.connect(this.authority, { createConnection: this.options.createConnection })
        : http2.connect(this.authority, this.options.tls ?? {});
    const connection = new Connection(
      session,
      this.timing,
      (graceful) => {
        this.live.delete(connection);
        if (this.current === connection) {
          this.current = undefined;
          if (!graceful) this.lost = true;
        }
      },
      this.options.createConnection === undefined,
    );
    this.current = connection;
    this.lost = false;
    this.live.add(connection);
    return connection;
  }
}

/**
 * A property every stream of an H2Session carries from its creation: the
 * lean unary path keeps its call's state there (h2-target.ts), for its
 * listeners, which are shared by all calls. Given to every stream, so that
 * node:http2's streams keep one hidden class whichever path made them:
 * when only unary streams had it, the first server stream (connect-es'
 * path, without it) made V8 deoptimize some forty functions of node's
 * streams and events with "wrong map", and unary calls cost about twice
 * the host CPU until re-optimized, thousands of calls later
 * (docs/http2-client.md, 2026-12-02).
 */
export const STREAM_SLOT = Symbol("connect-plugin.h2-stream-slot");
/** A listener of a stream's event, the stream as `this` (see H2Session.request). */
export type StreamListener = (this: http2.ClientHttp2Stream) => void;

/** A stream of an H2Session, with its slot. */
export type SlottedStream = http2.ClientHttp2Stream & { [STREAM_SLOT]?: unknown };

/**
 * Takes a closed stream's call out of its slot (undefined if it had none,
 * or it was taken already): the lean paths' "close" listeners, after which
 * no event of the stream follows. node:http2 keeps a closed stream
 * reachable for a while, and through the call it kept the request, its
 * promise and the response alive past young-generation GCs, which then
 * copied and promoted them (docs/http2-client.md, session 12).
 */
export function releaseSlot<T>(stream: http2.ClientHttp2Stream): T | undefined {
  const call = (stream as SlottedStream)[STREAM_SLOT] as T | undefined;
  if (call !== undefined) (stream as SlottedStream)[STREAM_SLOT] = undefined;
  return call;
}

/**
 * The "error" listener of a stream whose slot holds a call (the lean paths'
 * calls, h2-target.ts and h2-stream-call.ts): the call fails with
 * the error, unless the server answered and ended the stream while we were
 * still sending (its answer counts, not our failed write).
 */
export function failSlotOnError(this: http2.ClientHttp2Stream, e: unknown): void {
  if (this.writableEnded && hasNodeCode(e, "ERR_STREAM_WRITE_AFTER_END")) return;
  const call = (this as SlottedStream)[STREAM_SLOT] as { fail(e: unknown): void } | undefined;
  call?.fail(streamError(this.rstCode, e));
}

interface Timing {
  readonly pingIntervalMs: number;
  readonly pingTimeoutMs: number;
  readonly idleTimeoutMs: number;
}

/**
 * One node:http2 session and its housekeeping: open streams counted (the
 * first refs the session, the last unrefs it), keepalive PINGs while calls
 * are in flight, an idle timer once none are, GOAWAY retires it (its
 * streams finish, new calls go to a new session).
 *
 * The timers are not reset per call: a sequential caller takes the session
 * from idle to busy and back on every call, and two setTimeout and three
 * clearTimeout per call showed in profiles. Each timer runs once armed, and
 * checks when it fires whether it still has work (the idle one re-arms for
 * the rest of the idle time when calls came in meanwhile).
 */
class Connection {
  /** Received GOAWAY or closed for idleness: no new streams. */
  retired = false;
  private streams = 0;
  /** When the last stream closed (performance.now()). */
  private idleSince = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  /** The last closedThen listener and the `onClose` it calls. */
  private both: { readonly onClose: StreamListener; readonly listener: StreamListener } | undefined;
  /** One listener for the close of every stream (no closure per call). */
  private readonly streamClosed = (): void => {
    if (--this.streams > 0) return;
    if (this.session.destroyed) return;
    this.session.unref();
    if (this.retired) {
      this.session.close();
      return;
    }
    this.idleSince = performance.now();
    this.idleTimer ??= this.armIdle(this.timing.idleTimeoutMs);
  };

  constructor(
    private readonly session: http2.ClientHttp2Session,
    private readonly timing: Timing,
    onEnd: (graceful: boolean) => void,
    /** Dialled from the session's URL, not from a given createConnection. */
    byUrl: boolean,
  ) {
    session.unref();
    this.idleSince = performance.now();
    this.idleTimer = this.armIdle(timing.idleTimeoutMs);
    session.on("goaway", () => {
      this.retired = true;
      if (this.streams === 0) session.close();
    });
    // Without a listener an "error" would be thrown; the streams see it too.
    session.on("error", () => {});
    closedBeforeSettings(session, byUrl);
    session.once("close", () => {
      clearTimeout(this.idleTimer);
      clearTimeout(this.pingTimer);
      onEnd(this.retired);
    });
  }

  ended(): boolean {
    return this.session.closed || this.session.destroyed;
  }

  request(headers: http2.OutgoingHttpHeaders, onClose?: StreamListener): http2.ClientHttp2Stream {
    const stream = requestLeanBound(this.session, headers);
    // Every stream gets the slot, whoever uses it (see STREAM_SLOT).
    (stream as SlottedStream)[STREAM_SLOT] = undefined;
    if (++this.streams === 1) {
      this.session.ref();
      this.pingTimer ??= this.armPing();
    }
    stream.on("close", onClose === undefined ? this.streamClosed : this.closedThen(onClose));
    return stream;
  }

  /** streamClosed, then `onClose`: one listener, made once per `onClose` (the last one kept). */
  private closedThen(onClose: StreamListener): StreamListener {
    const last = this.both;
    if (last?.onClose === onClose) return last.listener;
    const streamClosed = this.streamClosed;
    const listener = function (this: http2.ClientHttp2Stream): void {
      streamClosed();
      onClose.call(this);
    };
    this.both = { onClose, listener };
    return listener;
  }

  destroy(reason: Error): void {
    this.retired = true;
    this.session.destroy(reason, http2.constants.NGHTTP2_CANCEL);
  }

  /** Closes the session once it has been idle for idleTimeoutMs. */
  private armIdle(ms: number): NodeJS.Timeout {
    return setTimeout(() => {
      this.idleTimer = undefined;
      if (this.streams > 0 || this.retired) return;
      const left = this.idleSince + this.timing.idleTimeoutMs - performance.now();
      if (left > 1) {
        this.idleTimer = this.armIdle(left);
        return;
      }
      this.retired = true;
      this.session.close();
    }, ms).unref();
  }

  /** While calls are in flight, a PING every interval; no answer in time destroys the session. */
  private armPing(): NodeJS.Timeout {
    return setTimeout(() => {
      if (this.streams === 0 || this.session.destroyed) {
        this.pingTimer = undefined;
        return;
      }
      const deadline = setTimeout(() => {
        this.session.destroy(
          new ConnectError("PING timed out", Code.Unavailable),
          http2.constants.NGHTTP2_CANCEL,
        );
      }, this.timing.pingTimeoutMs).unref();
      this.session.ping((err) => {
        clearTimeout(deadline);
        this.pingTimer = err === null && this.streams > 0 ? this.armPing() : undefined;
      });
    }, this.timing.pingIntervalMs).unref();
  }
}

/**
 * A connection the server closes before its first frame (its SETTINGS) fails
 * its streams with Unavailable and says so: node:http2 would close them with
 * CANCEL, reported as Canceled ("stream closed with error code CANCEL"), as
 * if this side had given up. A plugin does that to a TLS client whose
 * certificate it does not accept (tls-listener.ts pins the host's), and a
 * TLS port to a cleartext client. Runs before node:http2's own "close"
 * listener of the socket. `byUrl`: dialled from the URL (not a given
 * createConnection, a subprocess's socket), which the cleartext hint names.
 */
function closedBeforeSettings(session: http2.ClientHttp2Session, byUrl: boolean): void {
  let settings = false;
  session.once("remoteSettings", () => (settings = true));
  session.socket.prependOnceListener("close", () => {
    if (settings || session.destroyed) return;
    session.destroy(
      closedBeforeFirstAnswer(
        "HTTP/2 frame",
        session.encrypted === true ? "tls" : byUrl ? "cleartext url" : "socket",
      ),
      http2.constants.NGHTTP2_CANCEL,
    );
  });
}
