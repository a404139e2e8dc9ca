import type { DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError, type StreamResponse } from "@connectrpc/connect";
import { deadlineTimer } from "../transport/deadline.js";
import { HARD_DEADLINE_MARGIN_MS, type KeptAttempt } from "./attempt.js";

/** Releases the reservation of a stream whose iterator was dropped without finishing. */
const streamRegistry = new FinalizationRegistry<() => void>((release) => release());

/**
 * Holds a started stream's reservation (`release`: its outstanding count
 * on the connection) until the stream is over, however it ends: read to the end
 * or failed, aborted by the caller or the cluster's close, past its
 * deadline (the attempt is then aborted, which closes the HTTP/2 stream),
 * or abandoned (connect-es drops `return()`, so a caller's `break` or a
 * stream never iterated is only seen at the deadline or when the
 * iterator is garbage collected).
 */
export function leaseStream(
  response: StreamResponse<DescMessage, DescMessage>,
  release: () => void,
  kept: KeptAttempt | undefined,
  deadline: number,
  name: string,
  timeout: number,
): StreamResponse<DescMessage, DescMessage> {
  let released = false;
  let timer: NodeJS.Timeout | undefined;
  const end = (): void => {
    if (released) return;
    released = true;
    clearTimeout(timer);
    kept?.signal.removeEventListener("abort", end);
    kept?.unlink();
    streamRegistry.unregister(token);
    release();
  };
  const token = {};
  if (kept !== undefined) {
    if (kept.signal.aborted) end();
    else kept.signal.addEventListener("abort", end, { once: true });
    timer = deadlineTimer(
      () => {
        kept.abort(
          new ConnectError(`${name}: deadline of ${timeout} ms exceeded`, Code.DeadlineExceeded),
        );
        end();
      },
      Math.max(0, deadline - Date.now()) + HARD_DEADLINE_MARGIN_MS,
    );
    timer?.unref();
  }
  const tracked = trackStream(response, end);
  streamRegistry.register(tracked.message, end, token);
  return tracked;
}

/** Calls `done` once the stream's responses end, however they end. */
function trackStream(
  response: StreamResponse<DescMessage, DescMessage>,
  done: () => void,
): StreamResponse<DescMessage, DescMessage> {
  const messages = response.message;
  return {
    ...response,
    message: {
      async *[Symbol.asyncIterator]() {
        try {
          yield* messages;
        } finally {
          done();
        }
      },
    },
  };
}
