import type { DescMessage, DescMethodUnary, MessageShape } from "@bufbuild/protobuf";
import type { HandlerContext, Interceptor, UnaryRequest, UnaryResponse } from "@connectrpc/connect";
import { applyInterceptors, normalize } from "./call-support.js";
import type { CallContext } from "./handler-context.js";
import { CALL_ABORT, LazyRequest } from "./lazy-abort.js";

/** The parts of connect-es' unary handler spec that the framed and direct servers call. */
export interface UnarySpec {
  readonly method: DescMethodUnary;
  impl(req: unknown, ctx: HandlerContext): unknown;
}

/**
 * Runs a unary implementation under the plugin's interceptors, as connect-es'
 * invokeUnaryImplementation does, but without reading the context's signal:
 * the request it gives interceptors has a lazy `signal` getter, and when no
 * interceptor replaced the request, the handler gets `ctx` itself rather
 * than a copy (a copy would create the signal). Resolves to the normalized
 * output message; the response headers and trailers end up in `ctx`.
 */
export async function invokeUnary(
  spec: UnarySpec,
  ctx: CallContext,
  input: unknown,
  interceptors: readonly Interceptor[],
): Promise<unknown> {
  const output = spec.method.output;
  if (interceptors.length === 0) {
    return normalize(output, (await spec.impl(input, ctx)) as MessageShape<DescMessage>);
  }
  const req = new LazyRequest(
    ctx[CALL_ABORT],
    false,
    spec.method.parent,
    spec.method,
    ctx.url,
    ctx.requestHeader,
    ctx.values,
    input,
  ) as unknown as UnaryRequest;
  const anyFn = async (r: UnaryRequest): Promise<UnaryResponse> => {
    // An interceptor that passed a request of its own (other headers, another
    // signal) has the handler see it, as in connect-es.
    const handlerCtx: HandlerContext =
      r === req
        ? ctx
        : {
            ...ctx,
            service: r.service,
            requestHeader: r.header,
            // A copy of the request may lack the lazy signal getter.
            signal: (r as Partial<UnaryRequest>).signal ?? ctx.signal,
            values: r.contextValues,
          };
    return {
      stream: false,
      service: spec.method.parent,
      method: spec.method,
      header: ctx.responseHeader,
      message: normalize(output, (await spec.impl(r.message, handlerCtx)) as never),
      trailer: ctx.responseTrailer,
    };
  };
  const res = await applyInterceptors(anyFn, interceptors)(req);
  copyHeaders(res.header, ctx.responseHeader);
  copyHeaders(res.trailer, ctx.responseTrailer);
  return res.message;
}

function copyHeaders(from: Headers, to: Headers): void {
  if (from === to) return;
  to.forEach((_, key) => to.delete(key));
  from.forEach((value, key) => to.set(key, value));
}
