import type * as http2 from "node:http2";

/**
 * How often an idle server HTTP/2 session is asked for a PING ACK: every
 * 10 s, counted from the last ACK.
 */
export const H2_PING_INTERVAL_MS = 10_000;

/** How long the ACK may take before the session is destroyed: 10 s. */
export const H2_PING_TIMEOUT_MS = 10_000;

/**
 * How soon a session that has read bytes since its last PING ACK is PINGed
 * again: 500 ms. Also when the first PING goes out.
 */
export const H2_READ_PING_MS = 500;

/**
 * How long a PING may stay in node:http2's outbound queue while the socket
 * cannot be waiting to write (see watchPings) before the session counts as
 * stopped: 1 s.
 */
export const H2_STUCK_MS = 1_000;

/**
 * Bytes written since the peer last proved it reads (its last PING ACK)
 * below which a socket write cannot be blocked: 16 KiB. On Linux every
 * socket takes more before a write waits (TCP's smallest default send buffer
 * alone is 16 KiB; a unix socket's 208 KiB of buffer held 19 KiB of 10-byte
 * writes when measured), so node:http2 holding frames with fewer bytes
 * unread means it no longer writes, not that the peer reads slowly. Not
 * measured elsewhere: macOS's unix sockets default to 8 KiB
 * (net.local.stream.sendspace), where a live peer that pauses reading for a
 * second with 8-16 KiB unread would be taken for stopped.
 */
export const H2_UNREAD_FLOOR_BYTES = 16 * 1024;

export interface PingWatchOptions {
  /** Default H2_PING_INTERVAL_MS (10 s). */
  readonly intervalMs?: number;
  /** Default H2_PING_TIMEOUT_MS (10 s). */
  readonly timeoutMs?: number;
  /** Default H2_READ_PING_MS (500 ms), at most `intervalMs`. */
  readonly readPingMs?: number;
  /** Default H2_STUCK_MS (1 s), at most `timeoutMs`. */
  readonly stuckMs?: number;
}

/**
 * Destroys a server's HTTP/2 session that no longer answers a PING, or that
 * node:http2 stopped reading after a protocol error, and tells `cutOff` why.
 * node:http2 reads and writes the socket itself on every listener (no
 * JavaScript sees the bytes), so this is how a dead session ends.
 *
 * Why a PING: node:http2 (Node 20) answers a peer's protocol error (a corrupt
 * HPACK block, DATA on an idle stream, a frame over the size limit) with
 * GOAWAY, then neither reads nor writes the connection again and emits
 * nothing: no "error", "frameError" or "goaway" event; the peer's end of
 * input is never read. The session, its socket and any open call stayed for
 * ever (found by fuzzing). Such a session never sends a PING submitted after
 * the GOAWAY: it stays in the session's outbound queue
 * (`session.state.outboundQueueSize`), where on a live session it lasts one
 * turn of the event loop, or as long as a socket write is blocked (a peer
 * that does not read). A write can only block once the peer has left more
 * unread than the socket buffers hold, so frames still queued `stuckMs`
 * after a PING, nothing written in that time, and under
 * H2_UNREAD_FLOOR_BYTES written since the peer's last ACK
 * (`socket.bytesWritten`, which counts node:http2's own writes) mean the
 * session has stopped: it is cut off then, naming the protocol error. With
 * more unread, the ACK timeout decides. (Bytes still queued in streams,
 * `stream.bufferSize`, say nothing here: a stopped session keeps its
 * responses queued for ever, and a closed stream's bytes may still be in a
 * blocked write.)
 *
 * When to PING: a session that has read bytes since its last ACK
 * (`socket.bytesRead`, which counts node:http2's own reads) within
 * `readPingMs` (the protocol error is in those bytes), an idle one every
 * `intervalMs`, so that a session that breaks the protocol at any time is
 * cut off within about `readPingMs` + `stuckMs`, and an idle session costs
 * one PING per `intervalMs` and a timer every `readPingMs` that compares a
 * counter (node:http2 emits no event per read). One timer per session, none
 * per call. While a PING is
 * unanswered and written, bytes read after it get a further PING (up to 4),
 * for a peer that breaks the protocol after the PING left.
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
  const readPingMs = Math.min(options.readPingMs ?? H2_READ_PING_MS, intervalMs);
  const stuckMs = Math.min(options.stuckMs ?? H2_STUCK_MS, timeoutMs);
  // Read through node:http2's proxy, which allows reading a socket's counters.
  const socket = session.socket;
  /** The unanswered PING: when it went out, bytes read then, bytes written at the last look. */
  let waiting: { sent: number; read: number; written: number; probes: number } | undefined;
  let answeredAt = performance.now();
  /** bytesRead at the last ACK (-1: before the first PING). */
  let readAtAnswer = -1;
  /** bytesWritten when the last answered PING was submitted: the peer has read all before it. */
  let provenRead = 0;
  let timer: NodeJS.Timeout | undefined;
  const arm = (ms: number): void => {
    clearTimeout(timer);
    timer = setTimeout(() => void setImmediate(step), ms).unref();
  };
  const ping = (): void => {
    const written = socket.bytesWritten;
    session.ping((error) => {
      // ERR_HTTP2_PING_CANCEL: the session was destroyed or is closing.
      if (error !== null || session.destroyed) return;
      waiting = undefined;
      answeredAt = performance.now();
      readAtAnswer = socket.bytesRead;
      provenRead = Math.max(provenRead, written);
      arm(readPingMs);
    });
  };
  const step = (): void => {
    if (session.destroyed) return;
    const now = performance.now();
    if (waiting === undefined) {
      // Closed (either side said GOAWAY): node:http2 cancels a PING at once
      // without sending it, which must not count as unanswered; the watch
      // stops (see "Not covered" above).
      if (session.closed) return;
      if (socket.bytesRead !== readAtAnswer || now - answeredAt >= intervalMs) {
        waiting = { sent: now, read: socket.bytesRead, written: socket.bytesWritten, probes: 1 };
        ping();
        arm(stuckMs);
      } else {
        arm(readPingMs);
      }
      return;
    }
    const waited = now - waiting.sent;
    const queued = (session.state.outboundQueueSize ?? 0) > 0;
    const written = socket.bytesWritten;
    // Frames held, nothing written since the last look, and too little
    // unread for a write to be blocked: node:http2 has stopped.
    const idle = written === waiting.written;
    waiting.written = written;
    if (!session.closed && queued && idle && written - provenRead < H2_UNREAD_FLOOR_BYTES) {
      cutOff("it broke the HTTP/2 protocol (node:http2 answered with GOAWAY and stopped reading)");
      session.destroy();
    } else if (waited >= timeoutMs) {
      cutOff(`no answer to an HTTP/2 PING within ${timeoutMs} ms`);
      session.destroy();
    } else {
      if (!queued && socket.bytesRead !== waiting.read && waiting.probes < 4 && !session.closed) {
        // Read since the PING left: if that broke the protocol, this one stays queued.
        waiting.read = socket.bytesRead;
        waiting.probes++;
        ping();
      }
      arm(Math.min(stuckMs, timeoutMs - waited));
    }
  };
  arm(readPingMs);
  session.once("close", () => clearTimeout(timer));
}
