import type { DescService } from "@bufbuild/protobuf";
import { createClient, type CallOptions, type Client, type Transport } from "@connectrpc/connect";

/**
 * connect-es' `createClient`, except that leaving a stream early cancels it.
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
 */
export function createStreamCancellingClient<T extends DescService>(
  service: T,
  transport: Transport,
): Client<T> {
  const client = createClient(service, transport);
  const methods = client as unknown as Record<string, unknown>;
  for (const method of service.methods) {
    if (method.methodKind !== "server_streaming" && method.methodKind !== "bidi_streaming")
      continue;
    const call = methods[method.localName] as StreamingFn;
    methods[method.localName] = (input: unknown, options?: CallOptions) =>
      cancelOnReturn(call, input, options);
  }
  return client;
}

type StreamingFn = (input: unknown, options?: CallOptions) => AsyncIterable<unknown>;

/** Starts the call now, as connect-es does, with a signal that `return()` aborts. */
function cancelOnReturn(
  call: StreamingFn,
  input: unknown,
  options: CallOptions | undefined,
): AsyncIterable<unknown> {
  const left = new AbortController();
  const own = options?.signal;
  const signal = own === undefined ? left.signal : AbortSignal.any([own, left.signal]);
  const response = call(input, { ...options, signal });
  return {
    [Symbol.asyncIterator]: () => {
      const it = response[Symbol.asyncIterator]();
      let finished = false;
      return {
        next: async () => {
          const result = await it.next();
          if (result.done === true) finished = true;
          return result;
        },
        return: (value?: unknown) => {
          // Left early: cancel the call. (Read to its end, it is over already.)
          if (!finished) left.abort();
          finished = true;
          return Promise.resolve({ done: true as const, value });
        },
      };
    },
  };
}
