import * as net from "node:net";
import type { Duplex } from "node:stream";
import {
  Code,
  ConnectError,
  createContextValues,
  type ContextValues,
  type Interceptor,
  type ConnectRouter,
} from "@connectrpc/connect";
import { transformInvokeImplementation } from "@connectrpc/connect/protocol";
import { SESSION_IDLE_TIMEOUT_MS } from "../h2-idle.js";
import { listenOn, type BoundAddress, type ListenTarget } from "../listen.js";
import { callDone } from "../call-support.js";
import { reachableTimeout } from "../deadline.js";
import { ContextFactory, type CallContext } from "../handler-context.js";
import {
  invokeServerStream,
  invokeUnary,
  onlyMessage,
  type ServerStreamSpec,
  type UnarySpec,
} from "../invoke.js";
import { handlerView } from "../signal-view.js";
import { MappedStream } from "../mapped-stream.js";
import { errorToWire } from "./errors.js";
import { PairsHeaders } from "../lazy-pairs-headers.js";
import {
  DEFAULT_FRAME_TIMEOUT_MS,
  FrameReader,
  FrameType,
  FrameWriter,
  MessageQueue,
  headersToPairs,
  jsonPayload,
  readFrames,
} from "./frames.js";
import { CallTable } from "./call-table.js";
import type { DescMessage } from "@bufbuild/protobuf";
import { parseError } from "../codec/codec-errors.js";
import { decodeMessage } from "../codec/decode-message.js";
import { MessageEncoder } from "./encode.js";
import { OpenDecoder, type OpenHead } from "./open-frame.js";
import { MessageLimits } from "./limits.js";
import { collectMethods, type MethodEntry } from "./methods.js";
import { createTlsListener, type TlsListenerOptions } from "../tls-listener.js";
import { drained } from "../drained.js";
import { stopIterator } from "../stop-iterator.js";

/**
 * TLS for a framed server: its certificate, and which client certificates it
 * accepts (`clientCert`: only that one, AutoMTLS; `clientCa`: any it signed,
 * mutual TLS; see tls-listener.ts).
 */
export type FramedTls = Pick<TlsListenerOptions, "cert" | "key" | "clientCert" | "clientCa">;

export interface FramedServerOptions {
  /** Server-side interceptors, outermost first (call tracking, the launch token check). */
  readonly interceptors?: readonly Interceptor[];
  /** Aborts every handler's signal (the plugin's shutdown after its grace period). */
  readonly shutdownSignal?: AbortSignal;
  readonly tls?: FramedTls;
  /** Largest request message accepted, in bytes. Default and cap: the 256 MiB frame limit. */
  readonly readMaxBytes?: number;
  /** Largest response message sent, in bytes. Default and cap: the 256 MiB frame limit. */
  readonly writeMaxBytes?: number;
  /**
   * How long a frame may take from its first byte to its last before the
   * peer is cut off (a peer that never finishes a frame holds its buffer).
   * Default 30 s.
   */
  readonly frameTimeoutMs?: number;
  /**
   * Bytes of request messages one streaming call may hold unread by its
   * handler; past it the call (only that call) fails with ResourceExhausted.
   * Default DEFAULT_MAX_QUEUED_REQUEST_BYTES (16 MiB; see limits.ts).
   */
  readonly maxQueuedRequestBytes?: number;
  /**
   * Bytes of request messages all streaming calls on one connection may hold
   * unread; past it the call whose message would cross it fails with
   * ResourceExhausted. Default DEFAULT_MAX_CONNECTION_QUEUED_REQUEST_BYTES
   * (64 MiB; see limits.ts).
   */
  readonly maxConnectionQueuedRequestBytes?: number;
  /** Calls open at once on one connection; more are refused with ResourceExhausted. Default 4096. */
  readonly maxConcurrentCalls?: number;
  /**
   * A connection with no call open this long is closed (a goaway frame,
   * then the end once the client has left): without it, an idle client
   * holds its socket and buffers for ever. Our client just dials again on its
   * next call. Default: 5 minutes, as an HTTP/2 session's (h2-idle.ts), for
   * a network-mode port (detached()); none (0) on a launched plugin's own
   * socket (listen()), whose one connection is its host's for its lifetime.
   */
  readonly idleTimeoutMs?: number;
  /** Told why a connection was cut off (a protocol violation by the peer), for a log line. */
  readonly onPeerCutOff?: (reason: string) => void;
  /** Who is at the other end, in the reasons its handlers are cancelled with. Default "the host". */
  readonly peer?: string;
  /** This side, in the error for an unknown method. Default "this plugin". */
  readonly self?: string;
  /** The context values of each call on a connection (the caller's address). Default: empty. */
  readonly contextValues?: (socket: Duplex) => ContextValues;
}

/** Default of FramedServerOptions.maxConcurrentCalls. */
export const DEFAULT_MAX_CONCURRENT_CALLS = 4096;
/** Open frames (path, deadline, headers) may be this large whatever readMaxBytes says. */
const MAX_OPEN_FRAME_BYTES = 1024 * 1024;
/** How long a TLS client may take to finish its handshake, from its first byte: 10 s. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** How long a client told goaway may take to leave before the server ends the connection. */
const GOAWAY_GRACE_MS = 10_000;

/**
 * The plugin side of the framed transport: accepts connections on a unix
 * socket (or TCP, optionally TLS) and dispatches each call to the same
 * service implementations and interceptors the HTTP server uses, with a
 * Connect HandlerContext (headers, trailers, deadline, cancellation).
 */
export class FramedServer {
  private readonly connections = new Set<ServerConnection>();
  /** Detached: resolves close() once the last connection has closed. */
  private whenEmpty: (() => void) | undefined;
  private closing: Promise<void> | undefined;
  bound: BoundAddress = { network: "unix", address: "" };
  private readonly methods: Map<string, MethodEntry>;

  private constructor(
    private readonly listener: net.Server | undefined,
    routes: (router: ConnectRouter) => void,
    private readonly options: FramedServerOptions,
  ) {
    this.methods = collectMethods(routes);
  }

  static async listen(
    routes: (router: ConnectRouter) => void,
    target: ListenTarget,
    options: FramedServerOptions = {},
  ): Promise<FramedServer> {
    const t = options.tls;
    // `server` is made below, before the listener listens (so before any connection).
    const accept = (socket: net.Socket): void => server.accept(socket);
    const listener =
      t === undefined
        ? net.createServer(accept)
        : createTlsListener(
            {
              ...t,
              // A peer that trickles or stalls its handshake.
              handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
              onRefused: options.onPeerCutOff,
            },
            accept,
          );
    const server = new FramedServer(listener, routes, options);
    server.bound = await listenOn(listener, target);
    return server;
  }

  /**
   * A framed server without a listener of its own: another listener (the
   * network-mode port, which also serves HTTP) hands it the connections that
   * asked for the framed protocol, with accept().
   */
  static detached(
    routes: (router: ConnectRouter) => void,
    options: FramedServerOptions = {},
  ): FramedServer {
    return new FramedServer(undefined, routes, {
      ...options,
      idleTimeoutMs: options.idleTimeoutMs ?? SESSION_IDLE_TIMEOUT_MS,
    });
  }

  /** Serves the framed protocol on a connection accepted elsewhere (see detached()). */
  accept(socket: net.Socket): void {
    if (this.closing !== undefined) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    // A framed client never half-closes: end of input means it is gone, and
    // its calls end with it (the network-mode port's sockets allow half-open).
    socket.once("end", () => socket.destroy());
    const connection = new ServerConnection(socket, this.methods, this.options);
    this.connections.add(connection);
    socket.once("close", () => {
      this.connections.delete(connection);
      if (this.connections.size === 0) this.whenEmpty?.();
    });
  }

  /**
   * Stops accepting connections; open ones may finish their calls for
   * `graceMs`, then are destroyed. (The plugin has already drained its calls
   * by the time serve() closes the server.)
   */
  close(graceMs = 0): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      if (this.listener !== undefined) this.listener.close(() => resolve());
      else if (this.connections.size === 0) resolve();
      else this.whenEmpty = resolve;
      // Calls still open finish first (their answers, or the errors of a
      // shutdown's abort), within graceMs.
      for (const connection of this.connections) connection.endWhenIdle();
      const timer = setTimeout(() => {
        for (const connection of this.connections) connection.destroy();
      }, graceMs);
      timer.unref();
    }).then(() => {
      for (const connection of this.connections) connection.destroy();
    });
    return this.closing;
  }
}

interface ServerCall {
  readonly entry: MethodEntry;
  readonly ctx: CallContext;
  readonly input: MessageQueue<unknown> | undefined;
  gotMessage: boolean;
}

/**
 * Serves the framed protocol on one byte stream opened elsewhere (a host's
 * end of a callback tunnel) instead of on a listening socket. Destroying
 * the stream ends every call on it.
 */
export function serveFramedStream(
  routes: (router: ConnectRouter) => void,
  stream: Duplex,
  options: FramedServerOptions = {},
): void {
  new ServerConnection(stream, collectMethods(routes), options);
}

/** One client connection: demultiplexes frames into calls. */
class ServerConnection {
  private readonly calls = new CallTable<ServerCall>();
  private readonly opens = new OpenDecoder();
  private readonly interceptors: Interceptor[];
  private readonly contexts: ContextFactory;
  private readonly out: FrameWriter;
  private readonly encoder = new MessageEncoder();
  private readonly limits: MessageLimits;
  private readonly maxCalls: number;
  /** Bytes of request messages unread by this connection's handlers, over all its calls. */
  private readonly queued = { bytes: 0 };

  constructor(
    private readonly socket: Duplex,
    private readonly methods: Map<string, MethodEntry>,
    private readonly options: FramedServerOptions,
  ) {
    this.interceptors = [...(options.interceptors ?? [])];
    this.contexts = new ContextFactory(options.shutdownSignal);
    this.out = new FrameWriter(socket);
    this.limits = new MessageLimits(
      options.readMaxBytes,
      options.writeMaxBytes,
      options.maxQueuedRequestBytes,
      options.maxConnectionQueuedRequestBytes,
    );
    this.maxCalls = options.maxConcurrentCalls ?? DEFAULT_MAX_CONCURRENT_CALLS;
    // Frames are buffered whole, so readMaxBytes bounds the memory one
    // connection holds; a larger frame is skipped (up to the protocol's frame
    // limit, beyond which its length prefix is a lie and the peer is cut off).
    const reader = new FrameReader(
      (type, id, payload) => this.onFrame(type, id, payload),
      Math.max(this.limits.readMaxBytes, MAX_OPEN_FRAME_BYTES),
      // A frame over the limit fails its call; the connection and other calls go on.
      (type, id) => this.refuse(type, id),
    );
    readFrames(socket, reader, options.frameTimeoutMs ?? DEFAULT_FRAME_TIMEOUT_MS, (why) =>
      this.cutOff(why),
    );
    socket.on("error", () => {});
    // An idle timeout beyond setTimeout's reach is none, as a deadline is.
    const idleMs = reachableTimeout(options.idleTimeoutMs) ?? 0;
    if (idleMs > 0)
      this.idle = new IdleClock(
        idleMs,
        () => this.calls.size,
        () => this.goAway(),
      );
    socket.once("close", () => {
      this.idle?.stop();
      const gone = new ConnectError(
        `${options.peer ?? "the host"} closed the connection`,
        Code.Unavailable,
      );
      for (const call of this.calls.values()) {
        call.input?.discard(gone);
        call.ctx.abort(gone);
      }
      this.calls.clear();
    });
  }

  /** Set by endWhenIdle(): the connection ends once its last call has answered. */
  private ending = false;
  /** Times the stretches without calls (idleTimeoutMs), if any. */
  private idle: IdleClock | undefined;

  /**
   * Idle for idleTimeoutMs: tells the client to go away, and ends the
   * connection once it has (or GOAWAY_GRACE_MS later, once no call is open).
   */
  private goAway(): void {
    if (this.ending || this.socket.destroyed) return;
    this.out.frame(FrameType.goaway, 0);
    this.out.flush();
    setTimeout(() => this.endWhenIdle(), GOAWAY_GRACE_MS).unref();
  }

  /** Sends what is queued, then ends the connection. */
  end(): void {
    this.out.flush();
    this.socket.end();
  }

  /**
   * Ends the connection once the calls open on it have sent their last
   * frame (a shutdown's "plugin shut down" errors included), like an
   * HTTP/2 GOAWAY that lets open streams finish.
   */
  endWhenIdle(): void {
    this.ending = true;
    if (this.calls.size === 0) this.end();
  }

  /** Call `id` is over on this side. */
  private settled(id: number): void {
    this.calls.delete(id);
    if (this.calls.size === 0) this.idle?.idleNow();
    if (this.ending && this.calls.size === 0) process.nextTick(() => this.end());
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Ends a connection whose peer broke the protocol, saying why. */
  private cutOff(why: string): void {
    if (this.socket.destroyed) return;
    // A tunnel (host callbacks) is a Duplex without an address.
    const address = "remoteAddress" in this.socket ? this.socket.remoteAddress : undefined;
    const peer = typeof address === "string" ? address : "a local peer";
    this.options.onPeerCutOff?.(`framed connection from ${peer} cut off: ${why}`);
    this.socket.destroy();
  }

  private onFrame(type: number, id: number, payload: Uint8Array): void {
    // The rest of a chunk that got the peer cut off is not acted on.
    if (this.socket.destroyed) return;
    switch (type) {
      case FrameType.open:
        // A call opened after this side ended (it crossed the end, or the
        // goaway, on the wire) could not be answered: it is not run, and
        // its client sees the connection close.
        if (this.socket.writableEnded) return;
        this.open(id, payload);
        return;
      case FrameType.message: {
        const call = this.calls.get(id);
        if (call === undefined) return;
        if (payload.length > this.limits.readMaxBytes) {
          this.refuse(FrameType.message, id);
          return;
        }
        const input = call.input;
        // No flow control per call: a handler that does not read fails its
        // call, not the connection (see DEFAULT_MAX_QUEUED_REQUEST_BYTES).
        if (
          input !== undefined &&
          !this.limits.mayQueue(input.queued, input.queuedBytes, payload.length)
        ) {
          this.fail(id, call, this.limits.queueFull());
          return;
        }
        if (
          input !== undefined &&
          !this.limits.mayQueueOnConnection(this.queued.bytes, payload.length)
        ) {
          this.fail(id, call, this.limits.connectionQueueFull());
          return;
        }
        let message: unknown;
        try {
          message = decodeMessage(call.entry.method.input, payload);
        } catch (error) {
          this.fail(id, call, parseError(error));
          return;
        }
        if (call.input !== undefined) call.input.push(message, payload.length);
        else if (!call.gotMessage) {
          call.gotMessage = true;
          this.runUnary(id, call, message);
        }
        return;
      }
      case FrameType.end: {
        const call = this.calls.get(id);
        if (call === undefined) return;
        if (call.input !== undefined) call.input.end();
        else if (!call.gotMessage) {
          this.fail(
            id,
            call,
            new ConnectError(
              "protocol error: missing input message for unary method",
              Code.Unimplemented,
            ),
          );
        }
        return;
      }
      case FrameType.cancel: {
        const call = this.calls.get(id);
        if (call === undefined) return;
        this.settled(id);
        const reason = new ConnectError(
          `${this.options.peer ?? "the host"} cancelled the call`,
          Code.Canceled,
        );
        call.input?.discard(reason);
        call.ctx.abort(reason);
        return;
      }
    }
  }

  /** Ends call `id`, never opened here, with an error. */
  private answer(id: number, error: ConnectError): void {
    this.out.frame(FrameType.trailer, id, jsonPayload({ e: errorToWire(error).wire }));
  }

  private open(id: number, payload: Uint8Array): void {
    // A second open under the id of a call still open would orphan that
    // call: its handler would never be cancelled, not even when the
    // connection closes (it is no longer in `calls`). As HTTP/2 does for a
    // reused stream id, the peer is cut off.
    if (this.calls.has(id)) {
      this.cutOff(`call id ${id} opened again while its call is open`);
      return;
    }
    let head: OpenHead | undefined;
    try {
      head = this.opens.decode(payload);
    } catch {
      this.answer(
        id,
        new ConnectError("protocol error: malformed open frame", Code.InvalidArgument),
      );
      return;
    }
    const path = typeof head?.p === "string" ? head.p : "";
    const entry = this.methods.get(path);
    if (entry === undefined) {
      this.answer(
        id,
        new ConnectError(
          `HTTP 404 Not Found: no method ${path} on ${this.options.self ?? "this plugin"}`,
          Code.Unimplemented,
        ),
      );
      return;
    }
    if (this.calls.size >= this.maxCalls) {
      this.answer(
        id,
        new ConnectError(
          `too many concurrent calls on one connection (limit ${this.maxCalls})`,
          Code.ResourceExhausted,
        ),
      );
      return;
    }
    let requestHeader: Headers;
    try {
      // Lazy: no Headers (and no undici) unless something uses them.
      requestHeader = PairsHeaders.fromPairs(head?.h);
    } catch (error) {
      // A name or value node's Headers refuses (a newline, a non-Latin-1
      // character): only this call fails, as HTTP/2 refuses one stream.
      // PairsHeaders throws Headers' own error.
      this.answer(
        id,
        new ConnectError(
          `protocol error: malformed header in open frame: ${(error as Error).message}`,
          Code.InvalidArgument,
        ),
      );
      return;
    }
    const timeoutMs = typeof head?.t === "number" ? head.t : undefined;
    const ctx = this.contexts.create({
      service: entry.service,
      method: entry.method,
      protocolName: "connect-plugin-framed",
      url: path,
      timeoutMs,
      requestHeader,
      contextValues: this.options.contextValues?.(this.socket) ?? createContextValues(),
      responseHeaders: PairsHeaders,
    });
    const streaming = entry.method.methodKind !== "unary";
    const call: ServerCall = {
      entry,
      ctx,
      input: streaming ? new MessageQueue<unknown>(this.queued) : undefined,
      gotMessage: false,
    };
    this.calls.set(id, call);
    if (streaming) void this.runStream(id, call);
  }

  private runUnary(id: number, call: ServerCall, message: unknown): void {
    const { entry, ctx } = call;
    invokeUnary(entry.spec as UnarySpec, ctx, message, this.interceptors).then(
      (output) => {
        if (this.calls.get(id) !== call) return;
        try {
          this.prepare(entry.method.output, output);
        } catch (error) {
          this.fail(id, call, error);
          return;
        }
        const header = headersToPairs(ctx.responseHeader);
        this.out.frame(FrameType.header, id, header && jsonPayload(header));
        try {
          // Throws Internal if the encoder wrote other than it measured;
          // then no byte of the message was queued, and the trailer after
          // the header carries the error (the call is still open here).
          this.encoder.send(this.out, FrameType.message, id);
        } catch (error) {
          this.fail(id, call, error, true);
          return;
        }
        this.settled(id);
        const trailer = headersToPairs(ctx.responseTrailer);
        this.out.frame(FrameType.trailer, id, trailer && jsonPayload({ t: trailer }));
        ctx.abort(callDone());
      },
      (error: unknown) => this.fail(id, call, error),
    );
  }

  private async runStream(id: number, call: ServerCall): Promise<void> {
    const { entry, ctx } = call;
    let sentHeader = false;
    try {
      const output =
        entry.method.methodKind === "server_streaming"
          ? await invokeServerStream(
              entry.spec as ServerStreamSpec,
              ctx,
              await onlyMessage(call.input as AsyncIterable<unknown>),
              this.interceptors,
            )
          : // The view: connect-es copies the context with a spread, which
            // would leave out the prototype's abort() (see handlerView).
            transformInvokeImplementation(
              entry.spec as Parameters<typeof transformInvokeImplementation>[0],
              handlerView(ctx),
              this.interceptors,
            )(call.input as AsyncIterable<never>);
      // Pulls from the handler's own iterator, applying the normalising and
      // error maps here (a MappedStream's parts): no wrapper's promise or
      // result object per message. As `for await`: an error of next() (or
      // of a map) ends the loop without return(); leaving it otherwise
      // (call gone, a message over the limit) calls return(), which runs
      // the handler's `finally`.
      const { source, mapValue, mapError } = MappedStream.parts(output);
      const it = source[Symbol.asyncIterator]();
      for (;;) {
        let message: unknown;
        try {
          const r = await it.next();
          if (r.done === true) break;
          message = mapValue(r.value);
        } catch (error) {
          throw mapError(error);
        }
        if (this.calls.get(id) !== call) {
          // The caller is gone: stop the handler without waiting for its
          // finally, which may never settle and would hold this call.
          stopIterator(it);
          return;
        }
        try {
          this.prepare(entry.method.output, message);
          if (!sentHeader) {
            sentHeader = true;
            const header = headersToPairs(ctx.responseHeader);
            this.out.frame(FrameType.header, id, header && jsonPayload(header));
          }
          this.encoder.send(this.out, FrameType.message, id);
          if (this.out.needDrain) await drained(this.socket);
        } catch (error) {
          // As `for await`, the body's error wins; return() is not awaited.
          stopIterator(it);
          throw error;
        }
      }
    } catch (error) {
      this.fail(id, call, error, sentHeader);
      return;
    }
    if (this.calls.get(id) !== call) return;
    this.settled(id);
    // A handler may answer without reading all its requests: they stop
    // counting against the connection's maxConnectionQueuedRequestBytes.
    call.input?.discard(callDone());
    if (!sentHeader) {
      const header = headersToPairs(ctx.responseHeader);
      this.out.frame(FrameType.header, id, header && jsonPayload(header));
    }
    const trailer = headersToPairs(ctx.responseTrailer);
    this.out.frame(FrameType.trailer, id, trailer && jsonPayload({ t: trailer }));
    ctx.abort(callDone());
  }

  /** Ends a call with an error: header (unless sent), then a trailer that carries it. */
  private fail(id: number, call: ServerCall, error: unknown, sentHeader = false): void {
    if (this.calls.get(id) !== call) return;
    this.settled(id);
    const { wire, metadata } = errorToWire(error);
    // The handler's trailer and the error's metadata; the metadata alone
    // when the handler never used its trailer (no copy to make).
    const own = call.ctx.responseTrailer;
    let trailer = metadata;
    if (!(own instanceof PairsHeaders && own.untouchedEmpty)) {
      trailer = new Headers(own);
      metadata.forEach((value, name) => trailer.append(name, value));
    }
    if (!sentHeader) {
      const header = headersToPairs(call.ctx.responseHeader);
      this.out.frame(FrameType.header, id, header && jsonPayload(header));
    }
    this.out.frame(FrameType.trailer, id, jsonPayload({ t: headersToPairs(trailer), e: wire }));
    call.input?.discard(callDone());
    call.ctx.abort(callDone());
  }

  /**
   * Fails call `id` for a frame over the limit: the open call, or, for an
   * oversized open frame, the call it would have opened (so the caller is
   * answered rather than left waiting).
   */
  private refuse(type: number, id: number): void {
    const call = this.calls.get(id);
    if (call !== undefined) this.fail(id, call, this.limits.tooLargeToRead());
    else if (type === FrameType.open) {
      this.answer(
        id,
        new ConnectError(
          `request headers are larger than ${Math.max(this.limits.readMaxBytes, MAX_OPEN_FRAME_BYTES)} bytes`,
          Code.ResourceExhausted,
        ),
      );
    }
  }

  /**
   * Encodes (or measures) an outgoing message for the next encoder.send(),
   * and throws the limit's error for one over writeMaxBytes.
   */
  private prepare(schema: DescMessage, message: unknown): void {
    this.encoder.measure(schema, message, this.limits.writeMaxBytes, undefined, this.oversized);
  }

  /** The error for a response message over writeMaxBytes. */
  private readonly oversized = (size: number): ConnectError => this.limits.tooLargeToWrite(size);
}

/**
 * Measures how long a connection has had no call open, with one timer that
 * wakes at most every idleMs (opening or ending a call arms no timer):
 * `expired` is called once the connection has been without calls for idleMs.
 */
class IdleClock {
  private since = Date.now();
  private timer: NodeJS.Timeout;

  constructor(
    private readonly idleMs: number,
    private readonly open: () => number,
    private readonly expired: () => void,
  ) {
    this.timer = this.wakeIn(idleMs);
  }

  /** The last call has just ended. */
  idleNow(): void {
    this.since = Date.now();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  private wakeIn(ms: number): NodeJS.Timeout {
    return setTimeout(() => this.check(), ms).unref();
  }

  private check(): void {
    if (this.open() > 0) {
      this.timer = this.wakeIn(this.idleMs);
      return;
    }
    const left = this.since + this.idleMs - Date.now();
    if (left <= 0) this.expired();
    else this.timer = this.wakeIn(left);
  }
}
