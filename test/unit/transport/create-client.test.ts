/**
 * src/transport/create-client.ts: typed clients whose streams cancel when a
 * `for await` loop over them is left early. Over connect-es' in-memory
 * router transport (its real protocol code, no network), with a KV service
 * whose watch records how it ended.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  createRouterTransport,
  type HandlerContext,
} from "@connectrpc/connect";
import { createStreamCancellingClient } from "../../../src/transport/create-client.js";
import {
  GetResponseSchema,
  KV,
  WatchEventSchema,
  type WatchRequest,
} from "../../../examples/kv/gen/example/kv/v1/kv_pb.js";

/** A router transport whose watch streams `count` events (or until cancelled) and reports how it ended. */
function kvTransport(count: number) {
  const ended: string[] = [];
  /** Watch calls whose handler has begun. */
  const started: string[] = [];
  const transport = createRouterTransport(({ service }) => {
    service(KV, {
      get: () => create(GetResponseSchema, {}),
      async *watch(req: WatchRequest, ctx: HandlerContext) {
        // The handler may be paused at a yield when the call is cancelled: its
        // signal tells (connect-es also aborts it once a call is over).
        let finished = false;
        started.push(req.key);
        ctx.signal.addEventListener("abort", () => finished || ended.push("cancelled"));
        for (let i = 0; i < count; i++) {
          yield create(WatchEventSchema, { key: req.key, value: new Uint8Array([i]) });
          await new Promise((r) => setTimeout(r, 1));
        }
        ctx.responseTrailer.set("x-end", "read to the end");
        finished = true;
        ended.push("finished");
      },
    });
  });
  return { transport, ended, started };
}

const settled = (ended: string[]) => async () => {
  for (let i = 0; i < 200 && ended.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
};

test("leaving the loop early (break) cancels the call; connect-es' own createClient does not", async () => {
  for (const [make, expected] of [
    [createStreamCancellingClient, ["cancelled"]],
    [createClient, []],
  ] as const) {
    const { transport, ended } = kvTransport(1_000);
    const kv = make(KV, transport);
    for await (const e of kv.watch({ key: "a" })) {
      assert.equal(e.key, "a");
      break;
    }
    await settled(ended)();
    assert.deepEqual(ended, expected, make.name);
  }
});

test("a throw inside the loop cancels the call too, and the caller sees its own error", async () => {
  const { transport, ended } = kvTransport(1_000);
  const kv = createStreamCancellingClient(KV, transport);
  await assert.rejects(
    (async () => {
      for await (const _ of kv.watch({ key: "a" })) throw new Error("mine");
    })(),
    /^Error: mine$/,
  );
  await settled(ended)();
  assert.deepEqual(ended, ["cancelled"]);
});

test("a stream read to its end is not cancelled, and onTrailer still sees its trailer", async () => {
  const { transport, ended } = kvTransport(3);
  const kv = createStreamCancellingClient(KV, transport);
  let trailer: Headers | undefined;
  const got: number[] = [];
  for await (const e of kv.watch({ key: "a" }, { onTrailer: (t) => (trailer = t) })) {
    got.push(e.value[0] ?? -1);
  }
  assert.deepEqual(got, [0, 1, 2]);
  assert.deepEqual(ended, ["finished"]);
  assert.equal(trailer?.get("x-end"), "read to the end");
});

test("the caller's own signal still cancels, with Canceled", async () => {
  const { transport, ended } = kvTransport(1_000);
  const kv = createStreamCancellingClient(KV, transport);
  const abort = new AbortController();
  await assert.rejects(
    (async () => {
      for await (const _ of kv.watch({ key: "a" }, { signal: abort.signal })) abort.abort();
    })(),
    (e: unknown) => ConnectError.from(e).code === Code.Canceled,
  );
  await settled(ended)();
  assert.deepEqual(ended, ["cancelled"]);
});

test("client-streaming methods are connect-es' own; unary ones answer as connect-es' do", async () => {
  const { transport } = kvTransport(0);
  const ours = createStreamCancellingClient(KV, transport);
  const theirs = createClient(KV, transport);
  assert.equal(ours.putMany.toString(), theirs.putMany.toString());
  assert.notEqual(ours.watch.toString(), theirs.watch.toString());
  // Unary: a `.then` instead of connect-es' async function (one promise hop
  // less per call), with the same message, headers, trailers and errors.
  const router = createRouterTransport(({ service }) => {
    service(KV, {
      get: (req, ctx) => {
        ctx.responseHeader.set("x-header", req.key);
        ctx.responseTrailer.set("x-trailer", req.key);
        if (req.key === "missing") throw new ConnectError("no such key", Code.NotFound);
        return create(GetResponseSchema, { value: new Uint8Array([1, 2]), found: true });
      },
    });
  });
  const seen = async (client: typeof ours, key: string) => {
    const got: Record<string, unknown> = {};
    try {
      const res = await client.get(
        { key },
        {
          onHeader: (h) => (got["header"] = h.get("x-header")),
          onTrailer: (t) => (got["trailer"] = t.get("x-trailer")),
        },
      );
      got["message"] = { value: [...res.value], found: res.found, type: res.$typeName };
    } catch (error) {
      const ce = error as ConnectError;
      got["error"] = { code: ce.code, message: ce.message, trailer: ce.metadata.get("x-trailer") };
    }
    return got;
  };
  const ourRouter = createStreamCancellingClient(KV, router);
  const theirRouter = createClient(KV, router);
  for (const key of ["a", "missing"]) {
    assert.deepEqual(await seen(ourRouter, key), await seen(theirRouter, key));
  }
  assert.deepEqual(await seen(ourRouter, "a"), {
    header: "a",
    trailer: "a",
    message: { value: [1, 2], found: true, type: "example.kv.v1.GetResponse" },
  });
  assert.deepEqual((await seen(ourRouter, "missing"))["error"], {
    code: Code.NotFound,
    message: "[not_found] no such key",
    trailer: "missing",
  });
  // A transport that throws instead of rejecting, and an onHeader that
  // throws: a rejection either way, never a synchronous throw.
  const throwing = {
    ...router,
    unary: () => {
      throw new Error("transport broke");
    },
  };
  await assert.rejects(
    createStreamCancellingClient(KV, throwing).get({ key: "a" }),
    /transport broke/,
  );
  await assert.rejects(
    ourRouter.get(
      { key: "a" },
      {
        onHeader: () => {
          throw new Error("onHeader broke");
        },
      },
    ),
    /onHeader broke/,
  );
});

test("return() before the first next() cancels the call, and its Canceled is no unhandled rejection", async () => {
  // At once (before the response has begun: the response promise is what the
  // cancel rejects), and once the plugin's handler runs.
  for (const when of ["at once", "once the handler runs"] as const) {
    const { transport, ended, started } = kvTransport(1_000);
    const kv = createStreamCancellingClient(KV, transport);
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      const it = kv.watch({ key: "a" })[Symbol.asyncIterator]();
      if (when !== "at once") await settled(started)();
      assert.deepEqual(await it.return?.(), { done: true, value: undefined });
      assert.deepEqual(await it.next(), { done: true, value: undefined });
      if (when !== "at once") await settled(ended)();
      // Unhandled rejections are reported once the microtasks have run.
      await new Promise(setImmediate);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
    assert.deepEqual(unhandled.map(String), [], when);
    assert.deepEqual(ended, when === "at once" ? [] : ["cancelled"], when);
  }
});

test("an onHeader that throws fails the loop with its error and cancels the call", async () => {
  const { transport, ended } = kvTransport(1_000);
  const kv = createStreamCancellingClient(KV, transport);
  const onHeader = (): void => {
    throw new Error("header hook");
  };
  await assert.rejects(
    (async () => {
      for await (const _ of kv.watch({ key: "a" }, { onHeader })) assert.fail("no message");
    })(),
    /^Error: header hook$/,
  );
  await settled(ended)();
  assert.deepEqual(ended, ["cancelled"]);
});
