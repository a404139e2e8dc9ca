/**
 * The call tracker's interceptor on unary calls run by invokeUnary (the
 * lean HTTP/2 path, the framed server, the direct transport): outermost,
 * it adds no promise hop of its own (withOuterUnary, invoke.ts;
 * docs/http2-server.md, session 26), and counts, refuses and explains
 * errors as it does anywhere else.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Code, ConnectError, createContextValues, type Interceptor } from "@connectrpc/connect";
import { KV } from "../../../examples/kv/gen/example/kv/v1/kv_pb.js";
import { CallTracker } from "../../../src/plugin/call-tracker.js";
import { ContextFactory } from "../../../src/transport/handler-context.js";
import { invokeUnary, type UnarySpec } from "../../../src/transport/invoke.js";

const method = KV.method.get;
const newCtx = () =>
  new ContextFactory().create({
    service: KV,
    method,
    protocolName: "test",
    url: "/example.kv.v1.KV/Get",
    timeoutMs: undefined,
    requestHeader: new Headers(),
    contextValues: createContextValues(),
  });
const answers: UnarySpec = { method, impl: () => ({ found: true }) };
const passThrough: Interceptor = (next) => (req) => next(req);

/** How many microtask turns `promise` takes to settle. */
async function turns(promise: Promise<unknown>): Promise<number> {
  let settled = false;
  const done = (): void => {
    settled = true;
  };
  promise.then(done, done);
  let n = 0;
  while (!settled) {
    await Promise.resolve();
    n++;
  }
  return n;
}

test("outermost on a unary call, the tracker takes no more microtask turns than a pass-through interceptor", async () => {
  const tracker = new CallTracker(new Set(), new AbortController().signal);
  const bare = await turns(invokeUnary(answers, newCtx(), { key: "k" }, [passThrough]));
  const tracked = await turns(invokeUnary(answers, newCtx(), { key: "k" }, [tracker.interceptor]));
  assert.equal(tracked, bare);
});

test("outermost on a unary call, the tracker counts the call until its context ends, and explains errors", async () => {
  const stopped = new AbortController();
  const tracker = new CallTracker(new Set(), stopped.signal);
  const ctx = newCtx();
  const out = invokeUnary(answers, ctx, { key: "k" }, [tracker.interceptor]);
  assert.equal(tracker.inFlight, 1);
  await out;
  ctx.abort(new ConnectError("done", Code.Canceled));
  assert.equal(tracker.inFlight, 0);

  // A non-Error thrown by the handler becomes a ConnectError, as the tracker's map does.
  const throwsString: UnarySpec = {
    method,
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- a non-Error on purpose
    impl: () => Promise.reject("plain string"),
  };
  for (const interceptors of [[tracker.interceptor], [passThrough, tracker.interceptor]]) {
    await assert.rejects(invokeUnary(throwsString, newCtx(), { key: "k" }, interceptors), (e) => {
      assert.ok(e instanceof ConnectError);
      assert.match(e.message, /plain string/);
      return true;
    });
  }
  // After the grace period, a failing call fails with the stop's reason.
  stopped.abort(new ConnectError("plugin stopped", Code.Unavailable));
  await assert.rejects(invokeUnary(throwsString, newCtx(), { key: "k" }, [tracker.interceptor]), {
    message: /plugin stopped/,
  });
});

test("outermost on a unary call, an exempt service's errors pass as they are, and a draining tracker refuses", async () => {
  const stopped = new AbortController();
  const tracker = new CallTracker(new Set([KV.typeName]), stopped.signal);
  const throwsString: UnarySpec = {
    method,
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- a non-Error on purpose
    impl: () => Promise.reject("plain string"),
  };
  await assert.rejects(
    invokeUnary(throwsString, newCtx(), { key: "k" }, [tracker.interceptor]),
    (e) => {
      assert.equal(e, "plain string");
      return true;
    },
  );
  assert.equal(tracker.inFlight, 0);

  const counted = new CallTracker(new Set(), stopped.signal);
  await counted.drain(0);
  stopped.abort(new ConnectError("plugin stopped", Code.Unavailable));
  let ran = false;
  const runs: UnarySpec = {
    method,
    impl: () => {
      ran = true;
      return {};
    },
  };
  // The refusal as it is: not replaced by the stop's reason.
  await assert.rejects(invokeUnary(runs, newCtx(), { key: "k" }, [counted.interceptor]), {
    message: /plugin is shutting down and takes no new calls \(example\.kv\.v1\.KV\/Get\)/,
  });
  assert.equal(ran, false);
});
