import type * as http2 from "node:http2";
import type { DescMessage } from "@bufbuild/protobuf";
import { ConnectError, type UnaryRequest, type UnaryResponse } from "@connectrpc/connect";
import { noop } from "./call-support.js";
import { CallOutcome } from "./call-outcome.js";
import type { AbortListener } from "./lazy-abort.js";
import type {
  UnaryBodyReader,
  UnaryClientWire,
  UnaryLimits,
  UnaryResult,
} from "./unary-client-wire.js";

/** Where a UnaryCall hands its outcome: the call's promise (PromiseEnd) or the runner's UnaryEnd. */
export interface CallEnd<O extends DescMessage> {
  ok(res: UnaryResult<O>): void;
  fail(error: ConnectError): void;
}

/** unary()'s promise, resolved with the response as connect-es' transports make it. */
export class PromiseEnd<I extends DescMessage, O extends DescMessage> implements CallEnd<O> {
  constructor(
    private readonly req: UnaryRequest<I, O>,
    private readonly resolve: (res: UnaryResponse<I, O>) => void,
    readonly fail: (error: ConnectError) => void,
  ) {}

  ok(res: UnaryResult<O>): void {
    const req = this.req;
    this.resolve({
      stream: false,
      service: req.service,
      method: req.method,
      header: res.header,
      message: res.message,
      trailer: res.trailer,
    });
  }
}

/**
 * One unary call of an HTTP target (h2-target.ts, h1-target.ts): its body
 * reader once the response's head is in, its outcome, settled once. Each
 * HTTP version's subclass says how a failure stops the request (stop()):
 * the client has lost interest.
 */
export abstract class UnaryCall<I extends DescMessage, O extends DescMessage, X = unknown>
  extends CallOutcome
  implements AbortListener
{
  reader: UnaryBodyReader | undefined;
  trailer: http2.IncomingHttpHeaders | undefined;
  unsubscribe: () => void = noop;

  constructor(
    /** The request's exchange: an HTTP/2 stream, an HTTP/1.1 request. */
    protected readonly exchange: X,
    readonly req: UnaryRequest<I, O>,
    readonly wire: UnaryClientWire,
    readonly limits: UnaryLimits,
    private readonly end: CallEnd<O>,
  ) {
    super(noop);
  }

  /** The call's abort state fired (AbortListener): the caller's cancel, the deadline, or the end. */
  abortWith(reason: unknown): void {
    this.fail(reason);
  }

  protected override rejected(error: ConnectError): void {
    this.end.fail(error);
  }

  /**
   * The response's status and headers are in: the body's reader, or the
   * call fails with the error they carry.
   */
  respond(status: number, h: http2.IncomingHttpHeaders): void {
    try {
      this.reader = this.wire.response(status, h, this.limits);
    } catch (e) {
      this.fail(e);
    }
  }

  /** A chunk of the body, for the reader. */
  data(chunk: Uint8Array): void {
    const reader = this.reader;
    if (reader === undefined || this.settled) return;
    try {
      reader.push(chunk);
    } catch (e) {
      this.fail(e);
    }
  }

  /**
   * The body ended, whole as far as the HTTP layer tells (the reader is
   * there): the response is completed, unless the body is short of the
   * length its headers promised, which returns false for the caller to
   * fail the call as cut. A short body is taken as a cut connection, which
   * a caller may retry, not as the server's protocol error (connect-es'
   * InvalidArgument): node can end the readable side with no reset code
   * before it marks the session gone, and CI saw exactly that, twice, as
   * "promised 41 bytes, received 0" for a Go plugin SIGKILLed mid-answer.
   * A server that really sends a short body is rarer.
   */
  ended(): boolean {
    if (this.settled) return true;
    const reader = this.reader as UnaryBodyReader;
    if (reader.cutShort()) return false;
    this.complete(reader);
    return true;
  }

  /** The body and trailers are in: the response, or the error they carry. */
  private complete(reader: UnaryBodyReader): void {
    this.finished = true;
    this.unsubscribe();
    let result: UnaryResult<O> | Promise<UnaryResult<O>>;
    try {
      // Only the message is read unless the response goes to unary()'s
      // promise (see CallTarget.unaryTo).
      result = reader.finish(
        this.req.method.output,
        this.trailer,
        !(this.end instanceof PromiseEnd),
      );
    } catch (e) {
      this.reject(e);
      return;
    }
    if (result instanceof Promise)
      result.then(
        (r) => this.deliver(r),
        (e: unknown) => this.reject(e),
      );
    else this.deliver(result);
  }

  private deliver(res: UnaryResult<O>): void {
    if (this.settle()) this.end.ok(res);
  }

  private reject(e: unknown): void {
    if (this.settle()) this.end.fail(ConnectError.from(e));
  }
}
