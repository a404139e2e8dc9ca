import assert from "node:assert/strict";
import { ManagementError, type ManagementErrorKind } from "../../src/manifest/errors.js";

/** `fn` must throw a ManagementError of this kind with exactly this message. */
export function failsWith(fn: () => unknown, kind: ManagementErrorKind, message: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ManagementError, String(e));
    assert.equal(e.kind, kind);
    assert.equal(e.message, message);
    return true;
  });
}
