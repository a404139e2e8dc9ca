import type * as http2 from "node:http2";
import { Readable, type Writable } from "node:stream";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type StreamRequest, type StreamResponse } from "@connectrpc/connect";
import { compressedFlag, envelopeDecompress } from "@connectrpc/connect/protocol";
import { noop, type CallSignal } from "./call-support.js";
import { CallOutcome } from "./call-outcome.js";
import type { AbortListener } from "./lazy-abort.js";
import { errorFromNode } from "./node-errors.js";
import { nodeHeadersToWeb } from "./node-headers.js";
import { drained } from "./drained.js";
import { stopIterator } from "./stop-iterator.js";
import {
  type EndEnvelope,
  type EndOfStream,
  type ResponseHead,
  type StreamWire,
} from "./stream-wire.js";
import { EnvelopeSplitter, HIGH_WATER, type EnvelopeSink } from "./envelope-split.js";
import { incompleteEnvelope, tooLarge } from "./unary-body.js";
import { parseMessage, requestBody, type UnaryLimits } from "./unary-client-wire.js";

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

/** A next() waiting for a message, the end or the error. */
interface Reader<T> {
  resolve: (r: IteratorResult<T>) => void;
  reject: (e: unknown) => void;
}

/**
 * What a stream call starts from (HttpTarget.stream): the request, its
 * abort state, the ends of the call's promise, the protocol's wire and the
 * size limits.
 */
export interface StreamStart<O extends DescMessage> {
  readonly req: StreamRequest<DescMessage, O>;
  readonly call: CallSignal;
  readonly wire: StreamWire;
  readonly limits: UnaryLimits;
  readonly resolve: (res: StreamResponse<DescMessage, O>) => void;
  readonly reject: (error: ConnectError) => void;
}

/**
 * A stream call (server, client or bidi) on the host's lean HTTP paths
 * (h2-stream-call.ts over HTTP/2, h1-stream-call.ts over HTTP/1.1): the
 * request's messages written as the caller's iterable yields them
 * (send), the response's envelopes split as its chunks arrive (each
 * payload copied once into its own buffer, as connect-es' envelope reader
 * does, so that bytes fields never pin node's chunks, and grown with its
 * bytes, never sized by the plugin's announcement), each message
 * decoded at once (decodeMessage: the flat decoder, or fromBinary) and
 * queued; the caller's iterator reads the queue, one resolved promise per
 * message found queued, where connect-es' client ran each message through
 * five async generators (docs/http2-streams.md, sessions 17 and 19).
 *
 * The checks, errors and metadata are connect-es' (StreamWire): the
 * promise settles with the response headers, or the first failure before
 * them; after them, failures reach the reader once the messages queued
 * before them are read (as connect-es' pipeline yields them). A compressed
 * envelope is decompressed with connect-es' envelopeDecompress; from the
 * first one on, envelopes and the end go through one promise chain, in
 * order. The call is settled here (CallTarget.settlesStreams): its end
 * read, done; its error read, failed (the caller's cancel or deadline
 * winning); `return()`, abandoned. Any failure, and `return()` before the
 * end, stop the exchange (reset(): HTTP/2 resets the stream with CANCEL,
 * HTTP/1.1 destroys the request). Reads and writes are independent, as
 * on connect-es' path: the promise settles with the response headers
 * whether or not the request has ended, and a bidi caller may read before
 * it finished writing. Each HTTP version's subclass feeds the events in
 * (respond, trailers, data, end, closed) and says how an exchange is
 * stopped and how a cut one is told (reset, cut, cutAtEnd).
 */
export abstract class StreamCall<O extends DescMessage, S extends Writable = Writable>
  extends CallOutcome
  implements
    AbortListener,
    EnvelopeSink,
    AsyncIterable<MessageShape<O>>,
    AsyncIterator<MessageShape<O>>
{
  unsubscribe: () => void = noop;
  /** The request's iterator while send() reads it; undefined once it ended or was told to stop. */
  private requests: AsyncIterator<unknown> | undefined;
  private head: ResponseHead | undefined;
  private header: Headers | undefined;
  private readonly trailer = new Headers();
  private ended: EndOfStream | undefined;
  /** gRPC: the HTTP trailers (the status) arrived. */
  private trailed = false;
  /** The response body's envelopes, split as its chunks arrive. */
  private readonly split: EnvelopeSplitter;
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

  /** The response's body, once it flows: paused while the queue is full. */
  protected source: Readable | undefined;

  private readonly req: StreamRequest<DescMessage, O>;
  private readonly call: CallSignal;
  private readonly wire: StreamWire;
  private readonly limits: UnaryLimits;
  private readonly resolve: (res: StreamResponse<DescMessage, O>) => void;

  constructor(
    /** Where the request's messages are written (an HTTP/2 stream, an HTTP/1.1 request). */
    protected readonly out: S,
    start: StreamStart<O>,
  ) {
    super(start.reject);
    this.req = start.req;
    this.call = start.call;
    this.wire = start.wire;
    this.limits = start.limits;
    this.resolve = start.resolve;
    this.split = new EnvelopeSplitter(this, start.limits.readMaxBytes);
    // An HTTP/2 stream is its response's body too; HTTP/1.1's comes later.
    if (out instanceof Readable) this.source = out;
  }

  /** The call's abort state fired (AbortListener): the caller's cancel, the deadline, or the end. */
  abortWith(reason: unknown): void {
    this.fail(reason);
    // The call is over (its response was complete, and read): the request
    // is no longer read, and the request ends.
    this.endRequest();
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
    this.stopRequests();
    this.reset();
  }

  /**
   * Writes the request's messages as the iterable yields them, each
   * serialized and enveloped as connect-es does (its errors, writeMaxBytes
   * per message), waiting for "drain" when node's buffer is full (the
   * plugin reads slowly: its HTTP/2 flow-control window is spent, or its
   * socket is), then ends the request. An iterable that throws, or a
   * message that cannot be sent, fails the call with that error (reset()).
   * Stops when the call ends first (stopRequests: the iterable is told to
   * stop, a value it yields later is dropped), so an iterable that never
   * ends cannot hold the call past its cancel or deadline.
   */
  async send(it: AsyncIterator<MessageShape<DescMessage>>, writeMaxBytes: number): Promise<void> {
    this.requests = it;
    const out = this.out;
    const input = this.req.method.input;
    try {
      for (;;) {
        const next = await it.next();
        if (this.requests !== it) return;
        if (next.done === true) break;
        const body = requestBody(input, next.value, writeMaxBytes, true);
        if (!open(out) || (!out.write(body) && !(await drained(out)))) {
          // Closed before the request was sent: the response side tells why.
          this.stopRequests();
          return;
        }
        if (this.requests !== it) return;
      }
    } catch (e) {
      // The iterable threw (it is over), or a message could not be
      // serialized (then it is told to stop, as a `for await` would).
      this.stopRequests();
      if (this.finished) this.reset();
      else this.fail(e);
      return;
    }
    this.requests = undefined;
    if (open(out)) out.end();
  }

  /** The call ended: the request is no longer read, and is ended if still open. */
  private endRequest(): void {
    if (this.requests === undefined) return;
    this.stopRequests();
    if (open(this.out)) this.out.end();
  }

  /** Tells the request's iterator to stop (not waiting for it), once. */
  private stopRequests(): void {
    const it = this.requests;
    if (it === undefined) return;
    this.requests = undefined;
    stopIterator(it);
  }

  /**
   * Stops the exchange on a failure, or on return() before the end, unless
   * it is over: the client has lost interest (the plugin's handler is told).
   */
  protected abstract reset(): void;

  /**
   * Why the exchange ended before the response did: cut (see
   * node-errors.ts' closedBefore); `responded`: after the response's head.
   */
  protected abstract cut(responded: boolean): ConnectError;

  /**
   * At the body's end: true when the HTTP layer ended it early (a reset, a
   * broken connection), so the end is not the response's. `protocolEnded`:
   * the protocol's own end came first (gRPC's trailers, Connect's
   * end-of-stream envelope, gRPC-web's trailer envelope).
   */
  protected abstract cutAtEnd(protocolEnded: boolean): boolean;

  /** The response's status and headers are in. */
  respond(status: number, h: http2.IncomingHttpHeaders): void {
    if (this.settled) return;
    const header = nodeHeadersToWeb(h);
    try {
      this.head = this.wire.response(status, header);
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
    this.trailed = true;
    const trailer = this.trailer;
    nodeHeadersToWeb(t).forEach((value, key) => trailer.append(key, value));
  }

  /** A chunk of the body: its whole envelopes handled in place, a partial one kept. */
  data(chunk: Uint8Array): void {
    if (this.finished || this.head === undefined) return;
    try {
      this.split.push(chunk);
      if (this.queuedBytes >= HIGH_WATER && !this.paused && !this.finished) {
        this.paused = true;
        this.source?.pause();
      }
    } catch (e) {
      this.fail(e);
    }
  }

  /** The body ended: the protocol's last checks, then the reader sees the end. */
  end(): void {
    if (this.finished) return;
    if (
      this.head === undefined ||
      this.cutAtEnd(this.wire.trailers ? this.trailed : this.ended !== undefined)
    ) {
      this.fail(this.cut(this.head !== undefined));
      return;
    }
    if (this.chain !== undefined) {
      this.bodyEnded = true;
      this.chain = this.chain.then(() => this.last());
      return;
    }
    this.last();
  }

  /** The exchange closed: a call whose body had not ended was cut; no request goes further. */
  closed(): void {
    if (!this.finished && !this.bodyEnded) this.fail(this.cut(this.head !== undefined));
    this.stopRequests();
  }

  private last(): void {
    if (this.finished) return;
    try {
      if (this.split.partial) {
        throw incompleteEnvelope();
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

  /** One whole envelope (EnvelopeSink): decompressed (in order, through `chain`) if need be, then taken. */
  envelope(flags: number, data: Uint8Array): void {
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

  /** A decompressed envelope: the end of a Connect or gRPC-web stream, or a message to queue. */
  private take(flags: number, data: Uint8Array): void {
    const wire = this.wire;
    if (wire.statusEndsBody && (this.head as ResponseHead).foundStatus) {
      throw new ConnectError("protocol error: extra data for trailers-only", Code.InvalidArgument);
    }
    const end = wire.end;
    if (end !== undefined && (flags & end.flag) === end.flag) {
      if (this.ended !== undefined) {
        throw new ConnectError(`protocol error: received extra ${end.name}`, Code.InvalidArgument);
      }
      this.ended = end.read(data, this.header as Headers, this.trailer);
      return;
    }
    if (this.ended !== undefined) {
      throw new ConnectError(
        `protocol error: received extra message after ${(end as EndEnvelope).name}`,
        Code.InvalidArgument,
      );
    }
    if (data.length > this.limits.readMaxBytes)
      throw tooLarge(this.limits.readMaxBytes, data.length);
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
      this.source?.resume();
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

  /** The caller stopped reading: the call is abandoned, the exchange reset if still open. */
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

/** True while the request side can still be written. */
function open(out: Writable): boolean {
  return !out.destroyed && !out.writableEnded;
}
