import type {
  DescMessage,
  DescMethodBiDiStreaming,
  DescMethodServerStreaming,
  DescMethodUnary,
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
import { CallRunner } from "./run-call.js";

/**
 * connect-es' `createClient`, except that leaving a stream early cancels it,
 * and that a stream's messages come through a plain iterator.
 *
 * connect-es hands out the response of a server or bidi stream as an async
 * iterable without `return()` (promise-client.js: "to omit throw/return"), so
 * `break` (or a throw) inside `for await` stopped reading but left the call
 * running on both sides until the plugin ended it: a watch ran for ever,
 * its handler and buffers kept alive. Here the iterator's `return()`, which
 * `for await` calls whenever the loop is left early, aborts the call's
 * signal, as the caller's own `signal` would: the plugin's handler sees
 * Canceled. A stream read to its end is not touched; `options.signal`,
 * `timeoutMs`, `onHeader` and `onTrailer` keep their meaning.
 *
 * connect-es also reads the messages through an async generator compiled
 * down to ES2017 (`__asyncGenerator`, `__asyncDelegator`): four or five
 * promises per message, a tenth of the host's CPU on a 16-byte server
 * stream over the framed transport. Here it is one `.then` per message;
 * next() calls made before the last one settled are answered in order, and
 * after the end or an error next() answers done, as a finished generator.
 *
 * Unary methods are connect-es' own, minus its async function: a `.then` on
 * the transport's promise, one promise hop less per call (a tenth of an
 * in-process call, docs/in-process.md); same arguments, same outcome, a
 * throw from the transport or `onHeader`/`onTrailer` still a rejection. A
 * call without onHeader and onTrailer on our own CallRunner asks it for the
 * message alone (CallRunner.unaryMessage): no `.then` here, and on the
 * runner's lean path no response metadata made (docs/http2-client.md,
 * session 14).
 */
export function createStreamCancellingClient<T extends DescService>(
  service: T,
  transport: Transport,
): Client<T> {
  const client = createClient(service, transport);
  const methods = client as unknown as Record<string, unknown>;
  for (const method of service.methods) {
    const kind = method.methodKind;
    if (kind === "unary") {
      methods[method.localName] = (input: MessageInitShape<DescMessage>, options?: CallOptions) =>
        unary(transport, method as DescMethodUnary, input, options);
      continue;
    }
    if (kind !== "server_streaming" && kind !== "bidi_streaming") continue;
    const streaming = method as DescMethodServerStreaming | DescMethodBiDiStreaming;
    methods[method.localName] =
      kind === "server_streaming"
        ? (input: MessageInitShape<DescMessage>, options?: CallOptions) =>
            open(transport, streaming, createAsyncIterable([input]), options)
        : (request: AsyncIterable<MessageInitShape<DescMessage>>, options?: CallOptions) =>
            open(transport, streaming, request, options);
  }
  return client;
}

/** connect-es' unary call: the response's message, after onHeader and onTrailer. */
function unary(
  transport: Transport,
  method: DescMethodUnary,
  input: MessageInitShape<DescMessage>,
  options: CallOptions | undefined,
): Promise<MessageShape<DescMessage>> {
  if (
    transport instanceof CallRunner &&
    (options === undefined || (options.onHeader === undefined && options.onTrailer === undefined))
  ) {
    // Nothing but the message is read: the runner's own path for that.
    try {
      return transport.unaryMessage(
        method,
        options?.signal,
        options?.timeoutMs,
        // eslint-disable-next-line @typescript-eslint/no-unsafe-argument -- connect-es' HeadersInit (the DOM's) is Node's here
        options?.headers,
        input,
        options?.contextValues,
      );
    } catch (error) {
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the thrown error as it is
      return Promise.reject(error);
    }
  }
  let response: ReturnType<Transport["unary"]>;
  try {
    response = transport.unary(
      method,
      options?.signal,
      options?.timeoutMs,
      options?.headers,
      input,
      options?.contextValues,
    );
  } catch (error) {
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the thrown error as it is
    return Promise.reject(error);
  }
  if (options === undefined) return response.then(messageOf);
  return response.then((res) => {
    options.onHeader?.(res.header);
    options.onTrailer?.(res.trailer);
    return res.message;
  });
}

const messageOf = (res: {
  readonly message: MessageShape<DescMessage>;
}): MessageShape<DescMessage> => res.message;

/** Starts the call now, as connect-es does, with a signal that `return()` aborts. */
function open(
  transport: Transport,
  method: DescMethodServerStreaming | DescMethodBiDiStreaming,
  request: AsyncIterable<MessageInitShape<DescMessage>>,
  options: CallOptions | undefined,
): AsyncIterable<MessageShape<DescMessage>> {
  const left = new AbortController();
  const own = options?.signal;
  const signal = own === undefined ? left.signal : AbortSignal.any([own, left.signal]);
  const response = transport.stream(
    method,
    signal,
    options?.timeoutMs,
    options?.headers,
    request,
    options?.contextValues,
  );
  const stream = new ResponseStream(response, options, left);
  return {
    [Symbol.asyncIterator]: () => ({
      next: () => stream.next(),
      return: (value?: unknown) => stream.leave(value),
    }),
  };
}

type Result = IteratorResult<MessageShape<DescMessage>>;
const DONE: Result = Object.freeze({ done: true, value: undefined });

/** The messages of one streaming call, read through one iterator however many are asked for. */
class ResponseStream {
  private it: AsyncIterator<MessageShape<DescMessage>> | undefined;
  private trailer: Headers | undefined;
  /** Read to its end, failed, or left. */
  private finished = false;
  /** A next() has not settled yet: later ones wait for it, as a generator's do. */
  private busy = false;
  private waiting: (() => void)[] | undefined;

  constructor(
    private readonly response: Promise<StreamResponse<DescMessage, DescMessage>>,
    private readonly options: CallOptions | undefined,
    private readonly left: AbortController,
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

  /** Left early (`break`, a throw in the loop): cancel the call. Read to its end, it is over already. */
  leave(value?: unknown): Promise<Result> {
    if (!this.finished) {
      // Left before the first next(): nobody awaits the response, whose
      // rejection (this cancel) would otherwise be unhandled and end the process.
      if (this.it === undefined && !this.busy) this.response.catch(() => undefined);
      this.left.abort();
    }
    this.finished = true;
    return Promise.resolve({ done: true, value } as Result);
  }

  private readonly begin = (res: StreamResponse<DescMessage, DescMessage>): Promise<Result> => {
    try {
      this.options?.onHeader?.(res.header);
      this.trailer = res.trailer;
      this.it = res.message[Symbol.asyncIterator]();
      return this.it.next().then(this.got, this.failed);
    } catch (error) {
      // onHeader threw: the loop ends with its error, so the call must not run on.
      this.left.abort();
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
