import type * as http2 from "node:http2";

/**
 * How often a server's HTTP/2 session is asked for a PING ACK: every 10 s,
 * counted from the last ACK.
 */
export const H2_PING_INTERVAL_MS = 10_000;

/** How long the ACK may take before the session is destroyed: 10 s. */
export const H2_PING_TIMEOUT_MS = 10_000;

/** When a session's first PING goes out: 500 ms after it starts. */
export const H2_FIRST_PING_MS = 500;

/**
 * How long a PING may stay in node:http2's outbound queue while none of the
 * session's streams has bytes on their way out: 1 s.
 */
export const H2_STUCK_MS = 1_000;

export interface PingWatchOptions {
  /** Default H2_PING_INTERVAL_MS (10 s). */
  readonly intervalMs?: number;
  /** Default H2_PING_TIMEOUT_MS (10 s). */
  readonly timeoutMs?: number;
  /** Default H2_FIRST_PING_MS (500 ms), at most `intervalMs`. */
  readonly firstPingMs?: number;
  /** Default H2_STUCK_MS (1 s), at most `timeoutMs`. */
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
 * stays in the session's outbound queue (`session.state.outboundQueueSize`),
 * where on a live session it lasts one turn of the event loop, or as long
 * as the socket is still writing what went before (a peer that reads
 * slowly). So a PING still queued `stuckMs` later while none of the
 * session's streams has bytes on their way out (`stream.bufferSize`) means
 * the session has stopped: it is cut off then, naming the protocol error.
 * The first PING goes out `firstPingMs` after the session starts (a hostile
 * or broken peer usually breaks the protocol at once), the next ones every
 * `intervalMs` from the last ACK, so a session that breaks later is cut
 * off within `intervalMs` + `stuckMs`. The one live session it could take
 * for stopped: a peer that stops reading for `stuckMs` just after the last
 * of its responses left their streams (so the socket still has bytes to
 * write, but no stream does) when a PING is due; the ACK timeout would cut
 * it off unless it read again within `timeoutMs`.
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
  /** The session's open streams, as closeWhenIdle() keeps them (node:http2 lists none). */
  streams: ReadonlySet<http2.ServerHttp2Stream>,
): void {
  const intervalMs = options.intervalMs ?? H2_PING_INTERVAL_MS;
  const timeoutMs = options.timeoutMs ?? H2_PING_TIMEOUT_MS;
  const firstPingMs = Math.min(options.firstPingMs ?? H2_FIRST_PING_MS, intervalMs);
  const stuckMs = Math.min(options.stuckMs ?? H2_STUCK_MS, timeoutMs);
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
      if (!session.closed && stopped(session, streams)) {
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
  timer = setTimeout(probe, firstPingMs).unref();
  session.once("close", () => clearTimeout(timer));
}

/**
 * True when the session holds frames to send while none of its streams has
 * bytes on their way out (a stream's `bufferSize` counts them until the
 * socket has written them): node:http2 no longer writes it (see watchPings).
 */
function stopped(
  session: http2.ServerHttp2Session,
  streams: ReadonlySet<http2.ServerHttp2Stream>,
): boolean {
  if ((session.state.outboundQueueSize ?? 0) === 0) return false;
  for (const stream of streams) if (stream.bufferSize > 0) return false;
  return true;
}
