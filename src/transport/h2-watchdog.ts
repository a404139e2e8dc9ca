import type * as http2 from "node:http2";

/**
 * How often a server's HTTP/2 session is asked for a PING ACK: every 10 s,
 * counted from the last ACK.
 */
export const H2_PING_INTERVAL_MS = 10_000;

/** How long the ACK may take before the session is destroyed: 10 s. */
export const H2_PING_TIMEOUT_MS = 10_000;

export interface PingWatchOptions {
  /** Default H2_PING_INTERVAL_MS (10 s). */
  readonly intervalMs?: number;
  /** Default H2_PING_TIMEOUT_MS (10 s). */
  readonly timeoutMs?: number;
}

/**
 * Destroys a server's HTTP/2 session that no longer answers a PING, and tells
 * `cutOff` why. So a stuck session is gone within interval + timeout (20 s by
 * default), on every listener, while node:http2 reads the socket itself.
 * Not covered: a session the peer itself closed with GOAWAY while one of its
 * streams is still open (node:http2 then cancels every PING, so the watch
 * stops); a healthy client shutting down gracefully looks the same. Such a
 * stream lasts until its call ends or the plugin closes.
 *
 * Why a PING: node:http2 (Node 20) answers a peer's protocol error (a corrupt
 * HPACK block, DATA on an idle stream, a frame over the size limit) with
 * GOAWAY, then stops reading the connection and emits nothing: no "error",
 * "frameError" or "goaway" event, no change in session.state. The session,
 * its socket and any open call stayed for ever (found by fuzzing). Such a
 * session never sends the PING (it stays in the outbound queue) and never
 * reads an ACK, so its callback never runs. A peer that stops in the middle
 * of a frame (slowloris) cannot send an ACK either. A healthy peer, idle or
 * busy, answers at once: every HTTP/2 stack does (node:http2, grpc-go,
 * Go's net/http2); grpc-go's ping policing is about pings a server receives.
 *
 * A verdict waits one turn of the event loop after its timer: after a long
 * synchronous handler, an ACK that has arrived is read before the session
 * is judged.
 */
export function watchPings(
  session: http2.ServerHttp2Session,
  options: PingWatchOptions,
  cutOff: (why: string) => void,
): void {
  const intervalMs = options.intervalMs ?? H2_PING_INTERVAL_MS;
  const timeoutMs = options.timeoutMs ?? H2_PING_TIMEOUT_MS;
  let timer: NodeJS.Timeout | undefined;
  const probe = (): void => {
    if (session.destroyed) return;
    let answered = false;
    session.ping((error) => {
      answered = true;
      clearTimeout(timer);
      // ERR_HTTP2_PING_CANCEL: the session was destroyed meanwhile.
      if (error === null) timer = setTimeout(probe, intervalMs).unref();
    });
    timer = setTimeout(() => {
      setImmediate(() => {
        if (answered || session.destroyed) return;
        cutOff(`no answer to an HTTP/2 PING within ${timeoutMs} ms`);
        session.destroy();
      });
    }, timeoutMs).unref();
  };
  timer = setTimeout(probe, intervalMs).unref();
  session.once("close", () => clearTimeout(timer));
}
