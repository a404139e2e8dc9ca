import type { Readable } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";
import { envelopeDecompress, type Compression } from "@connectrpc/connect/protocol";
import { EnvelopeSplitter, HIGH_WATER, type EnvelopeSink } from "./envelope-split.js";

/** The envelope flag of a compressed message. */
const COMPRESSED = 1;

/**
 * A compressed envelope, decompressed (and parsed) when the reader comes
 * to it, as connect-es does: one at a time, so that many small envelopes
 * queued cannot each be inflating at once.
 */
class Compressed {
  constructor(
    readonly flags: number,
    readonly data: Uint8Array,
  ) {}
}

/** The request's failure, delivered after the messages before it. */
class Failed {
  constructor(readonly error: unknown) {}
}

const SKIP: unknown = Symbol("skip");

/** Whether an envelope's `flags` mark the end envelope `format` skips. */
function isEnd(format: RequestFormat, flags: number): boolean {
  const end = format.endFlag;
  return end !== undefined && (flags & end) === end;
}

/** How RequestStream reads one request: connect-es' limits and serialization. */
export interface RequestFormat {
  readonly readMaxBytes: number;
  /** The request's encoding (null: identity). */
  readonly compression: Compression | null;
  /**
   * An envelope with this flag is skipped, as connect-es' handlers skip it
   * (Connect's end-of-stream, 2; gRPC-web's trailer, 0x80); undefined
   * (gRPC): every envelope is a message.
   */
  readonly endFlag: number | undefined;
  /** One message's bytes to the message; throws connect-es' error ("parse binary: ..."). */
  parse(bytes: Uint8Array): unknown;
}

/**
 * The messages of a client- or bidi-streaming request on the lean path, as
 * the implementation reads them (an AsyncIterable), with connect-es'
 * errors and in their place: the body is split as its DATA chunks arrive
 * (EnvelopeSplitter: an announced size is never allocated ahead of its
 * bytes), each message parsed at once and queued (a compressed one is
 * queued as it came and decompressed by connect-es' envelopeDecompress
 * when the reader comes to it, in order: next() calls made meanwhile
 * settle after it). Flow control: past
 * HIGH_WATER bytes queued unread the HTTP/2 stream is paused (no
 * WINDOW_UPDATE goes out, so the host's writes stop), and it resumes below
 * half. The end, or an error (an envelope over readMaxBytes, a message that
 * does not parse, a body cut mid-envelope, the client gone), comes after
 * the messages queued before it. A reader that stops early (return())
 * stops the parsing; the rest of the body is read and dropped.
 */
export class RequestStream implements AsyncIterable<unknown>, AsyncIterator<unknown>, EnvelopeSink {
  /** Messages, Compressed or Failed, in order; `sizes` holds each one's envelope size. */
  private readonly items: unknown[] = [];
  private readonly sizes: number[] = [];
  private queued = 0;
  private paused = false;
  /** No more items will be queued (the body ended, failed, or the reader left). */
  private ended = false;
  /** The reader has seen an error or left: next() says done. */
  private over = false;
  /** The response has ended: a request left unread is dropped, not held by flow control. */
  private detached = false;
  private readonly splitter: EnvelopeSplitter;
  /**
   * The last next() call still decompressing, or chained behind one
   * (undefined: none). Calls made meanwhile settle after it, in order, as
   * connect-es' async generator settles them: a plain message behind a
   * compressed one must not overtake it.
   */
  private inflight: Promise<IteratorResult<unknown>> | undefined;
  /** next() calls waiting for a message, in order (readers sharing the iterator each get their own). */
  private readonly waiting: Array<{
    resolve: (r: IteratorResult<unknown>) => void;
    reject: (e: unknown) => void;
  }> = [];

  constructor(
    private readonly body: Readable,
    private readonly format: RequestFormat,
  ) {
    this.splitter = new EnvelopeSplitter(this, format.readMaxBytes);
  }

  /** EnvelopeSink: true once nothing more is to be split. */
  get finished(): boolean {
    return this.ended;
  }

  [Symbol.asyncIterator](): AsyncIterator<unknown> {
    return this;
  }

  /** One DATA chunk of the request body. */
  chunk(chunk: Uint8Array): void {
    if (this.ended) return;
    try {
      this.splitter.push(chunk);
    } catch (error) {
      // An announced size over readMaxBytes (envelopeSize's error).
      this.fail(error);
    }
  }

  /** The body's end: a whole one, or cut mid-envelope (connect-es' error). */
  end(): void {
    if (this.ended) return;
    if (this.splitter.partial) {
      this.fail(new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument));
      return;
    }
    this.ended = true;
    this.wake();
  }

  /** Ends the request with `error` after the messages already queued. */
  fail(error: unknown): void {
    if (this.ended) return;
    this.queue(new Failed(error), 0);
    this.ended = true;
    this.drop();
  }

  envelope(flags: number, data: Uint8Array): void {
    const format = this.format;
    const size = 5 + data.length;
    if ((flags & COMPRESSED) !== 0) {
      if (format.compression === null) {
        this.fail(
          new ConnectError(
            "received compressed envelope, but do not know how to decompress",
            Code.Internal,
          ),
        );
        return;
      }
      this.queue(new Compressed(flags, data), size);
      return;
    }
    if (isEnd(format, flags)) return;
    let message: unknown;
    try {
      message = format.parse(data);
    } catch (error) {
      this.fail(error);
      return;
    }
    this.queue(message, size);
  }

  next(): Promise<IteratorResult<unknown>> {
    const before = this.inflight;
    if (before === undefined) return this.take();
    const take = (): Promise<IteratorResult<unknown>> => this.take();
    return this.track(before.then(take, take));
  }

  /** The next item, now (no call before it is outstanding). */
  private take(): Promise<IteratorResult<unknown>> {
    if (this.over) return Promise.resolve({ done: true, value: undefined });
    if (this.items.length > 0) {
      const item = this.items.shift();
      this.queued -= this.sizes.shift() as number;
      if (this.paused && this.queued < HIGH_WATER / 2) {
        this.paused = false;
        this.body.resume();
      }
      if (item instanceof Failed) return this.failed(item.error);
      if (item instanceof Compressed) {
        const call = this.decompress(item).then(
          (value) => (value === SKIP ? this.take() : { done: false, value }),
          (error: unknown) => this.failed(error),
        );
        // Taken by a call already tracked (chained, or skipping an end envelope): that one stays the anchor.
        return this.inflight === undefined ? this.track(call) : call;
      }
      return Promise.resolve({ done: false, value: item });
    }
    if (this.ended) return Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /** The reader stops early: nothing more is parsed, the rest of the body is dropped. */
  return(): Promise<IteratorResult<unknown>> {
    this.stop();
    return Promise.resolve({ done: true, value: undefined });
  }

  /**
   * The response has ended. The implementation may still read the request
   * (as on connect-es' handler), but the host is no longer held back for
   * it: once HIGH_WATER bytes are queued unread, they are dropped and the
   * reader gets an error in their place.
   */
  detach(): void {
    this.detached = true;
    if (this.paused) this.abandon();
  }

  /** Drops what is queued (the body still open); the reader gets the error. */
  private abandon(): void {
    if (this.ended) return;
    this.items.length = 0;
    this.sizes.length = 0;
    this.queued = 0;
    this.fail(
      new ConnectError(
        "request messages not read after the response ended were dropped",
        Code.ResourceExhausted,
      ),
    );
  }

  /** `call`, as the call later ones settle after until it settles. */
  private track(call: Promise<IteratorResult<unknown>>): Promise<IteratorResult<unknown>> {
    this.inflight = call;
    const clear = (): void => {
      if (this.inflight === call) this.inflight = undefined;
    };
    call.then(clear, clear);
    return call;
  }

  private queue(item: unknown, size: number): void {
    const w = this.waiting.shift();
    if (w !== undefined && !(item instanceof Compressed) && this.inflight === undefined) {
      // A reader waits: it gets the message (or error) without queueing.
      if (item instanceof Failed) {
        this.over = true;
        w.reject(item.error);
        this.wake();
      } else w.resolve({ done: false, value: item });
      return;
    }
    this.items.push(item);
    this.sizes.push(size);
    this.queued += size;
    if (w !== undefined) {
      void this.next().then(w.resolve, w.reject);
    } else if (!this.paused && this.queued >= HIGH_WATER) {
      this.paused = true;
      this.body.pause();
      if (this.detached && !(item instanceof Failed)) this.abandon();
    }
  }

  /** The message of a compressed envelope (SKIP: an end envelope); rejects with connect-es' errors. */
  private async decompress(item: Compressed): Promise<unknown> {
    const format = this.format;
    const e = await envelopeDecompress(item, format.compression, format.readMaxBytes);
    return isEnd(format, e.flags) ? SKIP : format.parse(e.data);
  }

  /** The end reached the waiting readers (after the call still decompressing, if any). */
  private wake(): void {
    const before = this.inflight;
    for (const w of this.waiting.splice(0)) {
      const done = (): void => w.resolve({ done: true, value: undefined });
      if (before === undefined) done();
      else before.then(done, done);
    }
  }

  /** The reader gets `error`; nothing more is parsed, the rest of the body is dropped. */
  private failed(error: unknown): Promise<IteratorResult<unknown>> {
    this.stop();
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- connect-es' error as it is
    return Promise.reject(error);
  }

  /**
   * The reader is done (it left, or got an error): nothing more is parsed,
   * the queue goes, the rest of the body is dropped, and next() calls still
   * pending (other tasks reading the same iterator) end too.
   */
  private stop(): void {
    this.over = true;
    this.ended = true;
    this.items.length = 0;
    this.sizes.length = 0;
    this.drop();
    this.wake();
  }

  /** Reads the rest of the body without keeping it (the host is not held by flow control). */
  private drop(): void {
    if (this.paused) {
      this.paused = false;
      this.body.resume();
    }
  }
}
