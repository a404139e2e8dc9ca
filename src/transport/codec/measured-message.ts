import { toBinary, type BinaryWriteOptions, type DescMessage } from "@bufbuild/protobuf";
import { serializeError, tooLargeToWrite } from "./codec-errors.js";
import { FlatEncoder } from "./flat-encoder.js";

/**
 * One outgoing message, measured before it is written, the way every
 * writer here encodes: the lean HTTP/2 bodies (encode-body.ts), the lean
 * server stream's envelopes (stream-handler.ts) and the framed transport's
 * frames (framed/encode.ts). A flat message (flat-schema.ts) is measured by
 * FlatEncoder and later written straight into the writer's buffer; any
 * other goes through toBinary now. Both fail with connect-es' errors:
 * "serialize binary: ..." (Internal) for a message that cannot be encoded,
 * ResourceExhausted (or the writer's own error) for one over the limit.
 *
 * One at a time: measure() then write() (or forget()), with nothing in
 * between, because a FlatEncoder keeps the values it measured. A writer
 * keeps one MeasuredMessage and reuses it: no object per message.
 */
export class MeasuredMessage {
  /** The encoded size of the message measured last. */
  size = 0;
  /** toBinary's bytes of the message measured last, unless FlatEncoder measured it. */
  bytes: Uint8Array | undefined = undefined;
  private encoder: FlatEncoder | undefined = undefined;
  private message: unknown = undefined;

  /**
   * Measures `message` (encodes it, if it is not flat) and returns its size.
   * Throws serializeError's error, or for a message over `maxBytes`
   * `tooLarge(size)` (default connect-es' tooLargeToWrite) after forgetting
   * it, so that a refused message, which may be large, is not kept.
   */
  measure(
    desc: DescMessage,
    message: unknown,
    maxBytes: number,
    options?: Partial<BinaryWriteOptions>,
    tooLarge?: (size: number) => Error,
  ): number {
    const encoder = FlatEncoder.of(desc);
    let size = -1;
    try {
      if (encoder !== undefined) size = encoder.measure(message);
      if (size >= 0) {
        this.encoder = encoder;
        this.message = message;
        this.bytes = undefined;
      } else {
        this.encoder = undefined;
        this.message = undefined;
        this.bytes = toBinary(desc, message as never, options);
        size = this.bytes.byteLength;
      }
    } catch (e) {
      // A getter of the message threw (toBinary would have thrown the same,
      // read once), or toBinary refused the message.
      this.forget();
      throw serializeError(e);
    }
    this.size = size;
    if (size > maxBytes) {
      this.forget();
      throw tooLarge === undefined ? tooLargeToWrite(size, maxBytes) : tooLarge(size);
    }
    return size;
  }

  /**
   * Writes the message measured last into `buf` at `at` (room for `size`
   * bytes) and returns where it ends. Every byte is copied: a caller may
   * reuse its buffers once it has handed a message over. Throws Internal
   * if FlatEncoder wrote other than it measured (not reached: no byte a
   * writer reserved may go out unwritten unnoticed).
   */
  write(buf: Buffer, at: number): number {
    const { encoder, message, bytes, size } = this;
    this.encoder = this.message = this.bytes = undefined;
    if (encoder === undefined) {
      buf.set(bytes as Uint8Array, at);
      return at + size;
    }
    const end = encoder.write(message, buf, at);
    if (end !== at + size) {
      throw serializeError(new Error(`wrote ${end - at} bytes of ${size} measured`));
    }
    return end;
  }

  /**
   * The message measured last as a buffer of its own, after `prefix` bytes
   * left for the caller to fill in (from node's pool: every other byte is
   * written): toBinary's bytes as they are when there is no prefix.
   */
  take(prefix = 0): Uint8Array {
    const bytes = this.bytes;
    if (bytes !== undefined && prefix === 0) {
      this.forget();
      return bytes;
    }
    const out = Buffer.allocUnsafe(prefix + this.size);
    this.write(out, prefix);
    return out;
  }

  /** Forgets the message measured last, which will not be written. */
  forget(): void {
    this.encoder?.clear();
    this.encoder = this.message = this.bytes = undefined;
  }
}
