import type {
  DescMessage,
  DescMethodBiDiStreaming,
  DescMethodServerStreaming,
  DescService,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";
import {
  createClient,
  type CallOptions,
  type Client,
  type StreamResponse,
  type Transport,
} from "@connectrpc/connect";
import { createAsyncIterable } from "@connectrpc/connect/protocol";

/**
 * connect-es' createClient(), with server-streaming and bidi methods whose
 * response iterable is a plain iterator: one promise per message. connect-es
 * hands the messages through an async generator compiled down to ES2017
 * (`__asyncGenerator`, `__asyncDelegator`): four or five promises per
 * message, a tenth of the host's CPU on a 16-byte server stream over the
 * framed transport. Everything else is connect-es' own: the request goes
 * through `transport.stream()` as it is made, onHeader and onTrailer are
 * called as there, and the iterable has no `return`/`throw` (as there:
 * leaving a `for await` early does not cancel the call; the signal does).
 * After the end or an error, next() answers done, as a finished generator.
 */
export function createServiceClient<T extends DescService>(
  service: T,
  transport: Transport,
): Client<T> {
  const client = createClient(service, transport) as Record<string, unknown>;
  for (const method of service.methods) {
    const kind = method.methodKind;
    if (kind !== "server_streaming" && kind !== "bidi_streaming") continue;
    const streaming = method as DescMethodServerStreaming | DescMethodBiDiStreaming;
    client[method.localName] =
      kind === "server_streaming"
        ? (input: MessageInitShape<DescMessage>, options?: CallOptions) =>
            responseStream(
              open(transport, streaming, createAsyncIterable([input]), options),
              options,
            )
        : (request: AsyncIterable<MessageInitShape<DescMessage>>, options?: CallOptions) =>
            responseStream(open(transport, streaming, request, options), options);
  }
  return client as Client<T>;
}

function open(
  transport: Transport,
  method: DescMethodServerStreaming | DescMethodBiDiStreaming,
  request: AsyncIterable<MessageInitShape<DescMessage>>,
  options: CallOptions | undefined,
): Promise<StreamResponse<DescMessage, DescMessage>> {
  return transport.stream(
    method,
    options?.signal,
    options?.timeoutMs,
    options?.headers,
    request,
    options?.contextValues,
  );
}

function responseStream(
  response: Promise<StreamResponse<DescMessage, DescMessage>>,
  options: CallOptions | undefined,
): AsyncIterable<MessageShape<DescMessage>> {
  const stream = new ResponseStream(response, options);
  return { [Symbol.asyncIterator]: () => ({ next: () => stream.next() }) };
}

type Result = IteratorResult<MessageShape<DescMessage>>;
const DONE: Result = Object.freeze({ done: true, value: undefined });

/** The messages of one streaming call, read through one iterator however many are asked for. */
class ResponseStream {
  private it: AsyncIterator<MessageShape<DescMessage>> | undefined;
  private trailer: Headers | undefined;
  private finished = false;
  /** A next() has not settled yet: later ones wait for it, as a generator's do. */
  private busy = false;
  private waiting: (() => void)[] | undefined;

  constructor(
    private readonly response: Promise<StreamResponse<DescMessage, DescMessage>>,
    private readonly options: CallOptions | undefined,
  ) {}

  next(): Promise<Result> {
    if (this.busy) {
      return new Promise<void>((resolve) => (this.waiting ??= []).push(resolve)).then(() =>
        this.next(),
      );
    }
    if (this.finished) return Promise.resolve(DONE);
    this.busy = true;
    const it = this.it;
    if (it === undefined) return this.response.then(this.begin, this.failed);
    return it.next().then(this.got, this.failed);
  }

  private readonly begin = (res: StreamResponse<DescMessage, DescMessage>): Promise<Result> => {
    try {
      this.options?.onHeader?.(res.header);
      this.trailer = res.trailer;
      this.it = res.message[Symbol.asyncIterator]();
      return this.it.next().then(this.got, this.failed);
    } catch (error) {
      return this.failed(error);
    }
  };

  private readonly got = (r: Result): Result => {
    this.idle();
    if (r.done !== true) return r;
    this.finished = true;
    this.options?.onTrailer?.(this.trailer as Headers);
    return DONE;
  };

  private readonly failed = (error: unknown): never => {
    this.idle();
    this.finished = true;
    throw error;
  };

  private idle(): void {
    this.busy = false;
    this.waiting?.shift()?.();
  }
}
