/**
 * src/transport/direct.ts: an in-process unary call always settles, even
 * when turning the handler's outcome into the caller's error throws, and it
 * leaves no unhandled rejection behind. (On main the async function turned
 * such a throw into a rejection; the single-promise version first marked
 * the call settled and then threw inside its `.then` callback: the caller
 * waited for ever, its deadline included, and the throw surfaced as an
 * unhandled rejection.)
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  Code,
  ConnectError,
  createClient,
  type ConnectRouter,
  type Interceptor,
} from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { KV, WatchRequestSchema } from "../../../examples/kv/gen/example/kv/v1/kv_pb.js";
import { createDirectTransport } from "../../../src/transport/direct.js";
import { waitFor } from "../../helpers.js";

/** Fails the test instead of hanging it when `p` never settles (not a timing assertion). */
function settles<T>(p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const never = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("the call never settled")), 60_000);
  });
  return Promise.race([p, never]).finally(() => clearTimeout(timer));
}

test("a handler error whose conversion throws still rejects the call, once, without an unhandled rejection", async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
  process.on("unhandledRejection", onUnhandled);
  try {
    const routes = (router: ConnectRouter): void => {
      router.service(KV, {
        get() {
          // Legal, if extreme: more details than a spread call can take
          // (callerOrHandlerError copies them with push(...details)).
          const error = new ConnectError("many details", Code.FailedPrecondition);
          for (let i = 0; i < 300_000; i++) {
            error.details.push({ type: "t.v1.D", value: new Uint8Array(0) });
          }
          throw error;
        },
      });
    };
    const { transport } = createDirectTransport({ routes, routerOptions: { interceptors: [] } });
    const kv = createClient(KV, transport);
    // With a deadline too: on the branch not even the deadline settled it.
    const outcome = await settles(
      kv.get({ key: "k" }, { timeoutMs: 30_000 }).then(
        () => "resolved",
        (error: unknown) => ConnectError.from(error),
      ),
    );
    assert.ok(outcome instanceof ConnectError, `the call rejects (got ${String(outcome)})`);
    assert.notEqual(outcome.code, Code.DeadlineExceeded);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(unhandled, []);
  } finally {
    process.off("unhandledRejection", onUnhandled);
  }
});

test("next() of a host interceptor rejects, never throws, when the request cannot be run (a copy without its signal)", async () => {
  const routes = (router: ConnectRouter): void => {
    router.service(KV, { get: () => ({}) });
  };
  let threw: unknown;
  const dropSignal: Interceptor = (next) => (req) => {
    try {
      // A hand-made copy that loses the signal someone already read: what a
      // careless interceptor does.
      void req.signal.aborted;
      return next({ ...req, signal: undefined as unknown as AbortSignal });
    } catch (error) {
      threw = error;
      throw error;
    }
  };
  const { transport } = createDirectTransport(
    { routes, routerOptions: { interceptors: [] } },
    { interceptors: [dropSignal] },
  );
  const outcome = await settles(
    createClient(KV, transport)
      .get({ key: "k" })
      .then(
        () => "resolved",
        (error: unknown) => ConnectError.from(error),
      ),
  );
  assert.equal(threw, undefined, "next() threw synchronously");
  assert.ok(outcome instanceof ConnectError, `the call rejects (got ${String(outcome)})`);
});

test("leaving an in-process stream whose return() throws synchronously: the call ends, return() is called once, nothing is thrown or left unhandled (stopIterator)", async () => {
  let returned = 0;
  const transport = createDirectTransport({
    routes: (router: ConnectRouter) =>
      router.service(KV, {
        watch: () => ({
          [Symbol.asyncIterator]: () => ({
            next: () => Promise.resolve({ done: false, value: { key: "k" } }),
            return: () => {
              returned++;
              throw new Error("return failed");
            },
          }),
        }),
      }),
    routerOptions: { interceptors: [] },
  }).transport;
  for (const n of [1, 2]) {
    // The transport's own stream (connect-es' client iterator has no return()).
    const res = await settles(
      transport.stream(
        KV.method.watch,
        undefined,
        undefined,
        undefined,
        (async function* () {
          yield create(WatchRequestSchema, { key: "x" });
        })(),
      ),
    );
    const it = res.message[Symbol.asyncIterator]();
    const first = await it.next();
    assert.equal(first.done !== true && first.value.key, "k");
    assert.deepEqual(await settles(it.return!()), { done: true, value: undefined });
    // The call's end stops the handler's output, not awaited (a turn later).
    await waitFor(`return() of call ${n}`, () => returned === n);
  }
});
