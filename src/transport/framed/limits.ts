import { Code, ConnectError } from "@connectrpc/connect";
import { DEFAULT_MAX_FRAME_BYTES } from "./frames.js";

/**
 * The message size limits of a framed server. A message frame can never be
 * larger than the frame limit (256 MiB), so both limits are capped by it:
 * a larger request is refused with ResourceExhausted instead of breaking the
 * connection, and a larger response is refused before it is sent. The
 * errors are worded as connect-node's, so a call fails the same way over
 * HTTP, in process and over the framed transport.
 */
export class MessageLimits {
  readonly readMaxBytes: number;
  readonly writeMaxBytes: number;

  constructor(readMaxBytes?: number, writeMaxBytes?: number) {
    this.readMaxBytes = Math.min(readMaxBytes ?? DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_FRAME_BYTES);
    this.writeMaxBytes = Math.min(
      writeMaxBytes ?? DEFAULT_MAX_FRAME_BYTES,
      DEFAULT_MAX_FRAME_BYTES,
    );
  }

  /**
   * The error for a request message over readMaxBytes. Worded as connect-node's,
   * which refuses before it knows the size, so the size is not named.
   */
  tooLargeToRead(): ConnectError {
    return new ConnectError(
      `message size is larger than configured readMaxBytes ${this.readMaxBytes}`,
      Code.ResourceExhausted,
    );
  }

  /** Throws if a response message of `size` bytes is over the limit. */
  assertWrite(size: number): void {
    if (size > this.writeMaxBytes) {
      throw new ConnectError(
        `message size ${size} is larger than configured writeMaxBytes ${this.writeMaxBytes}`,
        Code.ResourceExhausted,
      );
    }
  }
}
