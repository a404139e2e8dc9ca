import type { ConnectError } from "@connectrpc/connect";
import { errorFromNode } from "./node-errors.js";

/**
 * The one outcome of an HTTP client call (node:http or node:http2): its
 * promise settles once, with the response or with the first failure (the
 * caller's abort, a stream error, a reset); a failure after that goes to
 * `late` (the body a reader is reading). Once the whole response is in
 * (`finished`), later failures are ignored: the caller's signal fires when a
 * call completes, and resetting a stream the server has closed counts as an
 * invalid frame (a peer ends the session after 1,000 of them).
 */
export class CallOutcome {
  /** The call's promise was settled. */
  settled = false;
  /** The whole response is in. */
  finished = false;

  constructor(
    protected readonly rejectWith: (error: ConnectError) => void,
    /** Stops the request on a failure (resets the stream, destroys the request). */
    private readonly onStop?: (error: ConnectError) => void,
    /** Where a failure after settling goes. */
    private readonly late?: (error: ConnectError) => void,
  ) {}

  /** Stops the request on a failure: `onStop`, or a subclass's own (no closure per call). */
  protected stop(error: ConnectError): void {
    this.onStop?.(error);
  }

  /** Settles the call with `error`: `rejectWith`, or a subclass's own end. */
  protected rejected(error: ConnectError): void {
    this.rejectWith(error);
  }

  /** Marks the call settled; false if it already was (then the caller drops its result). */
  settle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    return true;
  }

  /** Fails the call with `reason` (as a ConnectError, see errorFromNode), unless it finished. */
  fail(reason: unknown): void {
    if (this.finished) return;
    const error = errorFromNode(reason);
    if (this.settle()) this.rejected(error);
    else this.late?.(error);
    this.stop(error);
  }
}
