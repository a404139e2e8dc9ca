import { noop } from "./call-support.js";

/**
 * Tells an iterator to stop (return(): a generator's `finally` runs)
 * without waiting for it: a handler's output for the servers that pull
 * from it (the framed server's runStream, the lean HTTP/2 stream handler),
 * a request's messages for the host's stream calls (stream-call.ts). A
 * `finally` that never settles must not hold back what comes next, such as
 * the error trailer the caller waits for. An error of return(), thrown or
 * rejected, is dropped, as `for await` drops it for the body's own: the
 * error that made the caller stop is the one that counts.
 */
export function stopIterator(it: AsyncIterator<unknown> | undefined): void {
  try {
    void Promise.resolve(it?.return?.()).catch(noop);
  } catch {
    // A return() that throws at once: nothing more to stop.
  }
}
