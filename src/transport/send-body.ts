import type { Writable } from "node:stream";
import { drained } from "./drained.js";
import { errorFromNode } from "./node-errors.js";

/**
 * Writes a request body to a stream and ends it, waiting for "drain" only
 * when the stream asks for it. When the stream ends first (the server
 * answered early, or the call failed), the body's producer is stopped with
 * the stream's error, so a client stream's send() fails instead of
 * hanging; the call's outcome is decided by the response side. `fail` is
 * called only when the producer itself fails.
 */
export function sendBody(
  body: AsyncIterable<Uint8Array> | undefined,
  to: Writable,
  fail: (reason: unknown) => void,
): void {
  if (body === undefined) {
    to.end();
    return;
  }
  const it = body[Symbol.asyncIterator]();
  void (async () => {
    for (;;) {
      let r: IteratorResult<Uint8Array>;
      try {
        r = await it.next();
      } catch (e) {
        fail(e);
        return;
      }
      if (r.done === true) break;
      if (to.destroyed || to.writableEnded || (!to.write(r.value) && !(await drained(to)))) {
        const reason = to.errored ?? new Error("the stream closed before the request was sent");
        void it.throw?.(errorFromNode(reason)).catch(() => {});
        return;
      }
    }
    if (!to.destroyed && !to.writableEnded) to.end();
  })();
}
