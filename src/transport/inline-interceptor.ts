import type { DescService } from "@bufbuild/protobuf";
import type { ConnectError, Interceptor } from "@connectrpc/connect";
import type { AbortView, CallAbort } from "./lazy-abort.js";
import { signalBlind } from "./signal-view.js";

/**
 * An interceptor that the CallRunner may run inline, without the closures
 * and promise hop of an interceptor: when it is a client's only one, the
 * runner calls `begin` where the interceptor would have run, hands the
 * target a request carrying the abort state it returns, and reports the
 * outcome to it, all in the one `.then` the runner has anyway
 * (docs/http2-client.md, session 14). Every other transport (and a runner
 * with more interceptors) runs the same object as a plain interceptor, so
 * the two must behave alike: CallGuard is the one implementation.
 */
export interface InlineInterceptor {
  /**
   * Starts a call to `service` whose abort state is `caller`: the call's
   * state (see InlineCall), undefined when the interceptor lets this call
   * pass untouched, or the error it refuses the call with (nothing sent).
   */
  begin(service: DescService, caller: AbortView): InlineCall | ConnectError | undefined;
}

/** One call started by an InlineInterceptor. */
export interface InlineCall {
  /** The abort state the target is to see, when the interceptor gives the call its own. */
  readonly state: CallAbort | undefined;
  /** The call succeeded (or, for a stream, ended). */
  ended(): void;
  /** The call failed with `error`: ends it, and resolves to the error the caller is to see. */
  failed(error: unknown): Promise<unknown>;
}

/** Where an interceptor function carries its InlineInterceptor. */
export const INLINE = Symbol("connect-plugin.inline-interceptor");

/** An interceptor function that can also run inline. */
export type InlinableInterceptor = Interceptor & { readonly [INLINE]: InlineInterceptor };

/**
 * `interceptor`, marked as runnable inline through `inline`, and as
 * signal-blind: inline, it sees the call's state only as an AbortView.
 */
export function inlinable(
  interceptor: Interceptor,
  inline: InlineInterceptor,
): InlinableInterceptor {
  return signalBlind(Object.assign(interceptor, { [INLINE]: inline }));
}

/** The InlineInterceptor behind `interceptor`, if it has one. */
export function inlineOf(interceptor: Interceptor | undefined): InlineInterceptor | undefined {
  return (interceptor as Partial<InlinableInterceptor> | undefined)?.[INLINE];
}
