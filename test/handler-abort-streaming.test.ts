/**
 * A handler's ctx.abort() (connect-es' contexts have it) on the client- and
 * bidi-streaming handlers of the framed server and the in-process (direct)
 * transport, as on their unary handlers: it aborts the handler's signal.
 * Those kinds run through connect-es' transformInvokeImplementation, which
 * copies the context it is given with a spread; given the ServerCallContext
 * itself (whose abort() is on its prototype), the copy had no abort and
 * the handler's ctx.abort() threw a TypeError.
 */
import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import { create } from "@bufbuild/protobuf";
import {
  createClient,
  type ConnectRouter,
  type HandlerContext,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import {
  GetResponseSchema,
  KV,
  PutManyResponseSchema,
} from "../examples/kv/gen/example/kv/v1/kv_pb.js";
import { createDirectTransport } from "../src/transport/direct.js";
import { framedUnixTransport } from "./framed-unix.js";

/** What the handler saw: "<typeof ctx.abort>;<signal aborted after calling it>". */
function tryAbort(ctx: HandlerContext): string {
  const abort = (ctx as Partial<{ abort(reason?: unknown): void }>).abort;
  try {
    abort?.call(ctx, new Error("the handler's abort"));
  } catch (error) {
    return `threw ${String(error)}`;
  }
  return `${typeof abort};${ctx.signal.aborted}`;
}

const encode = (s: string): Uint8Array => new TextEncoder().encode(s);
const decode = (b: Uint8Array): string => new TextDecoder().decode(b);

const routes = (router: ConnectRouter): void => {
  router.service(KV, {
    get: (_req, ctx) => create(GetResponseSchema, { found: true, value: encode(tryAbort(ctx)) }),
    async putMany(reqs, ctx) {
      for await (const _ of reqs);
      // The count carries the outcome: 1 when abort() aborted the signal.
      return create(PutManyResponseSchema, { count: tryAbort(ctx) === "function;true" ? 1 : 0 });
    },
    async *exchange(reqs, ctx) {
      for await (const _ of reqs);
      yield create(GetResponseSchema, { found: true, value: encode(tryAbort(ctx)) });
    },
  });
};

async function* one() {
  yield { key: "k" };
}

const pass: Interceptor = (next) => (req) => next(req);
for (const [where, interceptors] of [
  ["no interceptor", []],
  ["a plugin interceptor", [pass]],
] as Array<[string, Interceptor[]]>) {
  const cases: Array<[string, (t: TestContext) => Promise<Transport>]> = [
    [
      "in process",
      () =>
        Promise.resolve(
          createDirectTransport({ routes, routerOptions: { interceptors: [...interceptors] } })
            .transport,
        ),
    ],
    ["framed", (t) => framedUnixTransport(t, routes, { interceptors: [...interceptors] })],
  ];
  for (const [transportName, make] of cases) {
    test(`ctx.abort() aborts the handler's signal on every streaming kind (${transportName}, ${where})`, async (t) => {
      const kv = createClient(KV, await make(t));
      assert.equal(decode((await kv.get({ key: "k" })).value), "function;true", "unary");
      assert.equal((await kv.putMany(one())).count, 1, "client streaming");
      const out: string[] = [];
      for await (const res of kv.exchange(one())) out.push(decode(res.value));
      assert.deepEqual(out, ["function;true"], "bidi streaming");
    });
  }
}
