/**
 * src/transport/signal-view.ts: requests and handler contexts show their
 * signal to user code as connect-es' own do (an own property, which a
 * spread copies), while the project's own (signal-blind) interceptors see
 * them as they are and no AbortSignal is made for them.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError, createContextValues, type Interceptor } from "@connectrpc/connect";
import { KV } from "../../../examples/kv/gen/example/kv/v1/kv_pb.js";
import { ContextFactory } from "../../../src/transport/handler-context.js";
import { invokeUnary } from "../../../src/transport/invoke.js";
import { CALL_ABORT, CallAbort, abortOf } from "../../../src/transport/lazy-abort.js";
import { newRequest } from "../../../src/transport/run-call.js";
import {
  applyInterceptors,
  handlerView,
  interceptedRequest,
  requestSignal,
  signalBlind,
  withCallState,
  withHeader,
} from "../../../src/transport/signal-view.js";
import { apiKeyAuth, bearerAuth } from "../../../src/security/auth.js";

type Req = { readonly signal: AbortSignal; readonly header: Headers };

function request(abort = new CallAbort()): Req {
  return newRequest(
    abort,
    false,
    KV,
    KV.method.get,
    "/example.kv.v1.KV/Get",
    new Headers(),
    createContextValues(),
    { key: "k" },
  );
}

/** Runs `interceptors` over a request of `abort`, ending in a target that returns what it got. */
function through(interceptors: Interceptor[], abort = new CallAbort()): Req {
  let seen: Req | undefined;
  const target = (r: Req): Promise<unknown> => {
    seen = r;
    return Promise.resolve({});
  };
  void applyInterceptors(target, interceptors)(request(abort));
  assert.ok(seen !== undefined);
  return seen;
}

const spread = (): Interceptor => (next) => (req) => next({ ...req });

test("a spread of an intercepted request keeps the call's signal, and abortOf still finds the call's state", () => {
  const abort = new CallAbort();
  const copy = { ...interceptedRequest(request(abort)) };
  assert.equal(copy.signal, abort.signal);
  assert.equal(abortOf(copy), abort, "the call's state, not a view over its signal");
  abort.abort(new ConnectError("cancelled", Code.Canceled));
  assert.equal(copy.signal.aborted, true);
});

test("interceptedRequest leaves a request that has an own signal, or no call state, as it is", () => {
  const own = { signal: new AbortController().signal };
  assert.equal(interceptedRequest(own), own);
  assert.equal(Object.getOwnPropertyDescriptor(own, "signal")?.value, own.signal, "still data");
  const plain = { header: new Headers() };
  assert.equal(interceptedRequest(plain), plain);
  assert.equal(Object.hasOwn(plain, "signal"), false);
});

test("a user interceptor's copy has the signal for the interceptors after it (it had none before)", () => {
  const abort = new CallAbort();
  let seen: AbortSignal | undefined;
  const reads: Interceptor = (next) => (req) => {
    seen = req.signal;
    return next(req);
  };
  through([spread(), reads], abort);
  assert.equal(seen, abort.signal);
});

test("a copy by a signal-blind interceptor (which has no signal) gets it before a user interceptor sees it", () => {
  const abort = new CallAbort();
  const blindSpread = signalBlind(spread());
  let seen: AbortSignal | undefined;
  const reads: Interceptor = (next) => (req) => {
    seen = { ...req }.signal;
    return next(req);
  };
  through([blindSpread, reads], abort);
  assert.equal(seen, abort.signal);
});

test("only signal-blind interceptors: no AbortSignal is made and no own signal is added", () => {
  const abort = new CallAbort();
  const blind = signalBlind<Interceptor>((next) => (req) => next(req));
  const seen = through([blind, signalBlind(spread())], abort);
  assert.equal(Object.hasOwn(seen, "signal"), false);
  assert.equal(abort.createdSignal, undefined, "no AbortSignal made");
  assert.equal(abortOf(seen), abort);
});

test("a user interceptor, then the project's header-adding ones: no AbortSignal is made, and the copy still has the call's signal", async () => {
  const passes: Interceptor = (next) => (req) => next(req);
  for (const [name, adds] of [
    ["bearerAuth", bearerAuth("t")],
    ["apiKeyAuth", apiKeyAuth("k")],
    [
      "withHeader",
      signalBlind<Interceptor>((next) => (req) => next(withHeader(req, new Headers({ x: "1" })))),
    ],
  ] as const) {
    const abort = new CallAbort();
    let seen: Req | undefined;
    const target = (r: Req): Promise<unknown> => {
      seen = r;
      return Promise.resolve({});
    };
    await applyInterceptors(target, [passes, adds])(request(abort));
    assert.ok(seen !== undefined, name);
    assert.equal(
      abort.createdSignal,
      undefined,
      `${name}: no AbortSignal made (a spread made one)`,
    );
    assert.equal(Object.hasOwn(seen, "signal"), true, `${name}: the copy keeps an own signal`);
    assert.notEqual([...seen.header.keys()].length, 0, `${name}: the header was added`);
    assert.equal(abortOf(seen), abort, `${name}: the call's state`);
    assert.equal(
      { ...seen }.signal,
      abort.signal,
      `${name}: a later spread still gets the call's signal`,
    );
  }
});

test("withHeader: the original request is not changed, and a request without a signal getter is spread", () => {
  const req = interceptedRequest(request());
  const header = new Headers({ a: "b" });
  const copy = withHeader(req, header);
  assert.equal(copy.header, header);
  assert.notEqual(req.header, header, "the original keeps its headers");
  const plain = { header: new Headers(), signal: new AbortController().signal };
  const spreadCopy = withHeader(plain, header);
  assert.equal(spreadCopy.signal, plain.signal);
  assert.equal(spreadCopy.header, header);
});

test("requestSignal: a copy without a signal (a signal-blind interceptor's) gives the call's", () => {
  const abort = new CallAbort();
  const req = request(abort);
  assert.equal(requestSignal({ ...req }), abort.signal);
  const own = new AbortController().signal;
  assert.equal(requestSignal({ ...req, signal: own }), own);
  // An interceptor's request built from scratch: neither, and no TypeError.
  assert.equal(requestSignal({} as Req), undefined);
});

test("withCallState: a copy with another call state, whose signal is made only when read", () => {
  const runner = new CallAbort();
  const guard = new CallAbort();
  const copy = withCallState({ ...request(runner) }, guard);
  assert.equal(abortOf(copy), guard, "the guard's state, listened to without a signal");
  assert.equal(guard.createdSignal, undefined);
  assert.equal({ ...copy }.signal, guard.signal, "a spread of it carries the guard's signal");
  assert.equal(runner.createdSignal, undefined, "the runner's signal was never made");
});

function context() {
  const ctx = new ContextFactory().create({
    service: KV,
    method: KV.method.get,
    protocolName: "test",
    url: "/example.kv.v1.KV/Get",
    timeoutMs: 100,
    requestHeader: new Headers(),
    contextValues: createContextValues(),
  });
  return {
    ctx,
    view: handlerView(ctx) as ReturnType<typeof handlerView> & { abort(r?: unknown): void },
  };
}

test("ctx.abort() through the view and through its copy aborts the handler's signal, not the call (as connect-es)", () => {
  for (const pick of [(v: object) => v, (v: object) => ({ ...v })]) {
    const { ctx, view } = context();
    let told: unknown;
    ctx[CALL_ABORT].listen((reason) => (told = reason));
    const own = pick(view) as typeof view;
    assert.equal(typeof own.abort, "function");
    const reason = new Error("the handler's own");
    own.abort(reason);
    assert.equal(view.signal.aborted, true);
    assert.equal(view.signal.reason, reason);
    assert.equal(told, undefined, "the server's hooks are not told");
    ctx.abort(new Error("test over"));
    assert.equal((told as Error | undefined)?.message, "test over");
  }
});

test("the plugin's interceptors: one that copies the request leaves the signal to the next, which sees the deadline", async () => {
  const { ctx } = context();
  let reason: unknown;
  const listen: Interceptor = (next) => (req) => {
    req.signal.addEventListener("abort", () => {
      reason = req.signal.reason as unknown;
    });
    return next(req);
  };
  const spec = {
    method: KV.method.get,
    impl: () => new Promise(() => {}),
  };
  void invokeUnary(spec, ctx, { key: "k" }, [spread(), listen]);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(ConnectError.from(reason).code, Code.DeadlineExceeded);
});
