/**
 * Waiting until a writable stream can take more, for every writer of the
 * transports: on "drain", or on "close" (a destroyed or reset stream never
 * drains). All waiters on one stream share one promise and one pair of
 * listeners: a connection with many calls blocked on it (12 callers sending
 * 1 MiB each) adds two listeners, not two per call, which made node print
 * MaxListenersExceededWarning past ten.
 */
import type { Writable } from "node:stream";

const waiting = new WeakMap<Writable, Promise<boolean>>();

/**
 * Resolves true on "drain", false once the stream is closed (at once if it
 * is destroyed or closed already: its "close" may have passed).
 */
export function drained(stream: Writable): Promise<boolean> {
  if (stream.destroyed || stream.closed) return Promise.resolve(false);
  let pending = waiting.get(stream);
  if (pending === undefined) {
    pending = new Promise<boolean>((resolve) => {
      const onDrain = (): void => {
        stream.off("close", onClose);
        waiting.delete(stream);
        resolve(true);
      };
      const onClose = (): void => {
        stream.off("drain", onDrain);
        waiting.delete(stream);
        resolve(false);
      };
      stream.once("drain", onDrain);
      stream.once("close", onClose);
    });
    waiting.set(stream, pending);
  }
  return pending;
}
