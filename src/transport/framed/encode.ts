import { MeasuredMessage } from "../codec/measured-message.js";
import type { FrameType, FrameWriter } from "./frames.js";

/**
 * One side's outgoing messages: measure() (MeasuredMessage, codec/) encodes
 * or, for a flat message, only measures a message and checks its limit,
 * so that headers are sent before it; send() then frames it. One at a
 * time, per connection: nothing may come between the two calls.
 */
export class MessageEncoder extends MeasuredMessage {
  /** Frames the message measured last. */
  send(out: FrameWriter, type: FrameType, id: number): void {
    const bytes = this.bytes;
    if (bytes === undefined) out.encoded(type, id, this);
    else {
      this.forget();
      out.frame(type, id, bytes);
    }
  }
}
