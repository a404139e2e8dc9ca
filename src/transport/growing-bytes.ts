/**
 * Bytes allocated for a message before its bytes arrive (64 KiB). An
 * envelope's length prefix is the peer's word: trusting it up to
 * readMaxBytes (default 4 GiB) let a broken or hostile server that
 * announced 2 GiB make the client allocate 2 GiB for a few bytes. A
 * message up to this size still gets its one buffer at once (copied into
 * once); a larger one grows with what arrives.
 */
export const UPFRONT_BYTES = 64 * 1024;

/**
 * One message of a known (announced) `length`, filled as its chunks
 * arrive: the buffer starts at min(length, UPFRONT_BYTES) and doubles
 * (never past `length`) when the bytes need it, so the memory held is at
 * most twice the bytes received, and a large message is copied about twice
 * in all instead of once.
 */
export class GrowingBytes {
  private buf: Uint8Array;
  /** Bytes filled so far. */
  filled = 0;

  constructor(readonly length: number) {
    this.buf = new Uint8Array(Math.min(length, UPFRONT_BYTES));
  }

  /** Copies in up to the bytes still missing from `chunk` at `start`; returns how many it took. */
  fill(chunk: Uint8Array, start: number): number {
    const take = Math.min(this.length - this.filled, chunk.length - start);
    const need = this.filled + take;
    if (need > this.buf.length) {
      const grown = new Uint8Array(Math.min(this.length, Math.max(need, this.buf.length * 2)));
      grown.set(this.buf.subarray(0, this.filled));
      this.buf = grown;
    }
    copyInto(this.buf, this.filled, chunk, start, take);
    this.filled = need;
    return take;
  }

  /** True once all `length` bytes are in. */
  get whole(): boolean {
    return this.filled === this.length;
  }

  /** The message: its own buffer, exactly `length` bytes once whole. */
  bytes(): Uint8Array {
    return this.buf;
  }
}

/**
 * Copies `length` bytes of `from` (at `start`) into `to` (at `at`): a loop
 * for the small bodies of most calls, where `set(subarray())` would make a
 * view object per copy. The copy is what keeps parsed bytes fields plain
 * Uint8Arrays that hold no more memory than theirs, never views of Node's
 * chunks.
 */
export function copyInto(
  to: Uint8Array,
  at: number,
  from: Uint8Array,
  start: number,
  length: number,
): void {
  if (length > 64) {
    to.set(from.subarray(start, start + length), at);
    return;
  }
  for (let i = 0; i < length; i++) to[at + i] = from[start + i] as number;
}
