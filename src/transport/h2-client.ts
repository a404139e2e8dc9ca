import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import type {
  UniversalClientFn,
  UniversalClientRequest,
  UniversalClientResponse,
} from "@connectrpc/connect/protocol";
import { getAbortSignalReason } from "@connectrpc/connect/protocol";
import type { H2Session } from "./h2-session.js";
import { IncomingBody } from "./incoming-body.js";
import { errorFromNode, errorFromRstCode, hasNodeCode } from "./node-errors.js";
import { nodeHeadersToWeb, webHeadersToNode } from "./node-headers.js";
import { sendBody } from "./send-body.js";

/**
 * connect-es' HTTP client over one H2Session: each call is one stream.
 * The call settles exactly once: with the response headers, or with the
 * first of the caller's abort, a stream error, or a reset. After the
 * headers, failures go to the body, which the protocol code is reading.
 * An aborted call resets its stream with CANCEL (gRPC's mapping of a
 * cancellation), anything else with INTERNAL_ERROR.
 */
export function createH2Client(session: H2Session): UniversalClientFn {
  const origin = session.authority;
  return (req: UniversalClientRequest) =>
    new Promise<UniversalClientResponse>((resolve, reject) => {
      if (!req.url.startsWith(origin) || req.url.charCodeAt(origin.length) !== 47 /* "/" */) {
        reject(
          new ConnectError(
            `cannot make a request to ${req.url}: the http2 session is connected to ${origin}`,
            Code.Internal,
          ),
        );
        return;
      }
      const signal = req.signal;
      if (signal?.aborted === true) {
        reject(errorFromNode(getAbortSignalReason(signal)));
        return;
      }
      const headers = webHeadersToNode(req.header, {
        ":method": req.method,
        ":path": req.url.slice(origin.length),
      });
      let stream: http2.ClientHttp2Stream;
      try {
        stream = session.request(headers);
      } catch (e) {
        reject(errorFromNode(e));
        return;
      }
      let body: IncomingBody | undefined;
      let settled = false;
      // Once the whole response is in, the call is over: the caller's
      // signal (connect-es aborts it when the call completes) must not
      // reset a stream the server has closed; a peer counts such frames as
      // invalid and ends the session after 1,000 of them.
      let finished = false;
      const fail = (reason: unknown): void => {
        if (finished) return;
        const error = errorFromNode(reason);
        if (!settled) {
          settled = true;
          reject(error);
        } else body?.fail(error);
        if (!stream.closed && !stream.destroyed) {
          stream.close(
            error.code === Code.Canceled
              ? http2.constants.NGHTTP2_CANCEL
              : http2.constants.NGHTTP2_INTERNAL_ERROR,
          );
        }
      };
      const onAbort = (): void => fail(getAbortSignalReason(signal as AbortSignal));
      signal?.addEventListener("abort", onAbort, { once: true });
      stream.once("end", () => {
        finished = true;
        signal?.removeEventListener("abort", onAbort);
      });
      stream.on("error", (e: unknown) => {
        // The server answered and ended the stream while we were still
        // sending: its answer counts, not our failed write.
        if (stream.writableEnded && hasNodeCode(e, "ERR_STREAM_WRITE_AFTER_END")) return;
        // A refused stream arrives as Node's ERR_HTTP2_STREAM_ERROR; it is
        // Unavailable and provably unsent (RefusedStreamError), so a cluster
        // may retry even a write. Other resets keep Node's error, whose cause
        // tells a broken connection apart.
        fail(
          stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM
            ? errorFromRstCode(stream.rstCode)
            : e,
        );
      });
      stream.once("close", () => {
        signal?.removeEventListener("abort", onAbort);
        const reset = errorFromRstCode(stream.rstCode);
        if (reset !== undefined) fail(reset);
        else if (!settled)
          fail(new ConnectError("http/2 stream closed before the response", Code.Internal));
      });
      const trailer = new Headers();
      stream.once("trailers", (t: http2.IncomingHttpHeaders) => {
        nodeHeadersToWeb(t).forEach((value, key) => trailer.append(key, value));
      });
      stream.once("response", (h: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader) => {
        if (settled) return;
        settled = true;
        body = new IncomingBody(
          stream,
          () =>
            errorFromRstCode(stream.rstCode) ??
            new ConnectError("http/2 stream closed before the response ended", Code.Unavailable),
          () => {
            if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
          },
          () => stream.aborted || errorFromRstCode(stream.rstCode) !== undefined,
        );
        resolve({
          status: h[":status"] ?? 0,
          header: nodeHeadersToWeb(h),
          body,
          trailer,
        });
      });
      sendBody(req.body, stream, fail);
    });
}
