import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import type {
  UniversalClientFn,
  UniversalClientRequest,
  UniversalClientResponse,
} from "@connectrpc/connect/protocol";
import { getAbortSignalReason } from "@connectrpc/connect/protocol";
import type { H2Session } from "./h2-session.js";
import { CallOutcome } from "./call-outcome.js";
import { IncomingBody } from "./incoming-body.js";
import { errorFromNode, errorFromRstCode, hasNodeCode, streamError } from "./node-errors.js";
import { nodeHeadersToWeb, webHeadersToNode } from "./node-headers.js";
import { sendBody } from "./send-body.js";

/**
 * connect-es' HTTP client over one H2Session: each call is one stream.
 * No transport of ours uses it since gRPC-web left it for the lean path
 * (session 21); the differential tests run connect-es' own transports over
 * it as the reference the lean paths must match.
 * The call settles exactly once: with the response headers, or with the
 * first of the caller's abort, a stream error, or a reset. After the
 * headers, failures go to the body, which the protocol code is reading.
 * An aborted call resets its stream with CANCEL (gRPC's mapping of a
 * cancellation), anything else with INTERNAL_ERROR.
 */
export function createH2Client(session: H2Session): UniversalClientFn {
  return (req: UniversalClientRequest) =>
    new Promise<UniversalClientResponse>((resolve, reject) => {
      let path: string;
      try {
        path = session.pathOf(req.url);
      } catch (e) {
        reject(ConnectError.from(e));
        return;
      }
      const signal = req.signal;
      if (signal?.aborted === true) {
        reject(errorFromNode(getAbortSignalReason(signal)));
        return;
      }
      const headers = webHeadersToNode(req.header, {
        ":method": req.method,
        ":path": path,
      });
      let stream: http2.ClientHttp2Stream;
      try {
        stream = session.request(headers);
      } catch (e) {
        reject(errorFromNode(e));
        return;
      }
      let body: IncomingBody | undefined;
      const outcome = new CallOutcome(
        reject,
        (error) => {
          if (!stream.closed && !stream.destroyed) {
            stream.close(
              error.code === Code.Canceled
                ? http2.constants.NGHTTP2_CANCEL
                : http2.constants.NGHTTP2_INTERNAL_ERROR,
            );
          }
        },
        (error) => body?.fail(error),
      );
      const fail = (reason: unknown): void => outcome.fail(reason);
      const onAbort = (): void => fail(getAbortSignalReason(signal as AbortSignal));
      signal?.addEventListener("abort", onAbort, { once: true });
      stream.once("end", () => {
        outcome.finished = true;
        signal?.removeEventListener("abort", onAbort);
      });
      stream.on("error", (e: unknown) => {
        // The server answered and ended the stream while we were still
        // sending: its answer counts, not our failed write.
        if (stream.writableEnded && hasNodeCode(e, "ERR_STREAM_WRITE_AFTER_END")) return;
        fail(streamError(stream.rstCode, e));
      });
      stream.once("close", () => {
        signal?.removeEventListener("abort", onAbort);
        const reset = errorFromRstCode(stream.rstCode);
        if (reset !== undefined) fail(reset);
        else if (!outcome.settled)
          fail(new ConnectError("http/2 stream closed before the response", Code.Internal));
      });
      const trailer = new Headers();
      stream.once("trailers", (t: http2.IncomingHttpHeaders) => {
        nodeHeadersToWeb(t).forEach((value, key) => trailer.append(key, value));
      });
      stream.once("response", (h: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader) => {
        if (!outcome.settle()) return;
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
