import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues, type HandlerContext } from "@connectrpc/connect";
import { CALL_ABORT, CallAbort } from "./lazy-abort.js";

/** A HandlerContext that its server can abort (cancel, deadline, shutdown, completion). */
export interface CallContext extends HandlerContext {
  abort(reason?: unknown): void;
  /** The abort state behind `signal`, which is created only when read. */
  readonly [CALL_ABORT]: CallAbort;
}

/**
 * Makes the HandlerContext of each call for the framed and direct servers.
 * connect-es' createHandlerContext builds two AbortControllers per call and
 * links each to the shutdown signal; in Node 20 an AbortController costs
 * several µs, which is most of a local call's budget. Here a call gets one
 * only if its handler reads `ctx.signal` (see lazy-abort.ts), the deadline
 * is a plain timer, and shutdown walks the live calls.
 */
export class ContextFactory {
  private readonly live = new Set<CallContext>();

  constructor(private readonly shutdownSignal?: AbortSignal) {
    shutdownSignal?.addEventListener(
      "abort",
      () => {
        for (const ctx of [...this.live]) ctx.abort(shutdownSignal.reason);
      },
      { once: true },
    );
  }

  create(init: {
    service: DescService;
    method: DescMethod;
    protocolName: string;
    url: string;
    timeoutMs: number | undefined;
    requestHeader: Headers;
    contextValues: ContextValues;
  }): CallContext {
    const state = new CallAbort();
    const live = this.live;
    let timer: NodeJS.Timeout | undefined;
    const deadline = init.timeoutMs === undefined ? undefined : Date.now() + init.timeoutMs;
    const ctx: CallContext = {
      service: init.service,
      method: init.method,
      protocolName: init.protocolName,
      requestMethod: "POST",
      url: init.url,
      get signal() {
        return state.signal;
      },
      [CALL_ABORT]: state,
      timeoutMs: () => (deadline === undefined ? undefined : deadline - Date.now()),
      requestHeader: init.requestHeader,
      responseHeader: new Headers(),
      responseTrailer: new Headers(),
      values: init.contextValues,
      abort(reason?: unknown): void {
        if (timer !== undefined) clearTimeout(timer);
        live.delete(ctx);
        state.abort(reason);
      },
    };
    if (this.shutdownSignal?.aborted) {
      ctx.abort(this.shutdownSignal.reason);
      return ctx;
    }
    live.add(ctx);
    if (init.timeoutMs !== undefined) {
      const expire = (): void =>
        ctx.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded));
      if (init.timeoutMs <= 0) expire();
      else timer = setTimeout(expire, init.timeoutMs);
    }
    return ctx;
  }
}
