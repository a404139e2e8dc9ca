import type * as http2 from "node:http2";

/**
 * How often a server's HTTP/2 session is asked for a PING ACK: every 10 s,
 * counted from the last ACK.
 */
export const H2_PING_INTERVAL_MS = 10_000;

/** How long the ACK may take before the session is destroyed: 10 s. */
export const H2_PING_TIMEOUT_MS = 10_000;

/**
 * The first PING of a session, and how long a PING may stay in node:http2's
 * outbound queue while the socket has nothing left to write: 500 ms each.
 */
export const H2_STUCK_MS = 500;

export interface PingWatchOptions {
  /** Default H2_PING_INTERVAL_MS (10 s). */
  readonly intervalMs?: number;
  /** Default H2_PING_TIMEOUT_MS (10 s). */
  readonly timeoutMs?: number;
  /** Default H2_STUCK_MS (500 ms), at most `intervalMs` and `timeoutMs`. */
  readonly stuckMs?: number;
}

/**
 * Destroys a server's HTTP/2 session that no longer answers a PING, or that
 * node:http2 stopped reading after a protocol error, and tells `cutOff` why.
 * node:http2 reads the socket itself on every listener, so this is how a
 * dead session ends.
 *
 * Why a PING: node:http2 (Node 20) answers a peer's protocol error (a corrupt
 * HPACK block, DATA on an idle stream, a frame over the size limit) with
 * GOAWAY, then stops reading the connection and emits nothing: no "error",
 * "frameError" or "goaway" event. The session, its socket and any open call
 * stayed for ever (found by fuzzing); a half-close after it is not read
 * either. Such a session never sends a PING submitted after the GOAWAY: it
 * stays in the session's outbound queue (`session.state.outboundQueueSize`)
 * although the socket has nothing left to write (`bufferSize`), which on a
 * live session lasts one turn of the event loop. So a PING whose frame is
 * still queued `stuckMs` later, with the socket idle, means the session has
 * stopped: it is cut off then, naming the protocol error. The first PING
 * goes out `stuckMs` after the session starts (a hostile or broken peer
 * usually breaks the protocol at once), the next ones every `intervalMs`
 * from the last ACK, so a session that breaks later is cut off within
 * `intervalMs` + `stuckMs`.
 *
 * A peer that stops in the middle of a frame (slowloris), or stops reading,
 * cannot answer: a PING not answered within `timeoutMs` destroys the
 * session. A healthy peer, idle or busy, answers at once: every HTTP/2 stack
 * does (node:http2, grpc-go, Go's net/http2); grpc-go's ping policing is
 * about pings a server receives.
 *
 * Not covered: a session the peer itself closed with GOAWAY while one of its
 * streams is still open (node:http2 then cancels every PING, so the watch
 * stops); a healthy client shutting down gracefully looks the same. Such a
 * stream lasts until its call ends or the plugin closes.
 *
 * A verdict waits one turn of the event loop after its timer: after a long
 * synchronous handler, an ACK that has arrived, or a PING node:http2 is
 * about to write, is seen before the session is judged.
 */
export function watchPings(
  session: http2.ServerHttp2Session,
  options: PingWatchOptions,
  cutOff: (why: string) => void,
): void {
  const intervalMs = options.intervalMs ?? H2_PING_INTERVAL_MS;
  const timeoutMs = options.timeoutMs ?? H2_PING_TIMEOUT_MS;
  const stuckMs = Math.min(options.stuckMs ?? H2_STUCK_MS, intervalMs, timeoutMs);
  let timer: NodeJS.Timeout | undefined;
  const probe = (): void => {
    if (session.destroyed) return;
    let answered = false;
    const sent = Date.now();
    session.ping((error) => {
      answered = true;
      clearTimeout(timer);
      // ERR_HTTP2_PING_CANCEL: the session was destroyed or is closing.
      if (error === null) timer = setTimeout(probe, intervalMs).unref();
    });
    const judge = (): void => {
      if (answered || session.destroyed) return;
      const waited = Date.now() - sent;
      if (!session.closed && stopped(session)) {
        cutOff(
          "it broke the HTTP/2 protocol (node:http2 answered with GOAWAY and stopped reading)",
        );
        session.destroy();
      } else if (waited >= timeoutMs) {
        cutOff(`no answer to an HTTP/2 PING within ${timeoutMs} ms`);
        session.destroy();
      } else {
        timer = setTimeout(check, Math.min(stuckMs, timeoutMs - waited)).unref();
      }
    };
    const check = (): void => void setImmediate(judge);
    timer = setTimeout(check, stuckMs).unref();
  };
  timer = setTimeout(probe, stuckMs).unref();
  session.once("close", () => clearTimeout(timer));
}

/**
 * True when the session holds frames to send while its socket has nothing
 * left to write: node:http2 no longer writes it (see watchPings).
 * `bufferSize` counts the bytes the socket's native handle still has to
 * write, which node:http2's own writes go through (writableLength does not
 * see them).
 */
function stopped(session: http2.ServerHttp2Session): boolean {
  const socket = session.socket as { bufferSize?: number } | null;
  return (session.state.outboundQueueSize ?? 0) > 0 && socket?.bufferSize === 0;
}
