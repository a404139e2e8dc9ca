import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";

/** An error as it crosses the wire: code, message, details (type + base64 value). */
export interface WireError {
  readonly c: number;
  readonly m: string;
  readonly d?: [string, string][];
}

/** Encodes an error thrown by a handler (or an interceptor) for the wire. */
export function errorToWire(error: unknown): { wire: WireError; metadata: Headers } {
  const ce = handlerError(error);
  const details: [string, string][] = [];
  for (const detail of ce.details) {
    if ("desc" in detail) {
      const bytes = toBinary(detail.desc, create(detail.desc, detail.value));
      details.push([detail.desc.typeName, Buffer.from(bytes).toString("base64")]);
    } else {
      details.push([detail.type, Buffer.from(detail.value).toString("base64")]);
    }
  }
  return {
    wire: { c: ce.code, m: ce.rawMessage, ...(details.length > 0 && { d: details }) },
    metadata: ce.metadata,
  };
}

/**
 * The error a handler's exception becomes, as connect-es' handlers make it
 * in every case: only a ConnectError keeps its message (anything else may
 * carry internals the caller should not see, and becomes "internal
 * error"), also after the call's own deadline or cancel fired. What the
 * handler threw is what its caller gets, in every location: a handler
 * that wants deadline_exceeded throws `ctx.signal.reason`; a plain
 * AbortError from a Node API (`events.on(..., { signal })`) is "internal
 * error", as on connect-es' path, which serves every request the lean
 * paths do not take (JSON, compressed, GET, gRPC-web). Until session 17
 * the call's own abort reason won here, and the same late error reached
 * the caller as one code or the other depending on the request's encoding.
 * A host with a deadline of its own usually reports that deadline first,
 * but not always: the plugin's copy of the deadline can fire a little
 * before the host's (timers start from libuv's cached loop time), and its
 * answer then arrives first (gRPC hosts see the same race). Hence
 * docs/writing-a-plugin.md's advice to rethrow `ctx.signal.reason`.
 */
export function handlerError(error: unknown): ConnectError {
  return error instanceof ConnectError ? error : new ConnectError("internal error", Code.Internal);
}

/** Rebuilds the error on the receiving side, with the response metadata attached. */
export function errorFromWire(wire: unknown, metadata: Headers): ConnectError {
  if (typeof wire !== "object" || wire === null) {
    return new ConnectError("protocol error: malformed error from the peer", Code.Internal);
  }
  const { c, m, d } = wire as Partial<WireError>;
  const code = typeof c === "number" && c >= 1 && c <= 16 ? (c as Code) : Code.Unknown;
  const error = new ConnectError(typeof m === "string" ? m : "", code, metadata);
  if (Array.isArray(d)) {
    for (const [type, value] of d) {
      error.details.push({ type, value: new Uint8Array(Buffer.from(value, "base64")) });
    }
  }
  return error;
}
