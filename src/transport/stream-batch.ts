import type * as http2 from "node:http2";
import { drained } from "./drained.js";

/** Bytes of one shared batch buffer: about 3,100 envelopes of a 16-byte message. */
const BATCH_BYTES = 64 * 1024;

/** An envelope at least this large gets a buffer of its own rather than a batch's room. */
const OWN_BUFFER_BYTES = 16 * 1024;

/**
 * A region of a shared batch smaller than 1/COPY_RATIO of it is copied
 * before it is written, so that what a stream has queued keeps at most
 * COPY_RATIO times its bytes alive.
 */
const COPY_RATIO = 8;

/**
 * The batch buffer every stream appends to, and how much of it is used.
 * Shared by all streams of the process (one thread): a region once handed
 * to stream.write() is never written again (node:http2 keeps a view of it
 * until it is sent), so a full batch is replaced, not reused.
 */
let shared = Buffer.allocUnsafe(0);
let sharedUsed = 0;

/**
 * The response body of one lean server stream (stream-handler.ts) on its
 * way to an HTTP/2 stream: envelopes are written into the shared batch and
 * go out with one `stream.write` when the next one does not fit, when
 * another stream appended in between, or at the end of the tick
 * (process.nextTick, as the framed transport's FrameWriter). A handler
 * that yields as fast as it can so fills 64 KiB per write; one that awaits
 * I/O between messages ends the tick after each, and each goes out at once.
 */
export class StreamBatch {
  private buf: Buffer = shared;
  /** The region of `buf` not written yet: [start, end). */
  private start = 0;
  private end = 0;
  private scheduled = false;

  constructor(private readonly stream: http2.ServerHttp2Stream) {}

  /**
   * Room for an envelope of `size` bytes (5-byte prefix included): the
   * buffer, and where in it to write. The caller writes exactly `size`
   * bytes there before anything else is appended, to any stream.
   */
  room(size: number): { buf: Buffer; at: number } {
    if (size >= OWN_BUFFER_BYTES) {
      this.flush();
      const own = Buffer.allocUnsafe(size);
      this.buf = own;
      this.start = 0;
      this.end = size;
      this.schedule();
      return { buf: own, at: 0 };
    }
    // Another stream appended to the shared batch since: what we have goes out first.
    if (this.end > this.start && (this.buf !== shared || this.end !== sharedUsed)) this.flush();
    if (shared.length - sharedUsed < size) {
      this.flush();
      shared = Buffer.allocUnsafe(BATCH_BYTES);
      sharedUsed = 0;
    }
    if (this.end === this.start) {
      this.buf = shared;
      this.start = this.end = sharedUsed;
    }
    const at = sharedUsed;
    sharedUsed += size;
    this.end = sharedUsed;
    this.schedule();
    return { buf: shared, at };
  }

  /** Appends a whole envelope: flags, big-endian length, `data`. */
  envelope(flags: number, data: Uint8Array): void {
    const { buf, at } = this.room(5 + data.byteLength);
    buf[at] = flags;
    buf.writeUInt32BE(data.byteLength, at + 1);
    buf.set(data, at + 5);
  }

  /** Writes what is waiting, if anything; returns false if the stream asks for "drain". */
  flush(): boolean {
    if (this.end === this.start) return true;
    let chunk = this.buf.subarray(this.start, this.end);
    this.start = this.end;
    if (this.stream.destroyed || this.stream.writableEnded) return false;
    // node:http2 keeps the chunk until it is sent, and a view keeps its whole
    // buffer alive: a stalled stream whose small writes were cut from many
    // batches would pin 64 KiB for each (thousands of times the bytes it has
    // queued). A small region goes out as a copy of its own.
    if (chunk.length * COPY_RATIO < this.buf.length) {
      const copy = Buffer.allocUnsafeSlow(chunk.length);
      chunk.copy(copy);
      chunk = copy;
    }
    return this.stream.write(chunk);
  }

  /** Ends the stream with what is waiting as its last DATA. */
  close(): void {
    this.flush();
    if (!this.stream.destroyed && !this.stream.writableEnded) this.stream.end();
  }

  /**
   * Resolves once the stream can take more: at once if it does not ask for
   * "drain" (or is closed), else on "drain" or "close", whichever first (a
   * reset stream never drains). Never waits for an event that has already
   * happened: the state is read and the listeners added in one turn.
   */
  drained(): Promise<void> | undefined {
    const stream = this.stream;
    if (!stream.writableNeedDrain || stream.destroyed || stream.closed) return undefined;
    return drained(stream).then(() => undefined);
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    process.nextTick(flushBatch, this);
  }

  /** The end of the tick: what is waiting goes out (nothing, if it went already). */
  tick(): void {
    this.scheduled = false;
    this.flush();
  }
}

function flushBatch(batch: StreamBatch): void {
  batch.tick();
}
