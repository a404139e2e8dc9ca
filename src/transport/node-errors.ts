import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";

/** Node error codes that mean the peer hung up on a stream or connection. */
const HUNG_UP = new Set(["ERR_STREAM_DESTROYED", "ERR_HTTP2_INVALID_STREAM", "ECONNRESET"]);
/** Node error codes that mean no connection could be made. */
const NO_CONNECTION = new Set(["ETIMEDOUT", "ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED"]);

/**
 * Turns an error raised by node:http, node:http2 or node:net into a
 * ConnectError with the code connect-es gives it (its conformance suite
 * fixes them): a write after the peer ended, and a peer hanging up, are
 * Aborted; no connection at all is Unavailable; anything else Internal. The
 * original error stays reachable as `cause` (retries read its `syscall`).
 */
export function errorFromNode(reason: unknown): ConnectError {
  if (reason instanceof ConnectError) return reason;
  // A stream queued on a session that failed to connect carries the
  // session's error ("connect ECONNREFUSED") as its cause: that is the news.
  if (hasNodeCode(reason, "ERR_HTTP2_STREAM_CANCEL") && (reason as Error).cause instanceof Error) {
    return errorFromNode((reason as Error).cause);
  }
  let code = Code.Internal;
  for (let e: unknown = reason, depth = 0; e instanceof Error && depth < 8; depth++) {
    const nodeCode = (e as { code?: unknown }).code;
    if (
      nodeCode === "ERR_STREAM_WRITE_AFTER_END" ||
      (typeof nodeCode === "string" && HUNG_UP.has(nodeCode))
    ) {
      code = Code.Aborted;
      break;
    }
    if (typeof nodeCode === "string" && NO_CONNECTION.has(nodeCode)) {
      code = Code.Unavailable;
      break;
    }
    e = (e as { cause?: unknown }).cause;
  }
  const error = ConnectError.from(reason, code);
  if (error !== reason) error.cause = reason;
  return error;
}

/** True if `reason` (or an error in its cause chain) has Node error code `code`. */
export function hasNodeCode(reason: unknown, code: string): boolean {
  for (let e: unknown = reason, depth = 0; e instanceof Error && depth < 8; depth++) {
    if ((e as { code?: unknown }).code === code) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

const { constants } = http2;
const RST_NAMES: Readonly<Record<number, [string, Code]>> = {
  [constants.NGHTTP2_PROTOCOL_ERROR]: ["PROTOCOL_ERROR", Code.Internal],
  [constants.NGHTTP2_INTERNAL_ERROR]: ["INTERNAL_ERROR", Code.Internal],
  [constants.NGHTTP2_FLOW_CONTROL_ERROR]: ["FLOW_CONTROL_ERROR", Code.Internal],
  [constants.NGHTTP2_SETTINGS_TIMEOUT]: ["SETTINGS_TIMEOUT", Code.Internal],
  [constants.NGHTTP2_FRAME_SIZE_ERROR]: ["FRAME_SIZE_ERROR", Code.Internal],
  [constants.NGHTTP2_REFUSED_STREAM]: ["REFUSED_STREAM", Code.Unavailable],
  [constants.NGHTTP2_CANCEL]: ["CANCEL", Code.Canceled],
  [constants.NGHTTP2_COMPRESSION_ERROR]: ["COMPRESSION_ERROR", Code.Internal],
  [constants.NGHTTP2_CONNECT_ERROR]: ["CONNECT_ERROR", Code.Internal],
  [constants.NGHTTP2_ENHANCE_YOUR_CALM]: ["ENHANCE_YOUR_CALM", Code.ResourceExhausted],
  [constants.NGHTTP2_INADEQUATE_SECURITY]: ["INADEQUATE_SECURITY", Code.PermissionDenied],
  [constants.NGHTTP2_HTTP_1_1_REQUIRED]: ["HTTP_1_1_REQUIRED", Code.PermissionDenied],
};

/**
 * The error an HTTP/2 RST_STREAM code means, following gRPC's mapping
 * (PROTOCOL-HTTP2.md); undefined for NO_ERROR and STREAM_CLOSED. The message
 * is connect-es'; REFUSED_STREAM comes as a RefusedStreamError.
 */
export function errorFromRstCode(rstCode: number | undefined): ConnectError | undefined {
  const entry = rstCode === undefined ? undefined : RST_NAMES[rstCode];
  if (entry === undefined || rstCode === undefined) return undefined;
  const message = `http/2 stream closed with error code ${entry[0]} (0x${rstCode.toString(16)})`;
  return rstCode === constants.NGHTTP2_REFUSED_STREAM
    ? new RefusedStreamError(message, entry[1])
    : new ConnectError(message, entry[1]);
}

/**
 * The server refused the stream (RST_STREAM REFUSED_STREAM): RFC 9113 §8.7
 * guarantees it processed nothing, so a retry cannot execute a call twice.
 * Made only here, from the code the session received, never from wire data.
 */
export class RefusedStreamError extends ConnectError {
  readonly refusedStream = true;
}

/**
 * True for a RefusedStreamError. Not instanceof: ConnectError's
 * Symbol.hasInstance accepts any ConnectError, for subclasses too.
 */
export function isRefusedStream(e: unknown): boolean {
  return (
    typeof e === "object" && e !== null && (e as { refusedStream?: unknown }).refusedStream === true
  );
}

/**
 * The error an HTTP/2 client stream's "error" event means. A refused stream
 * arrives as Node's ERR_HTTP2_STREAM_ERROR; it is Unavailable and provably
 * unsent (RefusedStreamError), so a cluster may retry even a write. Other
 * resets keep Node's error, whose cause tells a broken connection apart.
 */
export function streamError(rstCode: number | undefined, error: unknown): unknown {
  return rstCode === constants.NGHTTP2_REFUSED_STREAM ? errorFromRstCode(rstCode) : error;
}

/**
 * Why a client stream closed before its response was in: its reset code,
 * or (closed without one, as when its session breaks) Unavailable once the
 * response had begun, Internal before (as createH2Client reports them).
 */
export function closedBefore(stream: http2.ClientHttp2Stream, responded: boolean): ConnectError {
  return (
    errorFromRstCode(stream.rstCode) ??
    (responded
      ? new ConnectError("http/2 stream closed before the response ended", Code.Unavailable)
      : new ConnectError("http/2 stream closed before the response", Code.Internal))
  );
}

/** Why a plugin may close a TLS connection before its first answer: it refused our certificate. */
export const REFUSED_CERTIFICATE_HINT = "with TLS: does it accept this client's certificate?";
/** Why a plugin may close a cleartext connection from a URL before its first answer. */
export const TLS_PORT_HINT = "if the plugin serves TLS, its URL is https://";

/**
 * A plugin that closed a fresh connection before its first answer (HTTP/2
 * SETTINGS, HTTP/1.1 response): Unavailable, with the likeliest reason for
 * the way the host connected. Over TLS, a plugin that does not accept this
 * client's certificate completes the handshake and then closes
 * (tls-listener.ts); in cleartext to a URL, a TLS port reads the request
 * as a bad handshake and closes, so the fix is the https:// URL. A
 * cleartext socket the host did not dial from a URL (a subprocess's, from
 * its handshake: `how` "socket") gets no hint, having no URL to fix.
 */
export function closedBeforeFirstAnswer(
  answer: string,
  how: "tls" | "cleartext url" | "socket",
): ConnectError {
  const hint =
    how === "tls"
      ? ` (${REFUSED_CERTIFICATE_HINT})`
      : how === "cleartext url"
        ? ` (in cleartext: ${TLS_PORT_HINT})`
        : "";
  return new ConnectError(
    `the plugin closed the connection before it sent any ${answer}${hint}`,
    Code.Unavailable,
  );
}
