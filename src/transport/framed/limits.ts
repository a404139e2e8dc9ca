import { Code, ConnectError } from "@connectrpc/connect";
import { DEFAULT_MAX_FRAME_BYTES } from "./frames.js";
import { tooLargeToWrite } from "../codec/codec-errors.js";

/**
 * Default of FramedServerOptions.maxQueuedRequestBytes: 16 MiB of request
 * messages that one call's handler has not read yet. A framed connection
 * has no per-call flow control (HTTP/2's window), and pausing the socket
 * would stall every call on it, the host's callback tunnel included, so a
 * handler that never reads its request stream would let the client queue
 * without bound. The first unread message always fits, so any message up to
 * readMaxBytes can be sent to a handler that reads.
 */
export const DEFAULT_MAX_QUEUED_REQUEST_BYTES = 16 * 1024 * 1024;

/**
 * Default of FramedServerOptions.maxConnectionQueuedRequestBytes: 64 MiB of
 * request messages unread by the handlers of all calls on one connection.
 * Without it, maxQueuedRequestBytes per call times 4096 calls would let one
 * client queue 64 GiB. The first unread message on a connection always fits.
 */
export const DEFAULT_MAX_CONNECTION_QUEUED_REQUEST_BYTES = 64 * 1024 * 1024;

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
  /** Bytes of request messages one call may hold unread (see DEFAULT_MAX_QUEUED_REQUEST_BYTES). */
  readonly maxQueuedBytes: number;

  /** Bytes of request messages all calls on one connection may hold unread. */
  readonly maxConnectionQueuedBytes: number;

  constructor(
    readMaxBytes?: number,
    writeMaxBytes?: number,
    maxQueuedBytes?: number,
    maxConnectionQueuedBytes?: number,
  ) {
    this.maxQueuedBytes = maxQueuedBytes ?? DEFAULT_MAX_QUEUED_REQUEST_BYTES;
    this.maxConnectionQueuedBytes =
      maxConnectionQueuedBytes ?? DEFAULT_MAX_CONNECTION_QUEUED_REQUEST_BYTES;
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

  /** The error for a response message of `size` bytes, over writeMaxBytes. */
  tooLargeToWrite(size: number): ConnectError {
    return tooLargeToWrite(size, this.writeMaxBytes);
  }

  /**
   * Whether one more request message of `size` bytes may join `queuedBytes`
   * unread in a call's queue holding `queued` messages: the first always may.
   */
  mayQueue(queued: number, queuedBytes: number, size: number): boolean {
    return queued === 0 || queuedBytes + size <= this.maxQueuedBytes;
  }

  /** Whether one more request message of `size` bytes may join the `queuedBytes` unread on its connection. */
  mayQueueOnConnection(queuedBytes: number, size: number): boolean {
    return queuedBytes === 0 || queuedBytes + size <= this.maxConnectionQueuedBytes;
  }

  /** The error of a call whose message would take its connection over maxConnectionQueuedBytes. */
  connectionQueueFull(): ConnectError {
    return new ConnectError(
      `request messages not yet read by the handlers of this connection's calls exceed ` +
        `maxConnectionQueuedRequestBytes ${this.maxConnectionQueuedBytes} (the handlers do not ` +
        `read their request streams as fast as they are sent)`,
      Code.ResourceExhausted,
    );
  }

  /** The error of a call whose handler left more than maxQueuedBytes of requests unread. */
  queueFull(): ConnectError {
    return new ConnectError(
      `request messages not yet read by the handler exceed maxQueuedRequestBytes ` +
        `${this.maxQueuedBytes} (the handler does not read its request stream as fast as it is sent)`,
      Code.ResourceExhausted,
    );
  }
}
