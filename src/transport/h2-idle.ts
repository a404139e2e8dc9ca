import type * as http2 from "node:http2";

/**
 * How long a server's HTTP/2 session may stay without an open stream before
 * it is closed: 5 minutes. Without it, a client that opens a session and
 * goes silent holds a socket and its buffers forever. A well-behaved client
 * (ours, grpc-go, connect-go) just opens a new session on its next call.
 */
export const SESSION_IDLE_TIMEOUT_MS = 5 * 60_000;

/** How long a session told to go away may take to finish before it is destroyed. */
const GOAWAY_GRACE_MS = 10_000;

/** Where a server session keeps its open streams, so that closeWhenIdle counts them once. */
const RECORD = Symbol("connect-plugin.session-streams");

/** A server session as this module marks it. */
type Recorded = http2.Http2Session & { [RECORD]?: OpenStreams };

/** A session's open streams (node:http2 lists none), added at its "stream" event, removed at the stream's "close". */
class OpenStreams extends Set<http2.ServerHttp2Stream> {
  /** When the set last became empty (when counting began, at first). */
  idleSince = Date.now();
  /**
   * The "close" listener of every stream of the session: one function per
   * session, not a closure and once() wrapper per stream (about 250 bytes
   * a call); a stream closes once, so on().
   */
  readonly closed: (this: http2.ServerHttp2Stream) => void;

  constructor() {
    super();
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the listener's `this` is the stream
    const open = this;
    this.closed = function (this: http2.ServerHttp2Stream): void {
      open.delete(this);
      if (open.size === 0) open.idleSince = Date.now();
    };
  }
}

/**
 * Closes `session` (GOAWAY, open streams may finish) once it has had no
 * open stream for `idleMs`, and destroys it if it is still open
 * GOAWAY_GRACE_MS later (a peer that does not read stalls a graceful close).
 * Returns the session's open streams as it counts them (the tests check
 * that the set empties). One timer per session, not per call: a stream's
 * start and end only count, and the timer, when it fires, waits again for
 * what is left. Call it at the server's "session" event, before the
 * session has a stream; a second call adds a timer, not a second count.
 */
export function closeWhenIdle(
  session: http2.ServerHttp2Session,
  idleMs: number,
): ReadonlySet<http2.ServerHttp2Stream> {
  let open = (session as Recorded)[RECORD];
  if (open === undefined) {
    const streams = ((session as Recorded)[RECORD] = open = new OpenStreams());
    session.on("stream", (stream: http2.ServerHttp2Stream) => {
      streams.add(stream);
      stream.on("close", streams.closed);
    });
  }
  const check = (): void => {
    if (session.closed || session.destroyed) return;
    const left = open.size > 0 ? idleMs : open.idleSince + idleMs - Date.now();
    if (left > 0) {
      timer = setTimeout(check, left).unref();
      return;
    }
    session.close();
    // Kept in `timer`, so that a session that finishes in time clears it.
    timer = setTimeout(() => session.destroy(), GOAWAY_GRACE_MS).unref();
  };
  let timer = setTimeout(check, idleMs).unref();
  session.once("close", () => clearTimeout(timer));
  return open;
}
