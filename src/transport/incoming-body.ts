import type { Readable } from "node:stream";

/**
 * A body arriving on a Node stream (a response for our clients, a request
 * for our server), as the async iterable connect-es reads, fed by the
 * stream's "data" and "end" events. Lighter than a Readable's own async
 * iterator (no promise per event, no stream.finished machinery), which is
 * measurable on small calls. Pauses the stream while chunks are waiting to
 * be read, so a slow reader holds back the sender (HTTP/2 flow control).
 */
export class IncomingBody implements AsyncIterable<Uint8Array>, AsyncIterator<Uint8Array> {
  private readonly queue: Uint8Array[] = [];
  private ended = false;
  private error: unknown;
  private waiting:
    { resolve: (r: IteratorResult<Uint8Array>) => void; reject: (e: unknown) => void } | undefined;

  /**
   * @param cut the error the reader sees when the stream closes before its
   *   end (the peer reset it, or the connection broke)
   * @param abandon called when the reader stops before the end (a client
   *   resets its stream; a server still answers)
   * @param incomplete asked at "end": node:http2 ends a stream's readable
   *   side when the stream is reset or its session breaks, so an end is not
   *   always the body's end; true makes the reader see `cut()` instead (a
   *   truncated message would otherwise read as a protocol error)
   */
  constructor(
    private readonly stream: Readable,
    cut: () => unknown,
    private readonly abandon?: () => void,
    incomplete?: () => boolean,
  ) {
    stream.on("data", (chunk: Uint8Array) => {
      const w = this.waiting;
      if (w !== undefined) {
        this.waiting = undefined;
        w.resolve({ done: false, value: chunk });
        return;
      }
      this.queue.push(chunk);
      stream.pause();
    });
    stream.once("end", () => (incomplete?.() === true ? this.fail(cut()) : this.close()));
    stream.once("close", () => this.fail(cut()));
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this;
  }

  next(): Promise<IteratorResult<Uint8Array>> {
    const chunk = this.queue.shift();
    if (chunk !== undefined) {
      if (this.queue.length === 0 && !this.ended) this.stream.resume();
      return Promise.resolve({ done: false, value: chunk });
    }
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the failure as it was given (a ConnectError)
    if (this.error !== undefined) return Promise.reject(this.error);
    if (this.ended) return Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
  }

  /** The reader gave up: the rest is discarded (see `abandon`). */
  return(): Promise<IteratorResult<Uint8Array>> {
    this.discard();
    return Promise.resolve({ done: true, value: undefined });
  }

  /** The reader failed (connect-es' pipes call this): as return(), then `error` is rethrown. */
  throw(error?: unknown): Promise<IteratorResult<Uint8Array>> {
    this.discard();
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- rethrows what the reader threw
    return Promise.reject(error);
  }

  private discard(): void {
    if (this.ended && this.queue.length === 0) return;
    this.ended = true;
    this.queue.length = 0;
    this.stream.resume();
    this.abandon?.();
  }

  /** No more data: the reader sees the end once the queue is empty. */
  close(): void {
    if (this.ended || this.error !== undefined) return;
    this.ended = true;
    const w = this.waiting;
    this.waiting = undefined;
    w?.resolve({ done: true, value: undefined });
  }

  /** The reader sees `error` once the queued data is read. */
  fail(error: unknown): void {
    if (this.ended || this.error !== undefined) return;
    this.error = error;
    const w = this.waiting;
    this.waiting = undefined;
    w?.reject(error);
  }
}
