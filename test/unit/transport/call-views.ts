/**
 * What a caller can observe of a call's outcome, in a form deepEqual
 * compares: the differential tests (lean paths against connect-es'
 * transports) hold both sides to the same views.
 */
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";

/** Headers as sorted pairs, without `date` (which differs between two answers). */
export function pairs(h: Headers): string[] {
  const out: string[] = [];
  h.forEach((v, k) => {
    if (k !== "date") out.push(`${k}: ${v}`);
  });
  return out.sort();
}

/** A ConnectError's code, message, details and metadata. */
export function errorView(e: unknown): {
  code: string;
  message: string;
  details: unknown[];
  metadata: string[];
} {
  assert.ok(e instanceof ConnectError, `not a ConnectError: ${String(e)}`);
  return {
    code: Code[e.code],
    message: e.message,
    details: e.details.map((d) =>
      "desc" in d ? { type: d.desc.typeName } : { type: d.type, value: [...d.value] },
    ),
    metadata: pairs(e.metadata),
  };
}
