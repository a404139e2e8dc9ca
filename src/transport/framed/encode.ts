import { toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { serializeError } from "../codec/codec-errors.js";
import { FlatEncoder } from "../codec/flat-encoder.js";
import type { FrameType, FrameWriter } from "./frames.js";

/**
 * One side's outgoing messages: prepare() encodes (or, for a flat message,
 * only measures) a message and gives its size, so that limits are checked
 * and headers sent before it; send() then frames it. One at a time, per
 * connection: nothing may come between the two calls.
 */
export class MessageEncoder {
  private encoder: FlatEncoder | undefined;
  private message: unknown;
  private size = 0;
  private bytes: Uint8Array | undefined;

  /**
   * The encoded size of `message`; throws connect-es' "serialize binary"
   * error (Internal) for a message it cannot encode, as the HTTP paths do.
   */
  prepare(schema: DescMessage, message: unknown): number {
    try {
      return this.encode(schema, message);
    } catch (e) {
      this.discard();
      throw serializeError(e);
    }
  }

  private encode(schema: DescMessage, message: unknown): number {
    const encoder = FlatEncoder.of(schema);
    const size = encoder === undefined ? -1 : encoder.measure(message);
    if (size >= 0) {
      this.encoder = encoder;
      this.message = message;
      this.size = size;
      this.bytes = undefined;
      return size;
    }
    this.encoder = undefined;
    this.message = undefined;
    this.bytes = toBinary(schema, message as MessageShape<DescMessage>);
    return this.bytes.length;
  }

  /**
   * prepare(), and for a message over `maxBytes` throws `tooLarge(size)`
   * after forgetting it: a refused message, which may be large, is not kept
   * until the next one.
   */
  prepareWithin(
    schema: DescMessage,
    message: unknown,
    maxBytes: number,
    tooLarge: (size: number) => Error,
  ): void {
    const size = this.prepare(schema, message);
    if (size > maxBytes) {
      this.discard();
      throw tooLarge(size);
    }
  }

  /** Forgets the message prepared last, which will not be sent (it is over a size limit). */
  private discard(): void {
    this.encoder?.clear();
    this.encoder = undefined;
    this.message = undefined;
    this.bytes = undefined;
  }

  /** Frames the message prepared last. */
  send(out: FrameWriter, type: FrameType, id: number): void {
    const encoder = this.encoder;
    if (encoder !== undefined) out.encoded(type, id, encoder, this.message, this.size);
    else out.frame(type, id, this.bytes);
    this.message = undefined;
    this.bytes = undefined;
  }
}
