import * as http2 from "node:http2";
import type { DescMessage, DescMethodStreaming, DescMethodUnary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type StreamRequest,
  type StreamResponse,
  type Transport,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { createMethodUrl } from "@connectrpc/connect/protocol";
import type { CallSignal } from "./call-support.js";
import { CallOutcome } from "./call-outcome.js";
import type { H2Session } from "./h2-session.js";
import { abortOf, signalOf } from "./lazy-abort.js";
import { errorFromNode, errorFromRstCode, hasNodeCode, streamError } from "./node-errors.js";
import { nodeHeadersToWeb } from "./node-headers.js";
import type { CallTarget } from "./run-call.js";
import {
  serializeMessage,
  type UnaryBodyReader,
  type UnaryLimits,
  type UnaryClientWire,
} from "./unary-client-wire.js";

/**
 * Where the CallRunner sends Connect and gRPC calls over one H2Session.
 *
 * Unary calls take a lean path: one stream each, the message serialized
 * and sent in one write, the answer gathered into one buffer and checked
 * with connect-es' own validators (see UnaryClientWire), with no AbortController,
 * async-iterable pipeline or per-call closures of connect-es' protocol
 * layer, which profiling showed to be where HTTP/2 calls lost their time.
 *
 * Streaming calls are, for now, handed to connect-es' transport for the
 * protocol (`streams`, built without interceptors: the runner applied them
 * already); it reads the request's URL from its own base URL.
 */
export class H2Target implements CallTarget {
  readonly settlesStreams = false;

  constructor(
    private readonly session: H2Session,
    private readonly baseUrl: string,
    private readonly wire: UnaryClientWire,
    private readonly limits: UnaryLimits,
    private readonly streams: Transport,
  ) {}

  private readonly urls = new Map<DescMethodUnary | DescMethodStreaming, string>();

  /** The full URL, as connect-es' transports give it to interceptors. */
  path(method: DescMethodUnary | DescMethodStreaming): string {
    let url = this.urls.get(method);
    if (url === undefined) this.urls.set(method, (url = createMethodUrl(this.baseUrl, method)));
    return url;
  }

  unary<I extends DescMessage, O extends DescMessage>(
    req: UnaryRequest<I, O>,
    call: CallSignal,
  ): Promise<UnaryResponse<I, O>> {
    const abort = abortOf(req);
    if (abort.aborted) return Promise.reject(errorFromNode(abort.reason));
    let path: string;
    let body: Uint8Array;
    try {
      path = this.session.pathOf(req.url);
      body = this.wire.requestBody(
        serializeMessage(req.method.input, req.message, this.limits.writeMaxBytes),
      );
    } catch (e) {
      return Promise.reject(ConnectError.from(e));
    }
    const headers = this.wire.requestHeaders(path, req.header, call.timeoutMs);
    return new Promise((resolve, reject) => {
      let stream: http2.ClientHttp2Stream;
      try {
        stream = this.session.request(headers);
      } catch (e) {
        reject(errorFromNode(e));
        return;
      }
      let reader: UnaryBodyReader | undefined;
      let header: Headers | undefined;
      let trailer: Headers | undefined;
      // Any failure resets the stream with CANCEL: the client has lost
      // interest (gRPC's mapping of a cancelled or expired call).
      const outcome = new CallOutcome(reject, () => {
        if (!stream.closed && !stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
      });
      const unsubscribe = abort.onAbort((reason) => outcome.fail(reason));
      stream.on("error", (e: unknown) => {
        // The server answered and ended the stream while we were still
        // sending: its answer counts, not our failed write.
        if (stream.writableEnded && hasNodeCode(e, "ERR_STREAM_WRITE_AFTER_END")) return;
        outcome.fail(streamError(stream.rstCode, e));
      });
      stream.once("close", () => {
        unsubscribe();
        if (!outcome.finished) outcome.fail(cut(stream, reader !== undefined));
      });
      stream.once("response", (h: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader) => {
        header = nodeHeadersToWeb(h);
        try {
          reader = this.wire.response(h[":status"] ?? 0, header, this.limits);
        } catch (e) {
          outcome.fail(e);
        }
      });
      stream.once("trailers", (t: http2.IncomingHttpHeaders) => {
        trailer = nodeHeadersToWeb(t);
      });
      stream.on("data", (chunk: Uint8Array) => {
        if (reader === undefined || outcome.settled) return;
        try {
          reader.push(chunk);
        } catch (e) {
          outcome.fail(e);
        }
      });
      stream.once("end", () => {
        // node:http2 also ends a stream's readable side when the stream is
        // reset or its session breaks: that end is not the response's.
        if (
          reader === undefined ||
          stream.aborted ||
          errorFromRstCode(stream.rstCode) !== undefined
        ) {
          outcome.fail(cut(stream, reader !== undefined));
          return;
        }
        if (outcome.settled) return;
        // A body short of its promise is taken as a cut connection, which a
        // caller may retry, not as the server's protocol error (connect-es'
        // InvalidArgument): node can end the readable side with no reset code
        // before it marks the session gone, and CI saw exactly that, twice,
        // as "promised 41 bytes, received 0" for a Go plugin SIGKILLed
        // mid-answer. A server that really sends a short body is rarer.
        if (reader.cutShort()) {
          outcome.fail(cut(stream, true));
          return;
        }
        outcome.finished = true;
        unsubscribe();
        reader.finish(req.method.output, trailer ?? new Headers()).then(
          (res) => {
            if (!outcome.settle()) return;
            resolve({
              stream: false,
              service: req.service,
              method: req.method,
              header: res.header,
              message: res.message,
              trailer: res.trailer,
            });
          },
          (e: unknown) => {
            if (outcome.settle()) reject(ConnectError.from(e));
          },
        );
      });
      stream.end(body);
    });
  }

  stream<I extends DescMessage, O extends DescMessage>(
    req: StreamRequest<I, O>,
    call: CallSignal,
  ): Promise<StreamResponse<I, O>> {
    return this.streams.stream(
      req.method,
      signalOf(req, call),
      call.timeoutMs,
      req.header,
      req.message,
      req.contextValues,
    );
  }
}

/**
 * Why a stream closed before its response was in: its reset code, or
 * (closed without one, as when its session breaks) Unavailable once the
 * response had begun, Internal before (as createH2Client reports them).
 */
function cut(stream: http2.ClientHttp2Stream, responded: boolean): ConnectError {
  return (
    errorFromRstCode(stream.rstCode) ??
    (responded
      ? new ConnectError("http/2 stream closed before the response ended", Code.Unavailable)
      : new ConnectError("http/2 stream closed before the response", Code.Internal))
  );
}
