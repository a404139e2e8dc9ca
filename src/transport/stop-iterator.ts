/**
 * Tells a handler's output iterator to stop (return(): its `finally` runs)
 * without waiting for it, for the servers that pull from it (the framed
 * server's runStream, the lean HTTP/2 stream handler): a `finally` that
 * never settles must not hold back what the server sends next, the error
 * trailer the caller waits for. An error of return(), thrown or rejected,
 * is dropped, as `for await` drops it for the body's own: the error that
 * made the server stop is the one that counts.
 */
export function stopIterator(it: AsyncIterator<unknown> | undefined): void {
  if (it?.return === undefined) return;
  try {
    void it.return().catch(ignore);
  } catch {
    // A return() that throws at once: nothing more to stop.
  }
}

function ignore(): void {}
