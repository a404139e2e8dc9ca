import * as net from "node:net";
import type { Duplex } from "node:stream";
import * as tls from "node:tls";
import {
  type DescMessage,
  type DescMethodStreaming,
  type DescMethodUnary,
  type MessageShape,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import type { ClientTransport } from "../client-transport.js";
import { methodPath, type CallSignal } from "../call-support.js";
import { abortOf } from "../lazy-abort.js";
import { CallRunner, type CallTarget } from "../run-call.js";
import { CallTable } from "./call-table.js";
import { parseError } from "../codec/codec-errors.js";
import { decodeMessage } from "../codec/decode-message.js";
import { MessageEncoder } from "./encode.js";
import { OpenEncoder } from "./open-frame.js";
import { errorFromWire } from "./errors.js";
import {
  FrameReader,
  FrameType,
  FrameWriter,
  MessageQueue,
  pairsToHeaders,
  parseJson,
  readFrames,
  DEFAULT_FRAME_TIMEOUT_MS,
  DEFAULT_MAX_FRAME_BYTES,
} from "./frames.js";
import { clientTlsDefaults } from "../tls-defaults.js";
import { hasNodeCode, REFUSED_CERTIFICATE_HINT } from "../node-errors.js";
import { drained } from "../drained.js";

/** TLS for a framed client: the CA that signed the server's certificate, and our own certificate. */
export interface FramedClientTls {
  readonly ca: string | Buffer;
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  /** The name the server's certificate must carry. Defaults to "localhost". */
  readonly serverName?: string;
}

export interface FramedTransportOptions {
  readonly interceptors?: readonly Interceptor[];
  readonly tls?: FramedClientTls;
  /** Who is at the other end, in error messages. Default "the plugin". */
  readonly peer?: string;
  /**
   * Headers sent with every call after the interceptors have run, replacing
   * any of the same name (names in lower case): a launched plugin's launch
   * token, which no interceptor then sees. Set here rather than by an
   * interceptor, it costs no copy of each call's headers and request (0.6-0.9
   * µs per call on the host). Default: none.
   */
  readonly callHeaders?: readonly (readonly [string, string])[];
}

/**
 * Where a framed client sends its calls: a socket address, or a byte stream
 * opened elsewhere (a plugin's end of a host's callback tunnel).
 */
export type FramedTarget =
  { readonly network: "unix" | "tcp"; readonly address: string } | { readonly stream: Duplex };

interface PendingCall {
  readonly method: DescMethodUnary | DescMethodStreaming;
  header: Headers | undefined;
  readonly trailer: Headers;
  /** Unary: the one response message. */
  message: unknown;
  /** Streaming: the response messages. */
  readonly messages: MessageQueue<unknown> | undefined;
  onHeader: (() => void) | undefined;
  onEnd: (error: ConnectError | undefined) => void;
}

/**
 * The host side of the framed transport (see frames.ts): a connect-es
 * Transport over one socket to the plugin, so that createClient() and every
 * interceptor work unchanged. The socket is opened on the first call.
 */
export function createFramedTransport(
  target: FramedTarget,
  options: FramedTransportOptions = {},
): ClientTransport {
  const connection = new FramedConnection(target, options.tls, options.peer ?? "the plugin", {
    ...(options.callHeaders !== undefined && { callHeaders: options.callHeaders }),
  });
  return {
    transport: new CallRunner(connection, options.interceptors),
    close: (reason) => connection.close(reason),
    isBroken: () => connection.broken,
  };
}

/** The last call id before the ids wrap around to 1. */
const LAST_CALL_ID = 0xfffffff0;

/**
 * The call id after `id`: ids wrap to 1 after LAST_CALL_ID and skip those
 * still `inUse` (a stream can outlive 2^32 calls, and an open frame under
 * the id of an open call gets the connection cut off).
 */
export function nextCallId(id: number, inUse: (id: number) => boolean): number {
  do id = id >= LAST_CALL_ID ? 1 : id + 1;
  while (inUse(id));
  return id;
}

/**
 * The calls over one socket to the plugin, as the CallRunner lets them
 * through. A dialled socket is opened on the first call; a given stream is
 * read at once (so that its end is seen even before a call).
 */
export class FramedConnection implements CallTarget {
  /** The message queue of a stream settles its call (see stream()). */
  readonly settlesStreams = true;
  private socket: Duplex | undefined;
  private lastId = 0;
  private readonly calls = new CallTable<PendingCall>();
  private readonly inUse = (id: number): boolean => this.calls.has(id);
  private failure: ConnectError | undefined;
  private writer: FrameWriter | undefined;
  private readonly encoder = new MessageEncoder();
  /** The error for a request message over writeMaxBytes. */
  private readonly oversized = (size: number): ConnectError =>
    tooLargeToSend(size, this.writeMaxBytes);
  private readonly reader: FrameReader;
  private readonly unrefWhenIdle: boolean;
  /** A frame came from the plugin: a close from now on is not a refused certificate. */
  private heard = false;
  private readonly readMaxBytes: number;
  private readonly writeMaxBytes: number;

  constructor(
    private readonly target: FramedTarget,
    private readonly tls: FramedClientTls | undefined,
    private readonly peer: string,
    limits: {
      readonly readMaxBytes?: number;
      readonly writeMaxBytes?: number;
      /** Let the process exit while no call is in flight (network connections, as H2Session's). */
      readonly unrefWhenIdle?: boolean;
      /** See FramedTransportOptions.callHeaders. */
      readonly callHeaders?: readonly (readonly [string, string])[];
    } = {},
  ) {
    this.opens = new OpenEncoder(limits.callHeaders);
    this.unrefWhenIdle = limits.unrefWhenIdle === true;
    this.readMaxBytes = Math.min(limits.readMaxBytes ?? MAX, MAX);
    this.writeMaxBytes = Math.min(limits.writeMaxBytes ?? MAX, MAX);
    // A response over readMaxBytes is skipped, not buffered, and fails its call.
    this.reader = new FrameReader(
      (type, id, payload) => this.onFrame(type, id, payload),
      Math.max(this.readMaxBytes, 1024 * 1024),
      (_type, id, length) => this.tooLarge(id, length),
    );
    if ("stream" in target) {
      this.connect();
      target.stream.resume();
      if (this.unrefWhenIdle) this.refSocket(false);
    }
  }

  /**
   * The server said goaway (it closes this idle connection): no new call
   * goes on it, and it is ended once its open calls have.
   */
  draining = false;

  /** No new call can go on this connection (it failed, or is draining). */
  get broken(): boolean {
    return this.failure !== undefined || this.draining;
  }

  close(reason?: Error): void {
    this.fail(
      reason === undefined
        ? new ConnectError(`the connection to ${this.peer} was closed`, Code.Unavailable)
        : ConnectError.from(reason, Code.Unavailable),
    );
  }

  private connect(): Duplex {
    if (this.socket !== undefined) return this.socket;
    const socket = "stream" in this.target ? this.target.stream : this.dial(this.target);
    // A peer that sends a lying length prefix or never finishes a frame
    // fails the connection with that reason, rather than holding this side.
    readFrames(socket, this.reader, DEFAULT_FRAME_TIMEOUT_MS, (why) =>
      socket.destroy(new Error(why)),
    );
    socket.on("error", (error: Error) => {
      this.fail(
        new ConnectError(
          `connection to ${this.peer} failed: ${error.message}` +
            // A reset, not a refused connect or this side's own verdict on
            // the plugin's certificate (the hint would ask the wrong side).
            (hasNodeCode(error, "ECONNRESET") || hasNodeCode(error, "EPIPE")
              ? this.unheard(socket)
              : ""),
          Code.Unavailable,
          undefined,
          undefined,
          error,
        ),
      );
    });
    socket.on("close", () => {
      const reset = Object.assign(new Error("connection closed"), { code: "ECONNRESET" });
      this.fail(
        new ConnectError(
          `${this.peer} closed the connection${this.unheard(socket)}`,
          Code.Unavailable,
          undefined,
          undefined,
          reset,
        ),
      );
    });
    this.socket = socket;
    this.writer = new FrameWriter(socket);
    return socket;
  }

  /**
   * What a TLS connection's end before the plugin's first frame likely
   * means: a plugin that does not accept this client's certificate (pinned
   * AutoMTLS, or network mode's clientCa) closes it after the handshake,
   * as HTTP's closedBeforeFirstAnswer says too. Empty otherwise.
   */
  private unheard(socket: Duplex): string {
    return !this.heard && socket instanceof tls.TLSSocket
      ? ` before it sent any frame (${REFUSED_CERTIFICATE_HINT})`
      : "";
  }

  private dial(target: { network: "unix" | "tcp"; address: string }): net.Socket {
    const { network, address } = target;
    const where =
      network === "unix"
        ? { path: address }
        : (() => {
            const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(address);
            return { host: m?.[1] ?? "", port: Number(m?.[2]) };
          })();
    const t = this.tls;
    const socket =
      t === undefined
        ? net.connect({ ...where, noDelay: true })
        : tls.connect({
            ...where,
            ca: t.ca,
            ...(t.cert !== undefined && { cert: t.cert }),
            ...(t.key !== undefined && { key: t.key }),
            servername: t.serverName ?? "localhost",
            ...clientTlsDefaults(),
          });
    socket.setNoDelay(true);
    return socket;
  }

  private fail(error: ConnectError): void {
    this.failure ??= error;
    this.socket?.destroy();
    // In the order they were opened, as a Map kept them: ids go up from the
    // oldest open one (lastId + 1, modulo 2^32) to lastId, the table walks
    // its slots.
    const after = this.lastId + 1;
    const ids = this.calls.keys().sort((a, b) => ((a - after) >>> 0) - ((b - after) >>> 0));
    const calls = ids.map((id) => this.calls.get(id) as PendingCall);
    this.calls.clear();
    for (const call of calls) call.onEnd(error);
  }

  /** The writer of the open connection (connecting on first use). */
  private get out(): FrameWriter {
    this.connect();
    return this.writer as FrameWriter;
  }

  private readonly opens: OpenEncoder;

  private open(path: string, header: Headers, id: number, timeoutMs: number | undefined): void {
    this.out.frame(FrameType.open, id, this.opens.encode(path, header, timeoutMs));
  }

  private cancel(id: number): void {
    if (this.socket !== undefined && this.failure === undefined)
      this.out.frame(FrameType.cancel, id);
  }

  private allocate(): number {
    this.lastId = nextCallId(this.lastId, this.inUse);
    return this.lastId;
  }

  path(method: DescMethodUnary | DescMethodStreaming): string {
    return methodPath(method);
  }

  unary<I extends DescMessage, O extends DescMessage>(
    req: UnaryRequest<I, O>,
    state: CallSignal,
  ): Promise<UnaryResponse<I, O>> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const abort = abortOf(req);
    if (abort.aborted) return Promise.reject(ConnectError.from(abort.reason));
    const id = this.allocate();
    return new Promise((resolve, reject) => {
      // First, before the call is registered: toBinary's error, or the
      // limit's, thrown here rejects the promise as it is (the executor's
      // own try/catch, no second one).
      this.encoder.measure(
        req.method.input,
        req.message,
        this.writeMaxBytes,
        undefined,
        this.oversized,
      );
      const onAbort = (reason: unknown): void => {
        if (this.forget(id)) this.cancel(id);
        reject(ConnectError.from(reason, Code.Canceled));
      };
      // eslint-disable-next-line prefer-const -- set once the call is registered; onEnd reads it
      let unsubscribe: (() => void) | undefined;
      const call: PendingCall = {
        method: req.method,
        header: undefined,
        trailer: new Headers(),
        message: undefined,
        messages: undefined,
        onHeader: undefined,
        onEnd: (error) => {
          unsubscribe?.();
          if (error !== undefined) {
            reject(error);
            return;
          }
          if (call.message === undefined) {
            reject(
              new ConnectError(
                "protocol error: missing output message for unary method",
                Code.Unimplemented,
              ),
            );
            return;
          }
          resolve({
            stream: false,
            service: req.service,
            method: req.method,
            header: call.header ?? new Headers(),
            message: call.message as MessageShape<O>,
            trailer: call.trailer,
          });
        },
      };
      this.remember(id, call);
      unsubscribe = abort.onAbort(onAbort);
      this.open(req.url, req.header, id, state.timeoutMs);
      this.encoder.send(this.out, FrameType.message, id);
      this.out.frame(FrameType.end, id);
    });
  }

  stream<I extends DescMessage, O extends DescMessage>(
    req: StreamRequest<I, O>,
    state: CallSignal,
  ): Promise<StreamResponse<I, O>> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const abort = abortOf(req);
    if (abort.aborted) return Promise.reject(ConnectError.from(abort.reason));
    const id = this.allocate();
    const messages = new MessageQueue<unknown>();
    // On an error, the call's signal fires only after interceptors (CallGuard)
    // have seen the error with the signal as it was: not aborted, so the
    // error is the plugin's or the connection's, not the caller's.
    messages.onFinish = (failed) => {
      if (failed) setImmediate(() => state.done());
      else state.done();
    };
    return new Promise((resolve, reject) => {
      let settled = false;
      const cancel = (reason: ConnectError): void => {
        if (this.forget(id)) this.cancel(id);
        messages.fail(reason);
        if (!settled) {
          settled = true;
          reject(reason);
        }
      };
      const onAbort = (reason: unknown): void => cancel(ConnectError.from(reason, Code.Canceled));
      // eslint-disable-next-line prefer-const -- set once the call is registered; onEnd reads it
      let unsubscribe: (() => void) | undefined;
      messages.onAbandon = () => {
        if (this.forget(id)) this.cancel(id);
      };
      const call: PendingCall = {
        method: req.method,
        header: undefined,
        trailer: new Headers(),
        message: undefined,
        messages,
        onHeader: () => {
          if (settled) return;
          settled = true;
          resolve({
            stream: true,
            service: req.service,
            method: req.method,
            header: call.header ?? new Headers(),
            trailer: call.trailer,
            message: messages as AsyncIterable<MessageShape<O>>,
          });
        },
        onEnd: (error) => {
          unsubscribe?.();
          if (error !== undefined) {
            messages.fail(error);
            if (!settled) {
              settled = true;
              reject(error);
            }
            return;
          }
          messages.end();
          call.onHeader?.();
        },
      };
      this.remember(id, call);
      unsubscribe = abort.onAbort(onAbort);
      this.open(req.url, req.header, id, state.timeoutMs);
      void this.pump(id, req, cancel);
    });
  }

  /** Sends the request messages as the caller produces them, then the end. */
  private async pump<I extends DescMessage, O extends DescMessage>(
    id: number,
    req: StreamRequest<I, O>,
    cancel: (reason: ConnectError) => void,
  ): Promise<void> {
    try {
      for await (const message of req.message) {
        if (!this.calls.has(id)) return;
        const socket = this.connect();
        this.encoder.measure(
          req.method.input,
          message,
          this.writeMaxBytes,
          undefined,
          this.oversized,
        );
        this.encoder.send(this.out, FrameType.message, id);
        if (this.out.needDrain) await drained(socket);
      }
      if (this.calls.has(id)) this.out.frame(FrameType.end, id);
    } catch (error) {
      cancel(ConnectError.from(error));
    }
  }

  private remember(id: number, call: PendingCall): void {
    this.calls.set(id, call);
    if (this.unrefWhenIdle && this.calls.size === 1) this.refSocket(true);
  }

  /** Removes call `id`; true if it was open. */
  private forget(id: number): boolean {
    const had = this.calls.delete(id);
    if (had && this.calls.size === 0) {
      if (this.unrefWhenIdle) this.refSocket(false);
      if (this.draining) this.socket?.end();
    }
    return had;
  }

  private refSocket(ref: boolean): void {
    const socket = this.socket as Partial<Pick<net.Socket, "ref" | "unref">> | undefined;
    if (ref) socket?.ref?.();
    else socket?.unref?.();
  }

  /**
   * The headers or trailers of call `id` from their wire pairs, or undefined
   * when node's Headers refuses one (a newline, a non-Latin-1 character):
   * then that call alone fails (`open`: it is cancelled at the plugin too),
   * not the connection.
   */
  private headersOf(
    id: number,
    call: PendingCall,
    pairs: unknown,
    open: boolean,
  ): Headers | undefined {
    try {
      return pairsToHeaders(pairs);
    } catch (error) {
      this.forget(id);
      if (open) this.cancel(id);
      call.onEnd(
        new ConnectError(
          `protocol error: the plugin sent a malformed header: ${(error as Error).message}`,
          Code.Internal,
        ),
      );
      return undefined;
    }
  }

  /** Fails call `id`, whose response message of `size` bytes is over readMaxBytes. */
  private tooLarge(id: number, size: number): void {
    const call = this.calls.get(id);
    if (call === undefined) return;
    this.forget(id);
    this.cancel(id);
    call.onEnd(
      new ConnectError(
        `message size ${size} is larger than configured readMaxBytes ${this.readMaxBytes}`,
        Code.ResourceExhausted,
      ),
    );
  }

  private onFrame(type: number, id: number, payload: Uint8Array): void {
    this.heard = true;
    if (type === FrameType.goaway) {
      this.draining = true;
      if (this.calls.size === 0) this.socket?.end();
      return;
    }
    const call = this.calls.get(id);
    if (call === undefined) return;
    switch (type) {
      case FrameType.header: {
        const header = this.headersOf(id, call, parseJson(payload), true);
        if (header === undefined) return;
        call.header = header;
        call.onHeader?.();
        return;
      }
      case FrameType.message: {
        if (payload.length > this.readMaxBytes) {
          this.tooLarge(id, payload.length);
          return;
        }
        let message: unknown;
        try {
          // A plain Uint8Array view: bytes fields then come out as
          // Uint8Array, as over HTTP, not as node Buffers.
          message = decodeMessage(call.method.output, payload);
        } catch (error) {
          this.forget(id);
          this.cancel(id);
          call.onEnd(parseError(error));
          return;
        }
        if (call.messages !== undefined) call.messages.push(message);
        else call.message = message;
        return;
      }
      case FrameType.trailer: {
        this.forget(id);
        const end = parseJson(payload) as { t?: unknown; e?: unknown } | undefined;
        if (end?.t !== undefined) {
          const trailer = this.headersOf(id, call, end.t, false);
          if (trailer === undefined) return;
          trailer.forEach((value, name) => call.trailer.append(name, value));
        }
        if (end?.e !== undefined) {
          const metadata = new Headers(call.header);
          call.trailer.forEach((value, name) => metadata.append(name, value));
          call.onEnd(errorFromWire(end.e, metadata));
        } else {
          call.onEnd(undefined);
        }
        return;
      }
    }
  }
}

const MAX = DEFAULT_MAX_FRAME_BYTES;

/**
 * A request message over writeMaxBytes (at most the protocol's frame limit),
 * refused before any of it is sent, worded as connect-node's error.
 */
function tooLargeToSend(size: number, limit: number): ConnectError {
  return new ConnectError(
    limit === MAX
      ? `message size ${size} is larger than the framed transport's frame limit ${MAX}`
      : `message size ${size} is larger than configured writeMaxBytes ${limit}`,
    Code.ResourceExhausted,
  );
}
