import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { callDone } from "../call-support.js";
import type { AbortView } from "../lazy-abort.js";

/** An error as it crosses the wire: code, message, details (type + base64 value). */
export interface WireError {
  readonly c: number;
  readonly m: string;
  readonly d?: [string, string][];
}

/** Encodes an error thrown by a handler (or an interceptor) for the wire. */
export function errorToWire(
  error: unknown,
  own?: Pick<AbortView, "aborted" | "reason">,
): { wire: WireError; metadata: Headers } {
  const ce = handlerError(error, own);
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
 * The error a handler's exception becomes. Like connect-node's handlers, only
 * a ConnectError keeps its message: anything else may carry internals the
 * caller should not see, and becomes "internal error". When the call's own
 * signal (`own`) ended it first, with its deadline or a cancel, that reason
 * wins: a handler that waits through a Node API (`events.on(..., {signal})`)
 * rejects with a plain AbortError, which must still reach the caller as
 * deadline_exceeded, as it does in every other location.
 */
export function handlerError(
  error: unknown,
  own?: Pick<AbortView, "aborted" | "reason">,
): ConnectError {
  if (own?.aborted && own.reason instanceof ConnectError && own.reason !== callDone()) {
    return own.reason;
  }
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
