import type * as http2 from "node:http2";
import type {
  DescMessage,
  DescMethodStreaming,
  DescMethodUnary,
  MessageShape,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { createMethodUrl } from "@connectrpc/connect/protocol";
import type { CallSignal } from "./call-support.js";
import { abortedBefore, abortOf, listenAbort } from "./lazy-abort.js";
import { errorFromNode } from "./node-errors.js";
import type { CallTarget, UnaryEnd } from "./run-call.js";
import { withoutUserInfo } from "./url-credentials.js";
import type { StreamCall, StreamStart } from "./stream-call.js";
import type { StreamWire } from "./stream-wire.js";
import { PromiseEnd, type CallEnd, type UnaryCall } from "./unary-call.js";
import { requestBody, type UnaryClientWire, type UnaryLimits } from "./unary-client-wire.js";

/**
 * What the CallRunner's targets over HTTP share, whatever the HTTP version
 * (H2Target over an H2Session, H1Target over node:http): one origin, the
 * protocol's wires (UnaryClientWire for unary calls, StreamWire for
 * streams), the size limits, and the steps of a unary call before its
 * request goes out (the abort state checked, the body serialized, the
 * headers built) and after (the call listens to its abort state). Each
 * version sends the request (send()) and opens streams (stream()).
 */
export abstract class HttpTarget<C> implements CallTarget {
  /** Streams settle in their queue (StreamCall). */
  readonly settlesStreams = true;
  /** unary() reads the request's header and hands on neither it nor its context values. */
  readonly privateRequests = true;

  constructor(
    /** The connections: an H2Session, an H1Pool. */
    protected readonly http: C,
    protected readonly baseUrl: string,
    protected readonly wire: UnaryClientWire,
    protected readonly limits: UnaryLimits,
    protected readonly streams: StreamWire,
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
    return new Promise((resolve, reject) =>
      this.start(req, call, new PromiseEnd(req, resolve, reject)),
    );
  }

  /** A message-only unary call, its outcome handed to `end` (see CallTarget.unaryTo). */
  unaryTo<I extends DescMessage, O extends DescMessage>(
    req: UnaryRequest<I, O>,
    call: CallSignal,
    end: UnaryEnd<O>,
  ): void {
    this.start(req, call, end);
  }

  /**
   * Opens a stream for `req` (see StreamCall): the headers go at once, the
   * request's messages as they come (StreamCall.send). Settles with the
   * response or its failure. A call whose abort state (the request's,
   * else the runner's: an interceptor's own signal must not hide the
   * caller's cancel or the deadline) has already fired sends nothing.
   */
  stream<I extends DescMessage, O extends DescMessage>(
    req: StreamRequest<I, O>,
    call: CallSignal,
  ): Promise<StreamResponse<I, O>> {
    return new Promise((resolve, reject) => {
      const abort = abortOf(req);
      const gone = abortedBefore(abort, call);
      if (gone !== undefined) {
        reject(errorFromNode(gone.reason));
        return;
      }
      let path: string;
      let requests: AsyncIterator<MessageShape<I>>;
      try {
        path = this.pathOf(req.url);
        requests = req.message[Symbol.asyncIterator]();
      } catch (e) {
        reject(ConnectError.from(e));
        return;
      }
      let c: StreamCall<O>;
      try {
        c = this.open(this.streams.requestHeaders(path, req.header, call.timeoutMs), {
          req,
          call,
          wire: this.streams,
          limits: this.limits,
          resolve: resolve as (res: StreamResponse<DescMessage, O>) => void,
          reject,
        });
      } catch (e) {
        reject(errorFromNode(e));
        return;
      }
      listenAbort(abort, call, c);
      void c.send(requests as AsyncIterator<MessageShape<DescMessage>>, this.limits.writeMaxBytes);
    });
  }

  /**
   * The request path of `url` (`:path`); throws a ConnectError when `url`
   * is not on this target's origin (an interceptor may rewrite the URL).
   */
  protected abstract pathOf(url: string): string;

  /**
   * Sends a unary call's request (`headers` may be a shared frozen
   * object, see UnaryClientWire.requestHeaders) and returns its call, whose
   * outcome goes to `end`; throws when the request cannot be made.
   */
  protected abstract send<I extends DescMessage, O extends DescMessage>(
    req: UnaryRequest<I, O>,
    headers: http2.OutgoingHttpHeaders,
    body: Uint8Array,
    end: CallEnd<O>,
  ): UnaryCall<I, O>;

  /**
   * Opens a stream call with `headers` (its request's messages are sent by
   * the caller); throws when the request cannot be made.
   */
  protected abstract open<O extends DescMessage>(
    headers: http2.OutgoingHttpHeaders,
    start: StreamStart<O>,
  ): StreamCall<O>;

  /** Sends the call; its outcome goes to `end`, once. */
  private start<I extends DescMessage, O extends DescMessage>(
    req: UnaryRequest<I, O>,
    call: CallSignal,
    end: CallEnd<O>,
  ): void {
    const abort = abortOf(req);
    const gone = abortedBefore(abort, call);
    if (gone !== undefined) {
      end.fail(errorFromNode(gone.reason));
      return;
    }
    let path: string;
    let body: Uint8Array;
    try {
      path = this.pathOf(req.url);
      body = requestBody(
        req.method.input,
        req.message,
        this.limits.writeMaxBytes,
        this.wire.enveloped,
      );
    } catch (e) {
      end.fail(ConnectError.from(e));
      return;
    }
    const headers = this.wire.requestHeaders(path, req.header, call.timeoutMs);
    let unary: UnaryCall<I, O>;
    try {
      unary = this.send(req, headers, body, end);
    } catch (e) {
      end.fail(errorFromNode(e));
      return;
    }
    // A call's own abort state (the runner's, or CallGuard's that follows
    // it) always ends aborted, when the call settles: the call listens
    // itself and may stay (it then finds the call finished), no hook or
    // unsubscribe closure per call.
    listenAbort(abort, call, unary);
  }
}

/**
 * The path of `url` on `origin` (scheme, host and port, no slash at the
 * end); throws a ConnectError when `url` is elsewhere. `what` names the
 * connection in the error, which shows no user info (a URL's password is
 * sent as Basic auth, never shown).
 */
export function pathOn(origin: string, url: string, what: string): string {
  if (!url.startsWith(origin) || url.charCodeAt(origin.length) !== 47 /* "/" */) {
    throw new ConnectError(
      `cannot make a request to ${withoutUserInfo(url)}: the ${what} is connected to ${withoutUserInfo(origin)}`,
      Code.Internal,
    );
  }
  return url.slice(origin.length);
}
