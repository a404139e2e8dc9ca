/** src/resilience/attempt.ts: raceDeadline, the wait a cluster call makes before its first attempt. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { Code, ConnectError } from "@connectrpc/connect";
import { raceDeadline } from "../../../src/resilience/attempt.js";

const never = new Promise<void>(() => {});

test("resolves with the promise and leaves no listener on the caller's signal", async () => {
  const controller = new AbortController();
  await raceDeadline(Promise.resolve(), Date.now() + 60_000, controller.signal);
  assert.equal(getEventListeners(controller.signal, "abort").length, 0);
});

test("fails at the deadline with DeadlineExceeded naming what it waited for", async () => {
  const controller = new AbortController();
  await assert.rejects(
    raceDeadline(never, Date.now() + 20, controller.signal, "an instance's Handshake"),
    (e: unknown) => {
      assert.ok(e instanceof ConnectError);
      assert.equal(e.code, Code.DeadlineExceeded);
      assert.equal(e.rawMessage, "deadline exceeded while waiting for an instance's Handshake");
      return true;
    },
  );
  assert.equal(getEventListeners(controller.signal, "abort").length, 0);
});

test("fails with the caller's cancellation when the signal aborts during the wait", async () => {
  const controller = new AbortController();
  const waiting = raceDeadline(never, Date.now() + 60_000, controller.signal);
  controller.abort(new ConnectError("caller gave up", Code.Canceled));
  await assert.rejects(waiting, (e: unknown) => {
    assert.ok(e instanceof ConnectError);
    assert.equal(e.code, Code.Canceled);
    assert.equal(e.rawMessage, "caller gave up");
    return true;
  });
  assert.equal(getEventListeners(controller.signal, "abort").length, 0);
});

test("a signal aborted before the wait fails it at once, not at the deadline", async () => {
  const controller = new AbortController();
  controller.abort(new ConnectError("already cancelled", Code.Canceled));
  const outcome = await Promise.race([
    raceDeadline(never, Date.now() + 60_000, controller.signal).then(
      () => "resolved",
      (e: unknown) => ConnectError.from(e).code,
    ),
    new Promise((resolve) => setImmediate(resolve, "still waiting")),
  ]);
  assert.equal(outcome, Code.Canceled);
});
