import type { Readable } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";
import { envelopeDecompress, type Compression } from "@connectrpc/connect/protocol";
import { EnvelopeSplitter, HIGH_WATER, type EnvelopeSink } from "./envelope-split.js";
import { incompleteEnvelope } from "./unary-body.js";

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

/** The iterator's end, a new object each time (as an async generator gives). */
const done = (): IteratorResult<unknown> => ({ done: true, value: undefined });

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
 * when the reader comes to it, in order: next() calls wait in one queue
 * and settle in the order they were made, those behind a compressed
 * message after it). Flow control: past
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
   * The first waiting call's compressed message is being decompressed: the
   * calls behind it wait, as connect-es' async generator queues its next()
   * calls (a plain message behind a compressed one must not overtake it).
   */
  private busy = false;
  /** next() calls not settled yet, in the order they were made (readers sharing the iterator each get their own). */
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
      this.fail(incompleteEnvelope());
      return;
    }
    this.ended = true;
    this.serve();
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
    if (!this.busy && this.waiting.length === 0) {
      // No call before this one: a plain message or the end, at once.
      if (this.over) return Promise.resolve(done());
      if (this.items.length === 0) {
        if (this.ended) return Promise.resolve(done());
      } else if (!(this.items[0] instanceof Compressed) && !(this.items[0] instanceof Failed)) {
        return Promise.resolve({ done: false, value: this.shift() });
      }
    }
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.serve();
    });
  }

  /** The first queued item, its size no longer counted (flow control resumes below half). */
  private shift(): unknown {
    const item = this.items.shift();
    this.queued -= this.sizes.shift() as number;
    if (this.paused && this.queued < HIGH_WATER / 2) {
      this.paused = false;
      this.body.resume();
    }
    return item;
  }

  /**
   * Settles the waiting calls in order with what is queued: one at a time
   * through a compressed message (the others wait behind it), the rest
   * done once the body has ended or the reader is over.
   */
  private serve(): void {
    const waiting = this.waiting;
    while (!this.busy && waiting.length > 0) {
      if (this.over || (this.items.length === 0 && this.ended)) {
        for (const w of waiting.splice(0)) w.resolve(done());
        return;
      }
      if (this.items.length === 0) return;
      const item = this.shift();
      const w = waiting[0] as (typeof waiting)[number];
      if (item instanceof Compressed) {
        // The call stays first in line until its message is out (an end envelope: the next one).
        this.busy = true;
        this.decompress(item).then(
          (value) => {
            this.busy = false;
            if (value !== SKIP) {
              waiting.shift();
              w.resolve({ done: false, value });
            }
            this.serve();
          },
          (error: unknown) => {
            this.busy = false;
            waiting.shift();
            this.failed(w, error);
          },
        );
        return;
      }
      waiting.shift();
      if (item instanceof Failed) this.failed(w, item.error);
      else w.resolve({ done: false, value: item });
    }
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

  private queue(item: unknown, size: number): void {
    if (
      this.waiting.length > 0 &&
      !this.busy &&
      this.items.length === 0 &&
      !(item instanceof Compressed)
    ) {
      // A reader waits with nothing before it: it gets the message (or error) without queueing.
      const w = this.waiting.shift() as (typeof this.waiting)[number];
      if (item instanceof Failed) this.failed(w, item.error);
      else w.resolve({ done: false, value: item });
      return;
    }
    this.items.push(item);
    this.sizes.push(size);
    this.queued += size;
    // A reader waits: it gets the message (or error) in its turn.
    if (this.waiting.length > 0) this.serve();
    if (!this.paused && this.queued >= HIGH_WATER) {
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

  /** The reader (call `w`) gets `error`; nothing more is parsed, the rest of the body is dropped. */
  private failed(w: { reject: (e: unknown) => void }, error: unknown): void {
    w.reject(error);
    this.stop();
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
    this.serve();
  }

  /** Reads the rest of the body without keeping it (the host is not held by flow control). */
  private drop(): void {
    if (this.paused) {
      this.paused = false;
      this.body.resume();
    }
  }
}
