/**
 * src/transport/framed/errors.ts: what a handler's failure becomes on the wire.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorToWire, handlerError } from "../../../../src/transport/framed/errors.js";

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

test("an error thrown after the call's deadline is the handler's, as on connect-es' path", () => {
  // A handler that waits through a Node API (events.on(..., { signal })) rejects
  // with a plain AbortError when its call's deadline fires on the plugin side.
  const nodeAbortError = Object.assign(new Error("The operation was aborted"), {
    name: "AbortError",
  });
  assert.equal(handlerError(nodeAbortError).code, Code.Internal);
  const own = new ConnectError("gave up", Code.Unavailable);
  assert.equal(handlerError(own), own);
  assert.equal(errorToWire(own).wire.c, Code.Unavailable);
});
