import * as http2 from "node:http2";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type StreamRequest, type StreamResponse } from "@connectrpc/connect";
import { compressedFlag, envelopeDecompress } from "@connectrpc/connect/protocol";
import { noop, type CallSignal } from "./call-support.js";
import { CallOutcome } from "./call-outcome.js";
import { failSlotOnError, releaseSlot, STREAM_SLOT, type H2Session } from "./h2-session.js";
import {
  abortedBefore,
  abortOf,
  listenAbort,
  type AbortListener,
  type AbortView,
} from "./lazy-abort.js";
import { closedBefore as cut, errorFromNode, errorFromRstCode } from "./node-errors.js";
import { nodeHeadersToWeb } from "./node-headers.js";
import {
  readEndOfStream,
  type EndOfStream,
  type ResponseHead,
  type ServerStreamWire,
} from "./server-stream-wire.js";
import { copyInto, GrowingBytes } from "./growing-bytes.js";
import { parseMessage, requestBody, type UnaryLimits } from "./unary-client-wire.js";

/**
 * Bytes of messages queued and not read (their envelopes' size) above which
 * the HTTP/2 stream is paused: node:http2 then stops reading it and sends
 * no WINDOW_UPDATE, so the plugin's writes stop ("drain" never comes). It
 * resumes once the reader took the queue below half. 64 KiB: node:http2's
 * own readable high-water mark is 16 KiB, and a socket read brings up to
 * 64 KiB; a 16-byte stream pauses about once per 3,000 messages queued.
 */
const HIGH_WATER = 64 * 1024;

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

/** A next() waiting for a message, the end or the error. */
interface Reader<T> {
  resolve: (r: IteratorResult<T>) => void;
  reject: (e: unknown) => void;
}

/**
 * A server-streaming call on the host's lean HTTP/2 path: the request sent
 * in one write, the response's envelopes split as DATA chunks arrive (each
 * payload copied once into its own buffer, as connect-es' envelope reader
 * does, so that bytes fields never pin node's chunks), each message decoded at once
 * (decodeMessage: the flat decoder, or fromBinary) and queued; the
 * caller's iterator reads the queue, one resolved promise per message
 * found queued, where connect-es' client ran each message through five
 * async generators (docs/http2-streams.md, session 17).
 *
 * The checks, errors and metadata are connect-es' (ServerStreamWire): the
 * promise settles with the response headers, or the first failure before
 * them; after them, failures reach the reader once the messages queued
 * before them are read (as connect-es' pipeline yields them). A compressed
 * envelope is decompressed with connect-es' envelopeDecompress; from the
 * first one on, envelopes and the end go through one promise chain, in
 * order. The call is settled here (CallTarget.settlesStreams): its end
 * read, done; its error read, failed (the caller's cancel or deadline
 * winning); `return()`, abandoned. Any failure, and `return()` before the
 * end, reset the stream with CANCEL.
 */
export class ServerStreamCall<O extends DescMessage>
  extends CallOutcome
  implements AbortListener, AsyncIterable<MessageShape<O>>, AsyncIterator<MessageShape<O>>
{
  unsubscribe: () => void = noop;
  private head: ResponseHead | undefined;
  private header: Headers | undefined;
  private readonly trailer = new Headers();
  private ended: EndOfStream | undefined;
  /**
   * An envelope begun in an earlier chunk: its head (5 bytes), then the
   * whole envelope, grown as its bytes arrive (never sized by the peer's
   * announcement alone, see UPFRONT_BYTES).
   */
  private part: GrowingBytes | undefined;
  /** Set at the first compressed envelope: the rest goes through it, in order. */
  private chain: Promise<void> | undefined;
  private items: unknown[] = [];
  private sizes: number[] = [];
  private first = 0;
  private queuedBytes = 0;
  private paused = false;
  /** The body's end came intact; the checks wait for decompression (`chain`). */
  private bodyEnded = false;
  /** All messages are queued (read to the end, checks passed). */
  private complete = false;
  private error: ConnectError | undefined;
  /** The reader saw the end, the error, or left. */
  private over = false;
  private readers: Reader<MessageShape<O>>[] = [];

  constructor(
    readonly stream: http2.ClientHttp2Stream,
    private readonly req: StreamRequest<DescMessage, O>,
    private readonly call: CallSignal,
    private readonly wire: ServerStreamWire,
    private readonly limits: UnaryLimits,
    private readonly resolve: (res: StreamResponse<DescMessage, O>) => void,
    reject: (error: ConnectError) => void,
  ) {
    super(reject);
  }

  /** The call's abort state fired (AbortListener): the caller's cancel, the deadline, or the end. */
  abortWith(reason: unknown): void {
    this.fail(reason);
    // The caller's cancel or the deadline fired the call's own signal: its
    // timer and its listener on the caller's signal go now, not when (if
    // ever) the reader reads the error, which keeps its reason.
    if (this.call.aborted) this.call.done();
  }

  /**
   * Fails the call: before the response, its promise; after, the reader,
   * once it has read the messages queued before.
   */
  override fail(reason: unknown): void {
    if (this.finished) return;
    const error = errorFromNode(reason);
    if (this.settle()) this.rejected(error);
    else this.failQueue(error);
    this.stop();
  }

  protected override stop(): void {
    this.finished = true;
    this.unsubscribe();
    const stream = this.stream;
    if (!stream.closed && !stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
  }

  /** The response's status and headers are in. */
  respond(h: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader): void {
    if (this.settled) return;
    const header = nodeHeadersToWeb(h);
    try {
      this.head = this.wire.response(h[":status"] ?? 0, header);
    } catch (e) {
      this.fail(e);
      return;
    }
    this.header = header;
    this.settle();
    const req = this.req;
    this.resolve({
      stream: true,
      service: req.service,
      method: req.method,
      header,
      trailer: this.trailer,
      message: this,
    });
  }

  trailers(t: http2.IncomingHttpHeaders): void {
    const trailer = this.trailer;
    nodeHeadersToWeb(t).forEach((value, key) => trailer.append(key, value));
  }

  /** A DATA chunk: its whole envelopes handled in place, a partial one kept. */
  data(chunk: Uint8Array): void {
    if (this.finished || this.head === undefined) return;
    try {
      let at = this.part === undefined ? 0 : this.continuePart(chunk);
      const n = chunk.length;
      while (at < n && !this.finished) {
        if (n - at < 5) {
          this.begin(chunk.subarray(at), 5);
          return;
        }
        const size = this.sizeAt(chunk, at);
        const end = at + 5 + size;
        if (end > n) {
          this.begin(chunk.subarray(at), 5 + size);
          return;
        }
        // A copy (see copyInto): the message's bytes fields must not pin the chunk.
        const data = new Uint8Array(size);
        copyInto(data, 0, chunk, at + 5, size);
        this.envelope(chunk[at] as number, data);
        at = end;
      }
      if (this.queuedBytes >= HIGH_WATER && !this.paused && !this.finished) {
        this.paused = true;
        this.stream.pause();
      }
    } catch (e) {
      this.fail(e);
    }
  }

  /** The body ended: the protocol's last checks, then the reader sees the end. */
  end(): void {
    if (this.finished) return;
    const stream = this.stream;
    // node:http2 also ends a stream's readable side when the stream is
    // reset or its session breaks: that end is not the response's.
    if (
      this.head === undefined ||
      stream.aborted ||
      errorFromRstCode(stream.rstCode) !== undefined
    ) {
      this.fail(cut(stream, this.head !== undefined));
      return;
    }
    if (this.chain !== undefined) {
      this.bodyEnded = true;
      this.chain = this.chain.then(() => this.last());
      return;
    }
    this.last();
  }

  /** The stream closed: a call whose body had not ended by then was cut. */
  closed(): void {
    if (!this.finished && !this.bodyEnded) this.fail(cut(this.stream, this.head !== undefined));
  }

  private last(): void {
    if (this.finished) return;
    try {
      if (this.part !== undefined) {
        throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
      }
      this.wire.finish(this.head as ResponseHead, this.ended, this.header as Headers, this.trailer);
    } catch (e) {
      this.fail(e);
      return;
    }
    this.finished = true;
    this.unsubscribe();
    this.complete = true;
    this.wake();
  }

  /** The length of the envelope at `at`, within readMaxBytes (connect-es' check and message). */
  private sizeAt(bytes: Uint8Array, at: number): number {
    const size =
      ((bytes[at + 1] as number) * 0x1000000 +
        (((bytes[at + 2] as number) << 16) |
          ((bytes[at + 3] as number) << 8) |
          (bytes[at + 4] as number))) >>>
      0;
    const max = this.limits.readMaxBytes;
    if (size > max) {
      throw new ConnectError(
        `message size ${size} is larger than configured readMaxBytes ${max}`,
        Code.ResourceExhausted,
      );
    }
    return size;
  }

  /** Keeps the start of an envelope that goes on in the next chunk, `length` bytes in all. */
  private begin(bytes: Uint8Array, length: number): void {
    const part = new GrowingBytes(length);
    part.fill(bytes, 0);
    this.part = part;
  }

  /** Fills the kept envelope from `chunk`; returns where the chunk's own envelopes begin. */
  private continuePart(chunk: Uint8Array): number {
    let part = this.part as GrowingBytes;
    let at = 0;
    if (part.filled < 5) {
      // Only the head was kept (begin(..., 5)): now the envelope's size is known.
      at = part.fill(chunk, 0);
      if (!part.whole) return at;
      const head = part.bytes();
      part = new GrowingBytes(5 + this.sizeAt(head, 0));
      part.fill(head, 0);
      this.part = part;
    }
    at += part.fill(chunk, at);
    if (part.whole) {
      this.part = undefined;
      const bytes = part.bytes();
      this.envelope(bytes[0] as number, bytes.subarray(5));
    }
    return at;
  }

  /** One whole envelope: decompressed (in order, through `chain`) if need be, then taken. */
  private envelope(flags: number, data: Uint8Array): void {
    if (this.chain === undefined && (flags & compressedFlag) !== compressedFlag) {
      this.take(flags, data);
      return;
    }
    const head = this.head as ResponseHead;
    const max = this.limits.readMaxBytes;
    this.chain = (this.chain ?? Promise.resolve())
      .then(() =>
        this.finished ? undefined : envelopeDecompress({ flags, data }, head.compression, max),
      )
      .then((env) => {
        if (env !== undefined && !this.finished) this.take(env.flags, env.data);
      })
      .catch((e: unknown) => this.fail(e));
  }

  /** A decompressed envelope: the end of a Connect stream, or a message to queue. */
  private take(flags: number, data: Uint8Array): void {
    const endFlag = this.wire.endFlag;
    if (endFlag !== 0 && (flags & endFlag) === endFlag) {
      if (this.ended !== undefined) {
        throw new ConnectError(
          "protocol error: received extra EndStreamResponse",
          Code.InvalidArgument,
        );
      }
      this.ended = readEndOfStream(data, this.header as Headers, this.trailer);
      return;
    }
    if (this.ended !== undefined) {
      throw new ConnectError(
        "protocol error: received extra message after EndStreamResponse",
        Code.InvalidArgument,
      );
    }
    if (data.length > this.limits.readMaxBytes) {
      throw new ConnectError(
        `message size ${data.length} is larger than configured readMaxBytes ${this.limits.readMaxBytes}`,
        Code.ResourceExhausted,
      );
    }
    const message = parseMessage(this.req.method.output, data);
    const readers = this.readers;
    if (readers.length > 0 && this.first === this.items.length) {
      (readers.shift() as Reader<MessageShape<O>>).resolve({ done: false, value: message });
      return;
    }
    this.items.push(message);
    this.sizes.push(data.length + 5);
    this.queuedBytes += data.length + 5;
  }

  private failQueue(error: ConnectError): void {
    if (this.error !== undefined || this.complete) return;
    this.error = error;
    this.wake();
  }

  /** Hands queued messages, then the end or the error, to waiting readers. */
  private wake(): void {
    const readers = this.readers;
    while (readers.length > 0) {
      const reader = readers[0] as Reader<MessageShape<O>>;
      if (this.first < this.items.length) {
        readers.shift();
        reader.resolve(this.next1());
      } else if (this.error !== undefined || this.complete) {
        readers.shift();
        this.settleRead(reader);
      } else return;
    }
  }

  /** The end or the error, read: the call settles. */
  private settleRead(reader: Reader<MessageShape<O>>): void {
    if (this.over) {
      reader.resolve(DONE);
      return;
    }
    this.over = true;
    if (this.error !== undefined) {
      reader.reject(this.call.failedLater(this.error));
      return;
    }
    this.call.done();
    reader.resolve(DONE);
  }

  private next1(): IteratorResult<MessageShape<O>> {
    const i = this.first;
    const value = this.items[i] as MessageShape<O>;
    this.items[i] = undefined;
    this.queuedBytes -= this.sizes[i] as number;
    this.first = i + 1;
    if (this.first === this.items.length) {
      this.items = [];
      this.sizes = [];
      this.first = 0;
    } else if (this.first > 1024 && this.first * 2 > this.items.length) {
      // A reader a little slower than the plugin never empties the queue:
      // without this, the arrays grew by a slot per message for the whole
      // stream (a million slots in 4 s). Copies fewer items than were read.
      this.items = this.items.slice(this.first);
      this.sizes = this.sizes.slice(this.first);
      this.first = 0;
    }
    if (this.paused && this.queuedBytes < HIGH_WATER / 2) {
      this.paused = false;
      this.stream.resume();
    }
    return { done: false, value };
  }

  [Symbol.asyncIterator](): AsyncIterator<MessageShape<O>> {
    return this;
  }

  next(): Promise<IteratorResult<MessageShape<O>>> {
    if (this.readers.length === 0) {
      if (this.first < this.items.length) return Promise.resolve(this.next1());
      if (this.over) return Promise.resolve(DONE);
    }
    const done = this.error !== undefined || this.complete;
    return new Promise((resolve, reject) => {
      this.readers.push({ resolve, reject });
      if (done) this.wake();
    });
  }

  /** The caller stopped reading: the call is abandoned, the stream reset if still open. */
  return(): Promise<IteratorResult<MessageShape<O>>> {
    if (!this.over) {
      this.over = true;
      this.items = [];
      this.sizes = [];
      this.first = 0;
      this.queuedBytes = 0;
      if (!this.complete && this.error === undefined) {
        this.call.abandon();
        this.stop();
      } else this.call.done();
      // next() calls still waiting are answered done, as a finished
      // generator's, also when no abort reached this call (an interceptor
      // that gave the request a signal of its own).
      for (const reader of this.readers.splice(0)) reader.resolve(DONE);
    }
    return Promise.resolve(DONE);
  }
}

/**
 * Opens a server stream on `session` for `req` (see ServerStreamCall): the
 * request's messages are serialized first (connect-es' errors), then sent
 * with the headers in one write. Settles with the response or its failure.
 */
export async function openServerStream<O extends DescMessage>(
  session: H2Session,
  req: StreamRequest<DescMessage, O>,
  call: CallSignal,
  wire: ServerStreamWire,
  limits: UnaryLimits,
): Promise<StreamResponse<DescMessage, O>> {
  const abort = abortOf(req);
  const path = session.pathOf(req.url);
  const bodies = await requestBodies(req, abort, call, limits);
  const headers = wire.requestHeaders(path, req.header, call.timeoutMs);
  return new Promise((resolve, reject) => {
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request(headers, onClose);
    } catch (e) {
      reject(errorFromNode(e));
      return;
    }
    const c = new ServerStreamCall<O>(stream, req, call, wire, limits, resolve, reject);
    listenAbort(abort, call, c);
    (stream as Listened)[STREAM_SLOT] = c as unknown as ServerStreamCall<DescMessage>;
    stream.on("error", failSlotOnError);
    stream.on("response", onResponse);
    if (wire.trailers) stream.on("trailers", onTrailers);
    stream.on("data", onData);
    stream.on("end", onEnd);
    stream.end(bodies.length === 1 ? bodies[0] : Buffer.concat(bodies));
  });
}

/**
 * The request's messages, serialized, read until the iterable ends or the
 * call is aborted (the caller's cancel, the deadline: see listenAbort),
 * whichever comes first: an iterable that never ends (or never yields)
 * must not hold the call past them. On abort the iterable is told to stop
 * (`return()`, not awaited: a generator waiting inside stops when it wakes).
 */
async function requestBodies<O extends DescMessage>(
  req: StreamRequest<DescMessage, O>,
  abort: AbortView,
  call: CallSignal,
  limits: UnaryLimits,
): Promise<Uint8Array[]> {
  const gone = abortedBefore(abort, call);
  if (gone !== undefined) throw errorFromNode(gone.reason);
  const stopped = new Stopped();
  listenAbort(abort, call, stopped);
  const it = req.message[Symbol.asyncIterator]();
  const bodies: Uint8Array[] = [];
  try {
    for (;;) {
      const next = await Promise.race([it.next(), stopped.promise]);
      if (next.done === true) break;
      try {
        bodies.push(requestBody(req.method.input, next.value, limits.writeMaxBytes, true));
      } catch (e) {
        // A message too large or not serializable ends the call: the
        // iterable is told so, as a `for await` would.
        stopIterator(it);
        throw e;
      }
    }
  } catch (e) {
    if (stopped.reason === undefined) throw e;
    stopIterator(it);
    throw errorFromNode(stopped.reason.value);
  } finally {
    stopped.unsubscribe();
  }
  const after = abortedBefore(abort, call);
  if (after !== undefined) throw errorFromNode(after.reason);
  return bodies;
}

/** Tells an iterator to stop, not waiting for it; its own failure to stop is not the call's. */
function stopIterator(it: AsyncIterator<unknown>): void {
  try {
    void Promise.resolve(it.return?.()).catch(noop);
  } catch {
    // return() threw at once: the call fails with its own error anyway.
  }
}

/** A promise that rejects when the call is aborted while its request is read (see requestBodies). */
class Stopped implements AbortListener {
  unsubscribe: () => void = noop;
  reason: { readonly value: unknown } | undefined;
  private reject: (reason: unknown) => void = noop;
  readonly promise = new Promise<never>((_, reject) => (this.reject = reject));

  constructor() {
    // Rejected after the request was read, or never: nobody awaits it then.
    this.promise.catch(noop);
  }

  abortWith(reason: unknown): void {
    this.fail(reason);
  }

  fail(reason: unknown): void {
    this.reason ??= { value: reason };
    this.reject(reason);
  }
}

type Listened = http2.ClientHttp2Stream & {
  [STREAM_SLOT]?: ServerStreamCall<DescMessage>;
};

function callOf(stream: http2.ClientHttp2Stream): ServerStreamCall<DescMessage> | undefined {
  return (stream as Listened)[STREAM_SLOT];
}

function onClose(this: http2.ClientHttp2Stream): void {
  releaseSlot<ServerStreamCall<DescMessage>>(this)?.closed();
}

function onResponse(
  this: http2.ClientHttp2Stream,
  h: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader,
): void {
  callOf(this)?.respond(h);
}

function onTrailers(this: http2.ClientHttp2Stream, t: http2.IncomingHttpHeaders): void {
  callOf(this)?.trailers(t);
}

function onData(this: http2.ClientHttp2Stream, chunk: Uint8Array): void {
  callOf(this)?.data(chunk);
}

function onEnd(this: http2.ClientHttp2Stream): void {
  callOf(this)?.end();
}
