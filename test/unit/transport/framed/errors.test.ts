/**
 * src/transport/framed/errors.ts: what a handler's failure becomes on the wire.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { callDone } from "../../../../src/transport/call-support.js";
import { errorToWire, handlerError } from "../../../../src/transport/framed/errors.js";

// A handler that waits through a Node API (events.on(..., { signal })) rejects
// with a plain AbortError when its call's deadline fires on the plugin side.
const nodeAbortError = Object.assign(new Error("The operation was aborted"), {
  name: "AbortError",
});

test("a plain exception becomes 'internal error', hiding its message", () => {
  const e = handlerError(new Error("secret detail"));
  assert.equal(e.code, Code.Internal);
  assert.equal(e.rawMessage, "internal error");
});

test("a ConnectError from the handler keeps its code and message", () => {
  const e = handlerError(new ConnectError("no such key", Code.NotFound));
  assert.equal(e.code, Code.NotFound);
  assert.equal(e.rawMessage, "no such key");
});

test("the call's own deadline wins over the AbortError it caused", () => {
  const deadline = new ConnectError("the operation timed out", Code.DeadlineExceeded);
  const e = handlerError(nodeAbortError, { aborted: true, reason: deadline });
  assert.equal(e.code, Code.DeadlineExceeded);
  assert.equal(errorToWire(nodeAbortError, { aborted: true, reason: deadline }).wire.c, 4);
});

test("a call that completed normally does not turn a later error into Canceled", () => {
  const e = handlerError(nodeAbortError, { aborted: true, reason: callDone() });
  assert.equal(e.code, Code.Internal);
});

test("an own signal that has not fired changes nothing", () => {
  const e = handlerError(nodeAbortError, { aborted: false, reason: undefined });
  assert.equal(e.code, Code.Internal);
});
