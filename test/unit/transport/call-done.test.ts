/**
 * callDone(), the shared abort reason of finished calls, is made without
 * ConnectError's constructor (whose `new Headers()` would load undici):
 * it must look like the ConnectError that constructor makes.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { callDone } from "../../../src/transport/call-support.js";

test("callDone() has the own properties, prototype and text of new ConnectError(...)", () => {
  const done = callDone();
  const made = new ConnectError("call completed", Code.Canceled);
  assert.equal(callDone(), done, "one shared reason");
  assert.ok(done instanceof ConnectError);
  assert.ok(done instanceof Error);
  assert.equal(Object.getPrototypeOf(done), ConnectError.prototype);
  assert.deepEqual(Reflect.ownKeys(done), Reflect.ownKeys(made));
  for (const key of Reflect.ownKeys(made)) {
    if (key === "stack" || key === "metadata") continue;
    assert.deepEqual(
      Object.getOwnPropertyDescriptor(done, key),
      Object.getOwnPropertyDescriptor(made, key),
      String(key),
    );
  }
  assert.equal(String(done), String(made));
  assert.equal(done.stack?.split("\n")[0], made.stack?.split("\n")[0]);
  // As from the constructor, the stack starts where the error was made
  // (callDone), with no frame of the code that builds it.
  assert.match(done.stack?.split("\n")[1] ?? "", /^ {4}at callDone \(/, done.stack);
  assert.deepEqual([...done.metadata], [...made.metadata]);
  assert.equal(ConnectError.from(done), done);
  assert.equal(done.findDetails.length, made.findDetails.length);
});
