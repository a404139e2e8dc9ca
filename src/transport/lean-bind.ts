import { AsyncResource } from "node:async_hooks";
import type * as http2 from "node:http2";

/**
 * `session.request(headers)` with
 * AsyncResource.prototype.bind swapped for one that makes no `asyncResource`
 * accessor, and puts node's back before returning (or throwing) unless
 * other code replaced ours meanwhile.
 *
 * Why: node:http2's request() (Node 20) binds each stream's connect
 * callback with `AsyncResource.bind`, which defines the deprecated
 * `asyncResource` accessor (DEP0172) from two `deprecate()` wrappers, each
 * given a new prototype. Their new maps live in the old generation, which a
 * scavenge treats as roots, and the accessor's closure context holds the
 * bound callback, whose `this` is the stream: so every stream's whole graph
 * (its states, sent headers, listeners) survived its first scavenge and was
 * promoted, 3.0-3.5 KB per call, until a mark-compact
 * (docs/http2-client.md, session 27). request() never reads the accessor;
 * the callback is called as node's bind calls it, in the resource's async
 * scope (its `length` is 0 and its name "", where node's has `fn`'s
 * length and "bound": request() reads neither). Only code that runs inside
 * request() sees the swap (async_hooks `init` hooks of its resources): a
 * function such code binds has no deprecated accessor either. This relies
 * on node's internals (no public API avoids the accessor): where request()
 * binds otherwise or node's bind has no accessor, the swap saves nothing
 * and changes nothing. When AsyncResource.prototype.bind is not the one
 * found when this module loaded (other code, an APM say, replaced it
 * since) or is read-only, nothing is swapped; one replaced before is
 * taken for node's and bypassed here.
 */
export function requestLeanBound(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
): http2.ClientHttp2Stream {
  const proto = AsyncResource.prototype as { bind: Bind };
  // Someone else's bind (an APM's, say), ours already (a request made
  // from inside one) or a read-only one (a frozen prototype, where an
  // assignment would throw): left as it is.
  if (proto.bind !== nodeBind || !Reflect.set(proto, "bind", leanBind)) {
    return session.request(headers);
  }
  try {
    return session.request(headers);
  } finally {
    // A bind put there meanwhile (by an init hook, say) stays.
    if (proto.bind === leanBind) proto.bind = nodeBind;
  }
}

type Fn = (this: unknown, ...args: unknown[]) => unknown;
type Bind = (this: AsyncResource, fn: Fn, thisArg?: unknown) => Fn;

/** node's own bind, taken when this module loads (before any swap). */
const nodeBind = (AsyncResource.prototype as { bind: Bind }).bind;

/** AsyncResource.prototype.bind without the deprecated accessor (node's own for a `thisArg` or a non-function). */
function leanBind(this: AsyncResource, fn: Fn, thisArg?: unknown): Fn {
  if (thisArg !== undefined || typeof fn !== "function") return nodeBind.call(this, fn, thisArg);
  return boundIn(this, fn);
}

/** `fn` called in `resource`'s async scope with the caller's `this`, as node's bind calls it. */
function boundIn(resource: AsyncResource, fn: Fn): Fn {
  return function (this: unknown, ...args: unknown[]): unknown {
    return resource.runInAsyncScope(fn, this, ...args);
  };
}
