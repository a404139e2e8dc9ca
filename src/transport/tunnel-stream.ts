import { Duplex } from "node:stream";

/**
 * A byte stream carried by the messages of one bidi-streaming call (a
 * callback tunnel): bytes written to it come out of outgoing() as chunks to
 * send, and chunks that arrive are handed to deliver(), to be read. The
 * framed protocol runs on it as on a socket. Destroying it ends outgoing().
 *
 * A write completes once outgoing() has taken its chunk, so a slow peer
 * pushes back on the writer (the framed writer waits for "drain") instead of
 * piling bytes up here.
 */
export class TunnelStream extends Duplex {
  private readonly queue: Array<{ chunk: Buffer; done: (error?: Error | null) => void }> = [];
  private wake: (() => void) | undefined;
  private finished = false;

  constructor() {
    super({ allowHalfOpen: false });
  }

  /** Incoming bytes are pushed as they arrive (deliver), not pulled. */
  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void) {
    this.queue.push({ chunk, done });
    this.wakeUp();
  }

  override _final(done: (error?: Error | null) => void): void {
    this.finished = true;
    this.wakeUp();
    done();
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    this.finished = true;
    this.queue.length = 0;
    this.wakeUp();
    done(error);
  }

  /** Hands bytes that arrived to the reader. */
  deliver(data: Uint8Array): void {
    if (data.byteLength > 0 && !this.destroyed) {
      this.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    }
  }

  /** The bytes written, chunk by chunk; ends when the stream ends or is destroyed. */
  async *outgoing(): AsyncGenerator<Uint8Array> {
    for (;;) {
      const next = this.queue.shift();
      if (next !== undefined) {
        next.done();
        yield next.chunk;
        continue;
      }
      if (this.finished) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
