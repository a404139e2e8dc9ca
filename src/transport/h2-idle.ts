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

/**
 * Closes `session` (GOAWAY, open streams may finish) once it has had no
 * open stream for `idleMs`, and destroys it if it is still open
 * GOAWAY_GRACE_MS later (a peer that does not read stalls a graceful close).
 */
export function closeWhenIdle(session: http2.ServerHttp2Session, idleMs: number): void {
  let streams = 0;
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    timer = setTimeout(() => {
      session.close();
      setTimeout(() => session.destroy(), GOAWAY_GRACE_MS).unref();
    }, idleMs).unref();
  };
  session.on("stream", (stream: http2.ServerHttp2Stream) => {
    if (streams++ === 0) clearTimeout(timer);
    stream.once("close", () => {
      if (--streams === 0 && !session.closed) arm();
    });
  });
  session.once("close", () => clearTimeout(timer));
  arm();
}
