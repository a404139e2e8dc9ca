/**
 * The framing of connect-plugin's local wire protocol ("framed"): many calls
 * multiplexed over one stream socket, each frame a 9-byte header (payload
 * length u32, frame type u8, call id u32, all big-endian) and a payload.
 *
 * Why not HTTP/2: between two processes on one machine, HTTP/2's flow
 * control, HPACK and the Connect envelope on top cost several hundred µs per
 * call in Node, while this framing costs a few. The call semantics are the
 * same as Connect's (headers, trailers, deadlines, cancellation, errors with
 * details, all four streaming kinds); only the bytes differ.
 */

import { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { MeasuredMessage } from "../codec/measured-message.js";
import { PairsHeaders } from "../lazy-pairs-headers.js";

export const FrameType = {
  /** Client → server: opens a call. Payload: JSON {p: path, t?: timeoutMs, h?: headers}. */
  open: 1,
  /** Either way: one protobuf message. */
  message: 2,
  /** Client → server: the request stream is complete. */
  end: 3,
  /** Client → server: the caller cancelled; the server aborts the handler. */
  cancel: 4,
  /** Server → client: response headers. Payload: JSON [[name, value], ...]. */
  header: 5,
  /** Server → client: the call is over. Payload: JSON {t?: trailers, e?: error}. */
  trailer: 6,
  /**
   * Server → client, call id 0, no payload: the server closes this idle
   * connection. The client opens no new call on it (its next call dials a
   * new connection) and ends it once its open calls have ended; calls it
   * opened before it read this frame are still served. (A client that does
   * not know the frame ignores it, as any frame of no open call, and is
   * closed by the server a grace period later.)
   */
  goaway: 7,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export const FRAME_HEADER_BYTES = 9;
/** Largest payload a peer accepts by default (Connect's default limit is 4 GiB; ours is lower). */
export const DEFAULT_MAX_FRAME_BYTES = 256 * 1024 * 1024;

/** Encodes one frame into a single buffer. */
export function encodeFrame(type: FrameType, id: number, payload?: Uint8Array): Buffer {
  const length = payload?.byteLength ?? 0;
  const buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + length);
  buf.writeUInt32BE(length, 0);
  buf.writeUInt8(type, 4);
  buf.writeUInt32BE(id, 5);
  if (payload !== undefined) buf.set(payload, FRAME_HEADER_BYTES);
  return buf;
}

/** JSON payload as bytes. */
export function jsonPayload(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

export function parseJson(payload: Uint8Array): unknown {
  if (payload.byteLength === 0) return undefined;
  return JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString());
}

/**
 * Frames up to this size (16 MiB) get their whole buffer when their header
 * arrives; larger ones are joined from their chunks once whole, so that a
 * length prefix alone never makes the reader allocate more than this.
 */
const PREALLOCATE_BYTES = 16 * 1024 * 1024;

/**
 * Splits a byte stream into frames. Chunks are kept as they arrive and only
 * copied when a frame straddles two of them; each payload is handed on as a
 * plain Uint8Array view of the bytes that arrived.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Bytes needed before the pending frame is whole (0: unknown yet). */
  private needed = 0;
  /** Payload bytes of an oversized frame still to discard. */
  private skipping = 0;
  /**
   * The frame being received, when its size was known from its first
   * chunk (and at most PREALLOCATE_BYTES): each chunk is copied in as it
   * arrives, so that chunks die young instead of waiting for the last one
   * (held across garbage collections, 1 MiB of read chunks a call got
   * promoted and cost the plugin a full collection every few 1 MiB calls).
   * `buffered` bytes of it are filled.
   */
  private filling: Buffer | undefined;

  /**
   * Frames are buffered whole, so `maxFrameBytes` bounds this reader's memory.
   * `onOversized`, when given, is told of a frame over the limit, whose
   * payload is then skipped so that the connection stays usable; without
   * it, push() throws. Skipping costs no memory but swallows the stream, so
   * a frame longer than `maxSkipBytes` (a lying length prefix) throws
   * instead (default: the protocol's 256 MiB frame limit).
   */
  constructor(
    private readonly onFrame: (type: number, id: number, payload: Uint8Array) => void,
    private readonly maxFrameBytes = DEFAULT_MAX_FRAME_BYTES,
    private readonly onOversized?: (type: number, id: number, length: number) => void,
    private readonly maxSkipBytes = DEFAULT_MAX_FRAME_BYTES,
  ) {}

  /** True while a frame has begun but is not whole yet (or is being skipped). */
  get partial(): boolean {
    return this.buffered > 0 || this.skipping > 0;
  }

  /** Frames finished so far (delivered or skipped whole): readFrames times each frame from its start. */
  get completed(): number {
    return this.done;
  }
  private done = 0;

  /** Feeds bytes; throws on a frame larger than the limit unless told to skip it. */
  push(chunk: Buffer): void {
    if (this.skipping > 0) {
      const skipped = Math.min(this.skipping, chunk.length);
      this.skipping -= skipped;
      if (this.skipping === 0) this.done++;
      chunk = chunk.subarray(skipped);
    }
    const filling = this.filling;
    if (filling !== undefined) {
      const n = Math.min(this.needed - this.buffered, chunk.length);
      filling.set(n === chunk.length ? chunk : chunk.subarray(0, n), this.buffered);
      this.buffered += n;
      if (this.buffered < this.needed) return;
      this.filling = undefined;
      this.buffered = 0;
      this.needed = 0;
      this.consume(filling);
      if (n === chunk.length) return;
      chunk = chunk.subarray(n);
    }
    if (this.buffered === 0) {
      this.consume(chunk);
      return;
    }
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    // A large frame arrives in many chunks: join them once, when it is whole.
    if (this.buffered < this.needed) return;
    const all = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [];
    this.buffered = 0;
    this.needed = 0;
    this.consume(all);
  }

  private consume(buf: Buffer): void {
    let offset = 0;
    while (buf.length - offset >= FRAME_HEADER_BYTES) {
      const length = buf.readUInt32BE(offset);
      const end = offset + FRAME_HEADER_BYTES + length;
      if (length > this.maxFrameBytes) {
        if (this.onOversized === undefined || length > this.maxSkipBytes) {
          const limit = this.onOversized === undefined ? this.maxFrameBytes : this.maxSkipBytes;
          throw new Error(`frame of ${length} bytes exceeds the limit of ${limit}`);
        }
        this.onOversized(buf.readUInt8(offset + 4), buf.readUInt32BE(offset + 5), length);
        this.skipping = Math.max(0, end - buf.length);
        if (this.skipping === 0) this.done++;
        offset = Math.min(end, buf.length);
        continue;
      }
      if (end > buf.length) {
        this.needed = FRAME_HEADER_BYTES + length;
        break;
      }
      const type = buf[offset + 4] as number;
      const id = buf.readUInt32BE(offset + 5);
      this.done++;
      // One plain view per frame (not a Buffer): protobuf-es keeps it in bytes fields.
      this.onFrame(
        type,
        id,
        new Uint8Array(buf.buffer, buf.byteOffset + offset + FRAME_HEADER_BYTES, length),
      );
      offset = end;
    }
    if (offset < buf.length) {
      const rest = buf.subarray(offset);
      if (this.needed > 0 && this.needed <= PREALLOCATE_BYTES) {
        this.filling = Buffer.allocUnsafe(this.needed);
        this.filling.set(rest, 0);
      } else this.chunks.push(rest);
      this.buffered += rest.length;
    }
  }
}

/** Default time a frame may take from its first byte to its last (see readFrames). */
export const DEFAULT_FRAME_TIMEOUT_MS = 30_000;

/**
 * Feeds a socket's bytes to `reader`, and calls `cutOff` with the reason when
 * the peer breaks the protocol: a frame the reader refuses (a lying length
 * prefix), or a frame still incomplete `timeoutMs` after its first byte (a
 * peer that trickles or stops, holding the buffer). `cutOff` ends the socket.
 * Each frame gets its own `timeoutMs`: a peer that streams frames without a
 * pause (so that every chunk ends inside a frame) is never cut off for it.
 * `head`: bytes already read from the socket (a sniffed preface), taken as
 * its first chunk, so that a frame they begin is timed too.
 */
export function readFrames(
  socket: Duplex,
  reader: Pick<FrameReader, "push" | "partial" | "completed">,
  timeoutMs: number,
  cutOff: (why: string) => void,
  head?: Buffer,
): void {
  let slow: NodeJS.Timeout | undefined;
  let timing = -1;
  const onData = (chunk: Buffer): void => {
    try {
      reader.push(chunk);
    } catch (error) {
      clearTimeout(slow);
      cutOff((error as Error).message);
      return;
    }
    if (!reader.partial) {
      clearTimeout(slow);
      slow = undefined;
    } else if (slow !== undefined && reader.completed !== timing) {
      // The frame timed before has finished: time the one now in progress.
      timing = reader.completed;
      slow.refresh();
    } else if (slow === undefined) {
      timing = reader.completed;
      slow = setTimeout(
        () => cutOff(`a frame was still incomplete ${timeoutMs} ms after its first byte`),
        timeoutMs,
      );
      slow.unref();
    }
  };
  socket.on("data", onData);
  socket.once("close", () => clearTimeout(slow));
  if (head !== undefined && head.length > 0) onData(head);
}

/**
 * Headers as a JSON-friendly list of pairs (repeated names kept); undefined
 * when there are none. Lazy headers nobody used are read as empty without
 * making a `Headers` (which would load undici).
 */
export function headersToPairs(headers: Headers): [string, string][] | undefined {
  if (headers instanceof PairsHeaders && headers.untouchedEmpty) return undefined;
  let out: [string, string][] | undefined;
  headers.forEach((value, name) => (out ??= []).push([name, value]));
  return out;
}

export function pairsToHeaders(pairs: unknown): Headers {
  const headers = new Headers();
  if (Array.isArray(pairs)) {
    for (const pair of pairs) {
      if (Array.isArray(pair) && typeof pair[0] === "string" && typeof pair[1] === "string") {
        headers.append(pair[0], pair[1]);
      }
    }
  }
  return headers;
}

/**
 * A queue that one side fills and an async iterator drains: the messages of
 * one call, in order, then either the end or an error.
 */
export class MessageQueue<T> implements AsyncIterable<T> {
  private items: T[] = [];
  /** The byte size of each item, beside `items` (only if the pusher gives sizes). */
  private sizes: number[] = [];
  private head = 0;
  /** Bytes of the messages pushed and not read yet (the sizes push() was given). */
  queuedBytes = 0;
  private ended = false;
  private error: unknown;
  private failed = false;
  /**
   * next() calls waiting, oldest first. An item, the end or the error is
   * handed to them as it comes, so that a next() made later never overtakes one
   * that was already waiting.
   */
  private readers: Reader<T>[] = [];
  /** Called once the consumer stops early (return()). */
  onAbandon: (() => void) | undefined;
  /** Called once iteration is over: the end was read (or return() called), or an error thrown. */
  onFinish: ((failed: boolean) => void) | undefined;

  /** @param tally also counts this queue's queuedBytes (a connection's total over its calls). */
  constructor(private readonly tally?: { bytes: number }) {}

  private finish(failed: boolean): void {
    const f = this.onFinish;
    this.onFinish = undefined;
    f?.(failed);
  }

  /** Queues `item`; `bytes`, its size on the wire, counts in queuedBytes until it is read. */
  push(item: T, bytes?: number): void {
    if (this.ended || this.failed) return;
    this.items.push(item);
    if (bytes !== undefined) {
      this.sizes[this.items.length - 1] = bytes;
      this.queuedBytes += bytes;
      if (this.tally !== undefined) this.tally.bytes += bytes;
    }
    this.wake();
  }

  /** Messages pushed and not read yet. */
  get queued(): number {
    return this.items.length - this.head;
  }

  end(): void {
    this.ended = true;
    this.wake();
  }

  fail(error: unknown): void {
    if (this.ended || this.failed) return;
    this.failed = true;
    this.error = error;
    this.wake();
  }

  /**
   * Fails the queue for a call that is over, and drops the messages not
   * read yet (up to maxQueuedRequestBytes): a reader gets the error at once.
   */
  discard(error: unknown): void {
    this.drop();
    if (!this.failed) {
      this.failed = true;
      this.error = error;
    }
    this.wake();
  }

  private drop(): void {
    if (this.tally !== undefined) this.tally.bytes -= this.queuedBytes;
    this.items = [];
    this.sizes = [];
    this.head = 0;
    this.queuedBytes = 0;
  }

  private wake(): void {
    const readers = this.readers;
    while (readers.length > 0) {
      if (this.head < this.items.length) (readers.shift() as Reader<T>).resolve(this.take());
      else if (this.failed) (readers.shift() as Reader<T>).reject(this.error);
      else if (this.ended) (readers.shift() as Reader<T>).resolve({ done: true, value: undefined });
      else return;
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: (): Promise<IteratorResult<T>> => {
        // Fast path without an async function's extra promise hops.
        if (this.readers.length === 0 && this.head < this.items.length) {
          return Promise.resolve(this.take());
        }
        return this.wait().then(
          (r) => {
            if (r.done === true) this.finish(false);
            return r;
          },
          (error: unknown) => {
            this.finish(true);
            throw error;
          },
        );
      },
      return: (): Promise<IteratorResult<T>> => {
        if (!this.ended && !this.failed) {
          this.ended = true;
          this.onAbandon?.();
        }
        // Nobody reads them now: they no longer count as queued.
        this.drop();
        this.finish(false);
        // next() calls still waiting are answered done, as a finished generator's.
        this.wake();
        return Promise.resolve({ done: true, value: undefined });
      },
    };
  }

  private take(): IteratorResult<T> {
    const value = this.items[this.head] as T;
    this.items[this.head] = undefined as T;
    const bytes = this.sizes[this.head];
    if (bytes !== undefined) {
      this.queuedBytes -= bytes;
      if (this.tally !== undefined) this.tally.bytes -= bytes;
    }
    this.head++;
    // Compaction only frees memory (what is read is the same), so its
    // thresholds are left out of mutation testing.
    // Stryker disable next-line ConditionalExpression,EqualityOperator,LogicalOperator,ArithmeticOperator: memory only
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.sizes = this.sizes.slice(this.head);
      this.head = 0;
    }
    return { done: false, value };
  }

  private wait(): Promise<IteratorResult<T>> {
    if (this.readers.length === 0) {
      if (this.head < this.items.length) return Promise.resolve(this.take());
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- fail()'s error as given
      if (this.failed) return Promise.reject(this.error);
      if (this.ended) return Promise.resolve({ done: true, value: undefined });
    }
    return new Promise((resolve, reject) => this.readers.push({ resolve, reject }));
  }
}

/** A next() call waiting for a MessageQueue's item, end or error. */
interface Reader<T> {
  resolve: (r: IteratorResult<T>) => void;
  reject: (error: unknown) => void;
}

/** Payloads at least this large are written as they are, never copied. */
const COPY_LIMIT = 16 * 1024;
/** Bytes written at once: see push(). */
const BATCH_BYTES = 64 * 1024;
/**
 * The largest buffer of an encoded frame (4 MiB) that a writer keeps, once
 * written, for its next large frame: see large(). Larger frames get a
 * buffer of their own each time, so that no connection holds more.
 */
const SPARE_MAX_BYTES = 4 * 1024 * 1024;
/** A kept buffer unused this long (1 s) is let go: an idle connection holds none. */
const SPARE_IDLE_MS = 1_000;

/**
 * Queues frames and writes everything queued in one tick as one buffer: 64
 * callers whose answers arrived in one read leave in one syscall, and small
 * frames cost no writev bookkeeping. Small frames are assembled in place in
 * a shared 64 KiB buffer (no buffer per frame, no join before the write);
 * large payloads are not copied.
 */
export class FrameWriter {
  /** Buffers waiting for the flush, before the frames in `batch` (large payloads only). */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Where small frames are assembled; [start, used) is not written yet. */
  private batch: Buffer | undefined;
  private start = 0;
  private used = 0;
  private scheduled = false;
  /** The memory of a large frame whose write completed, kept for the next one (see large()). */
  private spare: ArrayBuffer | undefined;
  private spareTimer: NodeJS.Timeout | undefined;
  /** Large frames' buffers in `pending` whose memory goes to `spare` once written. */
  private readonly returnable = new Set<Buffer>();
  /**
   * Whether large frames' memory is kept: on sockets only (TLS ones
   * included), which are done with a buffer when its write's callback
   * comes. Another Duplex may still hold it then (a callback tunnel's
   * stream hands its chunks on after it), so there each frame gets new memory.
   */
  private readonly keeps: boolean;

  constructor(private readonly socket: Duplex) {
    this.keeps = socket instanceof Socket;
    // A closed socket's writer keeps nothing: not its buffer, nor a timer
    // holding the writer (and the connection) for another second.
    if (this.keeps) socket.once("close", () => this.letGo());
  }

  /**
   * A frame whose payload is the message `measured` measured last: a small
   * one written straight into the batch, a large one into one buffer of the
   * frame's size. Unlike frame()'s large payloads, the message's bytes are
   * copied: its bytes fields are the caller's, who may reuse them once the
   * message is handed over. The message is written before anything else,
   * so that if write() throws, no frame or byte of one is queued.
   */
  encoded(type: FrameType, id: number, measured: MeasuredMessage): void {
    const size = measured.size;
    if (size < COPY_LIMIT) {
      const batch = this.room(FRAME_HEADER_BYTES + size);
      const end = measured.write(batch, this.used + FRAME_HEADER_BYTES);
      writeHeader(batch, this.used, size, type, id);
      this.used = end;
    } else {
      // The frames still waiting in the batch (a call's open frame, say) are
      // copied in front of this one: a TLS socket joins the buffers of a
      // writev into one new buffer before encrypting them (a 1 MiB copy and
      // 1 MiB of external memory per call), but encrypts a single buffer
      // as it is.
      const before = this.used - this.start;
      const buf = this.large(before + FRAME_HEADER_BYTES + size);
      measured.write(buf, before + FRAME_HEADER_BYTES);
      if (before > 0) {
        (this.batch as Buffer).copy(buf, 0, this.start, this.used);
        this.start = this.used;
      }
      writeHeader(buf, before, size, type, id);
      this.pending.push(buf);
      this.pendingBytes += buf.length;
      if (this.keeps && buf.buffer.byteLength <= SPARE_MAX_BYTES) this.returnable.add(buf);
    }
    this.queued();
  }

  /**
   * A buffer of `size` bytes for a large encoded frame: a view of the kept
   * one (see `spare`) if it is large enough and not over twice the size,
   * else a new one (never from Buffer's shared pool, so that its memory is
   * the frame's alone). Once written, either is kept for the next if it
   * is at most SPARE_MAX_BYTES (on sockets: see `keeps`): sequential 1 MiB
   * calls then encode into the same memory, instead of a new 1 MiB
   * ArrayBuffer per call, whose fresh pages and external memory cost a
   * 1 MiB echo between two Node processes about a quarter of its time
   * (bench/mib-floor.ts, fill-reuse-write; docs/local-transports.md).
   */
  private large(size: number): Buffer {
    const spare = this.spare;
    if (spare === undefined || spare.byteLength < size || spare.byteLength > 2 * size)
      return Buffer.allocUnsafeSlow(size);
    this.spare = undefined;
    return Buffer.from(spare, 0, size);
  }

  /**
   * Keeps `memory`, whose write completed, for the next large frame: the
   * larger of two, unless the kept one is over twice `memory`'s size (too
   * large for frames like it, see large(): it would be held, unused, as long
   * as they keep coming). Writes failed or cancelled by a destroy() call
   * back before the socket's 'close', which lets go of what they kept.
   */
  private keep(memory: ArrayBuffer): void {
    const spare = this.spare;
    if (
      spare === undefined ||
      memory.byteLength > spare.byteLength ||
      spare.byteLength > 2 * memory.byteLength
    )
      this.spare = memory;
    if (this.spareTimer === undefined) {
      this.spareTimer = setTimeout(() => this.letGo(), SPARE_IDLE_MS);
      this.spareTimer.unref();
    } else this.spareTimer.refresh();
  }

  /** Drops the kept buffer and its idle timer (idle, or the socket closed). */
  private letGo(): void {
    clearTimeout(this.spareTimer);
    this.spare = undefined;
    this.spareTimer = undefined;
  }

  /** The batch, with room for `size` more bytes at `used` (a new one if the current is full). */
  private room(size: number): Buffer {
    let batch = this.batch;
    if (batch === undefined || batch.length - this.used < size) {
      // A full batch is written now (one buffer, not a writev of two
      // batches' ends), and the next frames go into a new batch (the
      // socket may still hold views of the old one).
      if (this.used > this.start) this.flush();
      batch = this.batch = Buffer.allocUnsafe(BATCH_BYTES);
      this.start = this.used = 0;
    }
    return batch;
  }

  frame(type: FrameType, id: number, payload?: Uint8Array): void {
    const length = payload?.byteLength ?? 0;
    if (length >= COPY_LIMIT) {
      this.cutBatch();
      const head = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
      writeHeader(head, 0, length, type, id);
      this.pending.push(
        head,
        Buffer.from((payload as Uint8Array).buffer, (payload as Uint8Array).byteOffset, length),
      );
      this.pendingBytes += FRAME_HEADER_BYTES + length;
    } else {
      const size = FRAME_HEADER_BYTES + length;
      const batch = this.room(size);
      writeHeader(batch, this.used, length, type, id);
      if (payload !== undefined) batch.set(payload, this.used + FRAME_HEADER_BYTES);
      this.used += size;
    }
    this.queued();
  }

  /** A frame was queued: flush now if 64 KiB are waiting, else at the end of the tick. */
  private queued(): void {
    // 64 KiB at a time: a unix socket's kernel buffer takes that at once, so a
    // fast stream keeps producing instead of waiting for 'drain' (256 KiB
    // writes filled the buffer and stalled the producer on every write).
    if (this.pendingBytes + this.used - this.start >= BATCH_BYTES) {
      this.flush();
    } else if (!this.scheduled) {
      this.scheduled = true;
      process.nextTick(this.onTick);
    }
  }

  /** True while the socket's buffer is over its high-water mark. */
  get needDrain(): boolean {
    return this.socket.writableNeedDrain;
  }

  /** Moves the frames assembled in `batch` to `pending`. */
  private cutBatch(): void {
    if (this.used === this.start) return;
    const batch = this.batch as Buffer;
    this.pending.push(batch.subarray(this.start, this.used));
    this.pendingBytes += this.used - this.start;
    this.start = this.used;
  }

  private readonly onTick = (): void => {
    this.scheduled = false;
    this.flush();
  };

  flush(): void {
    this.cutBatch();
    const pending = this.pending;
    if (pending.length === 0) return;
    const socket = this.socket;
    this.pending = [];
    this.pendingBytes = 0;
    if (socket.destroyed || socket.writableEnded) {
      this.returnable.clear();
      return;
    }
    // Stryker disable next-line ConditionalExpression: one write or a corked one sends the same bytes
    if (pending.length === 1) {
      this.write(pending[0] as Buffer);
    } else {
      socket.cork();
      for (const buf of pending) this.write(buf);
      socket.uncork();
    }
  }

  /** Writes `buf`; a large frame's memory goes to `spare` when the socket is done with it. */
  private write(buf: Buffer): void {
    // Small frames' batches (the common case) skip the lookup.
    if (this.returnable.size === 0 || !this.returnable.delete(buf)) {
      this.socket.write(buf);
      return;
    }
    this.socket.write(buf, () => this.keep(buf.buffer as ArrayBuffer));
  }
}

function writeHeader(buf: Buffer, at: number, length: number, type: FrameType, id: number): void {
  buf.writeUInt32BE(length, at);
  buf[at + 4] = type;
  buf.writeUInt32BE(id, at + 5);
}
