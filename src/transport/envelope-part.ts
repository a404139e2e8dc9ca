import { GrowingBytes } from "./growing-bytes.js";
import { announcedSize } from "./unary-body.js";

/**
 * An envelope begun in one chunk of a body that goes on in later ones,
 * kept alike by EnvelopeSplitter (the lean paths, which copy each message
 * out, and through it EnvelopeBody, a gRPC unary answer's) and
 * wholeEnvelopes (connect-es' handlers, given whole envelopes):
 * its head (5 bytes) until all of it came, then the whole envelope, grown
 * as its bytes arrive (GrowingBytes), never sized by the peer's
 * announcement alone.
 *
 * A head that announces more than readMaxBytes is not grown: the part
 * stays that head (`over`), for the caller to refuse it (EnvelopeSplitter
 * throws connect-es' error) or to pass it on (wholeEnvelopes, for
 * connect-es to refuse).
 */
export class EnvelopePart {
  private part: GrowingBytes;
  /** False while the part is its head only (fewer than 5 bytes of it came when it began). */
  private sized: boolean;
  /** True once the head announced more than readMaxBytes: the part is then that head. */
  over = false;

  /** `start`: the envelope's first bytes; `size`: its payload's size, when its head is in `start`. */
  constructor(start: Uint8Array, size?: number) {
    this.sized = size !== undefined;
    this.part = new GrowingBytes(5 + (size ?? 0));
    this.part.fill(start, 0);
  }

  /** Takes what the envelope lacks from the start of `chunk`; returns how many bytes it took. */
  fill(chunk: Uint8Array, readMaxBytes: number): number {
    let part = this.part;
    let at = 0;
    if (!this.sized) {
      at = part.fill(chunk, 0);
      if (!part.whole) return at;
      const head = part.bytes();
      const size = announcedSize(head, 0);
      if (size > readMaxBytes) {
        this.over = true;
        return at;
      }
      this.sized = true;
      part = this.part = new GrowingBytes(5 + size);
      part.fill(head, 0);
    }
    return at + part.fill(chunk, at);
  }

  /** True once all of the envelope came (never for a head over the limit). */
  get whole(): boolean {
    return this.sized && this.part.whole;
  }

  /** The whole envelope (its own buffer) once `whole`; the head when `over`. */
  bytes(): Uint8Array {
    return this.part.bytes();
  }
}
