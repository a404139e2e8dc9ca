/**
 * CallGuard's bookkeeping of calls in flight (begin() as a CallRunner runs
 * it inline, and as its interceptor does): each call's own abort state,
 * following the caller's, close() failing the calls in flight in the order
 * they began and no call that ended, drain() and the idle wake, the
 * caller's listener removed when a call ends, and no state of its own where
 * the transport fails calls itself (ownSignals false).
 */
import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { CallGuard } from "../../../src/host/call-guard.js";
import { HostCallbacks } from "../../../src/gen/connectplugin/v1/host_callbacks_pb.js";
import type { InlineCall } from "../../../src/transport/inline-interceptor.js";
import { CallAbort, abortOf, type AbortView } from "../../../src/transport/lazy-abort.js";
import { KV } from "../../../examples/kv/gen/example/kv/v1/kv_pb.js";

const healthy = (): boolean => false;

/** begin() for a KV call whose caller's state is `caller`: the call, which the guard must start. */
function begin(guard: CallGuard, caller: AbortView = new CallAbort()): InlineCall {
  const started = guard.begin(KV, caller);
  assert.ok(started !== undefined && !(started instanceof Error), "the call starts");
  return started;
}

/** The abort reasons `state` is told, as they come. */
function told(state: CallAbort | undefined): unknown[] {
  const seen: unknown[] = [];
  assert.ok(state !== undefined, "the call has its own abort state");
  state.listen((reason) => seen.push(reason));
  return seen;
}

/** Whether `p` settled within a turn of the event loop. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  await new Promise((r) => setImmediate(r));
  return done;
}

describe("CallGuard's calls in flight", () => {
  test("close() aborts every call in flight with Unavailable, in the order they began, and no call that ended", async () => {
    const guard = new CallGuard("p", healthy);
    const calls = [begin(guard), begin(guard), begin(guard), begin(guard)];
    const order: number[] = [];
    const reasons: unknown[] = [];
    calls.forEach((call, i) =>
      call.state?.listen((reason) => {
        order.push(i);
        reasons.push(reason);
      }),
    );
    calls[1]?.ended();
    guard.close();
    assert.deepEqual(order, [0, 2, 3]);
    for (const reason of reasons) {
      assert.ok(reason instanceof ConnectError);
      assert.equal(reason.code, Code.Unavailable);
      assert.equal(reason.rawMessage, "plugin p was closed");
    }
    assert.equal(calls[1]?.state?.aborted, false);
    // Their failures read as closed, the error seen kept as the cause.
    const seen = new ConnectError("stream closed", Code.Canceled);
    const out = await calls[0]?.failed(seen);
    assert.ok(out instanceof ConnectError);
    assert.equal(out.code, Code.Unavailable);
    assert.equal(out.rawMessage, "plugin p was closed");
    assert.equal(out.cause, seen);
    // Later calls are refused with the same message.
    const refused = guard.begin(KV, new CallAbort());
    assert.ok(refused instanceof ConnectError);
    assert.equal(refused.code, Code.Unavailable);
    assert.equal(refused.rawMessage, "plugin p was closed");
  });

  test("a call that ends while close() runs (its abort ends another) is not aborted after it ended", () => {
    const guard = new CallGuard("p", healthy);
    const first = begin(guard);
    const second = begin(guard);
    const secondTold = told(second.state);
    // Aborting the first ends the second, as a transport failing both might.
    first.state?.listen(() => second.ended());
    guard.close();
    assert.equal(first.state?.aborted, true);
    assert.deepEqual(secondTold, []);
  });

  test("a call follows its caller's state: cancel, deadline and completion abort it with the caller's reason and end it", async () => {
    const guard = new CallGuard("p", healthy);
    const caller = new CallAbort();
    const call = begin(guard, caller);
    const seen = told(call.state);
    assert.notEqual(call.state, caller, "its own state, which close() can abort");
    const reason = new ConnectError("the operation timed out", Code.DeadlineExceeded);
    caller.abort(reason);
    assert.deepEqual(seen, [reason]);
    // It ended: nothing in flight, and close() does not touch it.
    assert.equal(await settled(guard.drain(60_000)), true);
    guard.close();
    assert.deepEqual(seen, [reason]);
  });

  test("a caller already aborted: the call starts aborted with its reason, and is not in flight", async () => {
    const guard = new CallGuard("p", healthy);
    const caller = new CallAbort();
    const reason = new ConnectError("cancelled", Code.Canceled);
    caller.abort(reason);
    const call = begin(guard, caller);
    assert.equal(call.state?.aborted, true);
    assert.equal(call.state?.reason, reason);
    assert.equal(await settled(guard.drain(60_000)), true);
  });

  test("a caller's AbortSignal (an interceptor's own): followed, and its listener removed when the call ends", async () => {
    const guard = new CallGuard("p", healthy);
    const ac = new AbortController();
    const call = begin(guard, abortOf({ signal: ac.signal }));
    assert.equal(getEventListeners(ac.signal, "abort").length, 1);
    call.ended();
    assert.equal(getEventListeners(ac.signal, "abort").length, 0);
    ac.abort(new Error("late"));
    assert.equal(call.state?.aborted, false, "an ended call no longer follows");

    const ac2 = new AbortController();
    const call2 = begin(guard, abortOf({ signal: ac2.signal }));
    const seen = told(call2.state);
    const reason = new Error("stop");
    ac2.abort(reason);
    assert.deepEqual(seen, [reason]);
    assert.equal(getEventListeners(ac2.signal, "abort").length, 0);
    assert.equal(await settled(guard.drain(60_000)), true);
  });

  test("drain() waits for the last call in flight, counting ended() and failed() once each", async () => {
    const guard = new CallGuard("p", healthy);
    assert.equal(await settled(guard.drain(60_000)), true, "nothing in flight");
    const a = begin(guard);
    const b = begin(guard);
    const drained = guard.drain(60_000);
    a.ended();
    a.ended();
    await a.failed(new Error("after the end"));
    assert.equal(await settled(drained), false, "b is still in flight");
    const seen = new Error("broke");
    assert.equal(await b.failed(seen), seen, "a healthy connection: the error passes");
    assert.equal(await settled(drained), true);
    // drain() gives up after its time with a call still in flight.
    begin(guard);
    const t0 = performance.now();
    await guard.drain(20);
    assert.ok(performance.now() - t0 >= 15);
  });

  test("ownSignals false (the transport fails its calls itself): no state of the call's own, close() aborts nothing, drain still counts", async () => {
    const guard = new CallGuard("p", healthy, undefined, true, false);
    const caller = new CallAbort();
    const call = begin(guard, caller);
    assert.equal(call.state, undefined);
    let callerTold = 0;
    caller.listen(() => callerTold++);
    guard.close();
    assert.equal(callerTold, 0, "the caller's state is not the guard's to abort");
    const drained = guard.drain(60_000);
    assert.equal(await settled(drained), false);
    caller.abort(new ConnectError("done", Code.Canceled));
    assert.equal(await settled(drained), true, "the caller's abort ended the call");
  });

  test("the host's callback tunnel is not a call: begin() lets it pass", () => {
    const guard = new CallGuard("p", healthy);
    assert.equal(guard.begin(HostCallbacks, new CallAbort()), undefined);
  });
});
