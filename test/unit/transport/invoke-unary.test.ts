/**
 * src/transport/invoke.ts invokeUnary: the plugin side of a unary call, as
 * promise chains. Whatever the handler or an interceptor does (answer at
 * once or later, throw, reject, replace the request), the call settles
 * once, as a promise, and the handler runs exactly once.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { create, isMessage } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, type Interceptor } from "@connectrpc/connect";
import { GetResponseSchema, KV } from "../../../examples/kv/gen/example/kv/v1/kv_pb.js";
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
    requestHeader: new Headers({ "x-in": "1" }),
    contextValues: createContextValues(),
  });
const input = { key: "k" };

function spec(impl: UnarySpec["impl"]): UnarySpec & { runs: () => number } {
  let runs = 0;
  return {
    method,
    impl: (req, ctx) => {
      runs++;
      return impl(req, ctx);
    },
    runs: () => runs,
  };
}

const passThrough: Interceptor = (next) => (req) => next(req);

for (const interceptors of [[], [passThrough]]) {
  const label = interceptors.length === 0 ? "no interceptor" : "an interceptor";
  test(`${label}: an answer given at once or later is normalized, the handler runs once`, async () => {
    for (const impl of [
      () => ({ found: true }),
      () => Promise.resolve({ found: true }),
      () => create(GetResponseSchema, { found: true }),
    ]) {
      const s = spec(impl);
      const out = await invokeUnary(s, newCtx(), input, interceptors);
      assert.ok(isMessage(out, GetResponseSchema));
      assert.equal(out.found, true);
      assert.equal(s.runs(), 1);
    }
  });

  test(`${label}: a handler that throws or rejects gives a rejection, never a throw`, async () => {
    for (const impl of [
      () => {
        throw new ConnectError("sync", Code.NotFound);
      },
      () => Promise.reject(new ConnectError("async", Code.NotFound)),
    ]) {
      const s = spec(impl);
      let pending: Promise<unknown> | undefined;
      assert.doesNotThrow(() => (pending = invokeUnary(s, newCtx(), input, interceptors)));
      await assert.rejects(pending as Promise<unknown>, (e: unknown) => {
        assert.equal(ConnectError.from(e).code, Code.NotFound);
        return true;
      });
      assert.equal(s.runs(), 1);
    }
  });
}

test("an interceptor that throws before calling next: a rejection, the handler never runs", async () => {
  const s = spec(() => ({ found: true }));
  const refuse: Interceptor = () => () => {
    throw new ConnectError("no", Code.PermissionDenied);
  };
  let pending: Promise<unknown> | undefined;
  assert.doesNotThrow(() => (pending = invokeUnary(s, newCtx(), input, [refuse])));
  await assert.rejects(pending as Promise<unknown>, /no/);
  assert.equal(s.runs(), 0);
});

test("interceptors run outermost first; a replaced request reaches the handler; their headers end up in ctx", async () => {
  const order: string[] = [];
  const outer: Interceptor = (next) => async (req) => {
    order.push("outer");
    const res = await next(req);
    res.header.set("x-outer", "1");
    return res;
  };
  const inner: Interceptor = (next) => (req) => {
    order.push("inner");
    const header = new Headers(req.header);
    header.set("x-in", "2");
    return next({ ...req, header });
  };
  let seen: string | null = null;
  const s = spec((_req, ctx) => {
    order.push("handler");
    seen = ctx.requestHeader.get("x-in");
    ctx.responseTrailer.set("x-trailer", "t");
    return { found: true };
  });
  const ctx = newCtx();
  const out = await invokeUnary(s, ctx, input, [outer, inner]);
  assert.equal((out as { found: boolean }).found, true);
  assert.deepEqual(order, ["outer", "inner", "handler"]);
  assert.equal(seen, "2");
  assert.equal(ctx.responseHeader.get("x-outer"), "1");
  assert.equal(ctx.responseTrailer.get("x-trailer"), "t");
  assert.equal(s.runs(), 1);
});

test("next() given a request the handler cannot take: a rejection from next, as from an async next, never a throw", async () => {
  const s = spec(() => ({ found: true }));
  let thrown = false;
  // An interceptor that relies on next() returning a promise (no try/catch around it).
  const broken: Interceptor = (next) => (req) => {
    let res: Promise<unknown>;
    try {
      res = next(undefined as unknown as typeof req);
    } catch (error) {
      thrown = true;
      throw error;
    }
    return res.catch(() => next(req)) as ReturnType<typeof next>;
  };
  const out = await invokeUnary(s, newCtx(), input, [broken]);
  assert.equal(thrown, false, "next() threw synchronously");
  assert.equal((out as { found: boolean }).found, true);
  assert.equal(s.runs(), 1);
});
