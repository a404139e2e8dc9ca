/**
 * src/transport/run-call.ts: the call runner of the framed and direct
 * transports. Each test drives a CallRunner over a fake CallTarget (a few
 * lines that record what reaches them and answer as told), because what is
 * tested is the runner's part alone: the request it builds, the order of the
 * interceptors, and how it settles a call (done, deadline, cancel, error).
 * The transports over it are tested end to end in test/*.test.ts.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create, isMessage, type DescMessage } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextKey,
  createContextValues,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { callDone, type CallSignal } from "../../../src/transport/call-support.js";
import { CallAbort, abortOf } from "../../../src/transport/lazy-abort.js";
import { inlinable, type InlineInterceptor } from "../../../src/transport/inline-interceptor.js";
import {
  CallRunner,
  isSharedEmptyHeader,
  newRequest,
  type CallTarget,
  type UnaryEnd,
} from "../../../src/transport/run-call.js";
import {
  GetRequestSchema,
  GetResponseSchema,
  KV,
  WatchEventSchema,
  WatchRequestSchema,
} from "../../../examples/kv/gen/example/kv/v1/kv_pb.js";

type Answer = (req: UnaryRequest | StreamRequest, call: CallSignal) => Promise<unknown>;

/** A fake target: records each request and call, answers with `answer`. */
class FakeTarget implements CallTarget {
  readonly seen: Array<{ req: UnaryRequest | StreamRequest; call: CallSignal }> = [];
  constructor(
    private readonly answer: Answer,
    readonly settlesStreams = false,
  ) {}
  path(method: { parent: { typeName: string }; name: string }): string {
    return `/${method.parent.typeName}/${method.name}`;
  }
  unary<I extends DescMessage, O extends DescMessage>(
    req: UnaryRequest<I, O>,
    call: CallSignal,
  ): Promise<UnaryResponse<I, O>> {
    this.seen.push({ req: req, call });
    return this.answer(req, call) as Promise<UnaryResponse<I, O>>;
  }
  stream<I extends DescMessage, O extends DescMessage>(
    req: StreamRequest<I, O>,
    call: CallSignal,
  ): Promise<StreamResponse<I, O>> {
    this.seen.push({ req: req, call });
    return this.answer(req, call) as Promise<StreamResponse<I, O>>;
  }
}

const get = KV.method.get;
const watch = KV.method.watch;

function unaryOk(req: UnaryRequest | StreamRequest): Promise<unknown> {
  return Promise.resolve({
    stream: false,
    service: req.service,
    method: req.method,
    header: new Headers({ "x-answer": "1" }),
    trailer: new Headers(),
    message: create(GetResponseSchema, { found: true }),
  });
}

function streamOf(
  req: UnaryRequest | StreamRequest,
  messages: AsyncIterable<unknown>,
): Promise<unknown> {
  return Promise.resolve({
    stream: true,
    service: req.service,
    method: req.method,
    header: new Headers(),
    trailer: new Headers(),
    message: messages,
  });
}

async function* events(n: number, failAt?: number): AsyncGenerator<unknown> {
  for (let i = 0; i < n; i++) {
    if (i === failAt) throw new Error("broken pipe while reading");
    yield create(WatchEventSchema, { key: `k${i}` });
  }
}

async function* oneWatch(): AsyncGenerator<{ key: string }> {
  yield { key: "a" };
}

/** Resolves once `call` has fired its signal (never rejects). */
function whenAborted(call: CallSignal): Promise<unknown> {
  return new Promise((resolve) => {
    if (call.aborted) resolve(call.reason);
    else call.onAbort(resolve);
  });
}

describe("CallRunner, unary (fake target)", () => {
  test("builds the request: path, service, method, headers, context values, a message from an init shape", async () => {
    const target = new FakeTarget(unaryOk);
    const key = createContextKey("none", { description: "test key" });
    const values = createContextValues().set(key, "given");
    const res = await new CallRunner(target).unary(
      get,
      undefined,
      undefined,
      { "x-caller": "yes" },
      { key: "k1" },
      values,
    );
    assert.equal(res.message.found, true);
    const { req } = target.seen[0]!;
    assert.equal(req.url, "/example.kv.v1.KV/Get");
    assert.equal(req.stream, false);
    assert.equal(req.service, KV);
    assert.equal(req.method, get);
    assert.equal(req.header.get("x-caller"), "yes");
    assert.equal(req.contextValues.get(key), "given");
    assert.ok(isMessage(req.message, GetRequestSchema), "the init shape became a message");
    assert.equal((req.message as { key: string }).key, "k1");
  });

  test("a message passed as a message is handed on as the same object; no context values gives fresh ones", async () => {
    const target = new FakeTarget(unaryOk);
    const message = create(GetRequestSchema, { key: "same" });
    await new CallRunner(target).unary(get, undefined, undefined, undefined, message);
    const { req } = target.seen[0]!;
    assert.equal(req.message, message);
    assert.equal(req.contextValues.get(createContextKey(7)), 7);
    assert.deepEqual([...req.header.keys()], []);
  });

  test("interceptors wrap in order: the first given sees the request first and the response last", async () => {
    const order: string[] = [];
    const named =
      (name: string): Interceptor =>
      (next) =>
      async (req) => {
        order.push(`${name} in`);
        req.header.append("x-path", name);
        const res = await next(req);
        order.push(`${name} out`);
        return res;
      };
    const target = new FakeTarget((req) => {
      order.push("target");
      return unaryOk(req);
    });
    await new CallRunner(target, [named("outer"), named("inner")]).unary(
      get,
      undefined,
      undefined,
      undefined,
      { key: "k" },
    );
    assert.deepEqual(order, ["outer in", "inner in", "target", "inner out", "outer out"]);
    assert.equal(target.seen[0]!.req.header.get("x-path"), "outer, inner");
  });

  test("the interceptor list is copied: changing the caller's array later changes nothing", async () => {
    const list: Interceptor[] = [];
    const runner = new CallRunner(new FakeTarget(unaryOk), list);
    let ran = false;
    list.push((next) => (req) => {
      ran = true;
      return next(req);
    });
    await runner.unary(get, undefined, undefined, undefined, { key: "k" });
    assert.equal(ran, false);
  });

  test("an interceptor may answer without the target, and the call is still settled", async () => {
    const target = new FakeTarget(unaryOk);
    let seenCall: { aborted: boolean; reason: unknown } | undefined;
    const shortCircuit: Interceptor = () => (req) => {
      seenCall = abortOf(req);
      return unaryOk(req) as ReturnType<ReturnType<Interceptor>>;
    };
    await new CallRunner(target, [shortCircuit]).unary(get, undefined, undefined, undefined, {
      key: "k",
    });
    assert.equal(target.seen.length, 0);
    assert.equal(seenCall?.aborted, true);
    assert.equal(seenCall?.reason, callDone());
  });

  test("success settles the call: its signal fires with the shared 'completed' reason, and the timer is gone", async () => {
    const target = new FakeTarget(unaryOk);
    await new CallRunner(target).unary(get, undefined, 60_000, undefined, { key: "k" });
    const { call } = target.seen[0]!;
    assert.equal(call.timeoutMs, 60_000);
    assert.equal(call.aborted, true);
    assert.equal(call.reason, callDone());
    // A later expiry or cancel changes nothing: abort happens once.
    call.abort(new ConnectError("late", Code.DeadlineExceeded));
    assert.equal(call.reason, callDone());
  });

  test("the request's signal is created only when read, and then is the call's", async () => {
    const target = new FakeTarget(async (req, call) => {
      assert.equal(call.createdSignal, undefined, "nothing read the signal yet");
      const signal = req.signal;
      assert.equal(call.createdSignal, signal);
      assert.equal(signal.aborted, false);
      return unaryOk(req);
    });
    await new CallRunner(target).unary(get, undefined, undefined, undefined, { key: "k" });
    assert.equal(target.seen[0]!.call.createdSignal?.aborted, true);
  });

  test("an error from the target reaches the caller as a ConnectError with its code", async () => {
    const target = new FakeTarget(() =>
      Promise.reject(new ConnectError("no such key", Code.NotFound)),
    );
    await assert.rejects(
      new CallRunner(target).unary(get, undefined, undefined, undefined, { key: "k" }),
      (e: unknown) =>
        e instanceof ConnectError && e.code === Code.NotFound && e.rawMessage === "no such key",
    );
    assert.equal(target.seen[0]!.call.reason, callDone(), "a failed call is settled too");
  });

  test("a plain exception becomes a ConnectError (Unknown) with its message", async () => {
    const target = new FakeTarget(() => Promise.reject(new Error("socket closed")));
    await assert.rejects(
      new CallRunner(target).unary(get, undefined, undefined, undefined, { key: "k" }),
      (e: unknown) =>
        e instanceof ConnectError && e.code === Code.Unknown && e.rawMessage === "socket closed",
    );
  });

  test("an interceptor that throws synchronously fails the call the same way: a rejection, and the call settled", async () => {
    let seenCall: { aborted: boolean; reason: unknown } | undefined;
    const throwing: Interceptor = () => (req) => {
      seenCall = abortOf(req);
      throw new ConnectError("refused by interceptor", Code.PermissionDenied);
    };
    const target = new FakeTarget(unaryOk);
    const controller = new AbortController();
    // Not wrapped in an async function: the runner itself must return a
    // rejected promise rather than throw.
    const pending = new CallRunner(target, [throwing]).unary(
      get,
      controller.signal,
      60_000,
      undefined,
      { key: "k" },
    );
    await assert.rejects(
      pending,
      (e: unknown) => e instanceof ConnectError && e.code === Code.PermissionDenied,
    );
    assert.equal(target.seen.length, 0);
    // Settled: the deadline timer is gone (else it would hold the process
    // for a minute) and the caller's signal is no longer followed.
    assert.equal(seenCall?.aborted, true);
    assert.equal(seenCall?.reason, callDone());
    controller.abort(new Error("too late"));
    assert.equal(seenCall?.reason, callDone());
  });

  test("the deadline fires the call's signal with DeadlineExceeded, and wins over the error the target then throws", async () => {
    const target = new FakeTarget(async (_req, call) => {
      await whenAborted(call);
      throw new Error("aborted by the transport");
    });
    await assert.rejects(
      new CallRunner(target).unary(get, undefined, 20, undefined, { key: "k" }),
      (e: unknown) =>
        e instanceof ConnectError &&
        e.code === Code.DeadlineExceeded &&
        e.rawMessage === "the operation timed out",
    );
  });

  // The plugin's copy of the deadline fires at the same moment as the host's;
  // its answer to it (a handler's AbortError becomes "internal error") can be
  // read before node runs the host's expired timer. Here the target answers
  // after the deadline has passed without letting the timer run.
  for (const [name, busyMs, code] of [
    [
      "an error that comes after the deadline passed, its timer not yet run, is DeadlineExceeded",
      40,
      Code.DeadlineExceeded,
    ],
    ["an error that comes before the deadline stays the target's", 0, Code.Internal],
  ] as const) {
    test(name, async () => {
      const target = new FakeTarget(() => {
        const until = performance.now() + busyMs;
        while (performance.now() < until);
        return Promise.reject(new ConnectError("internal error", Code.Internal));
      });
      await assert.rejects(
        new CallRunner(target).unary(get, undefined, 20, undefined, { key: "k" }),
        (e: unknown) => {
          assert.equal(ConnectError.from(e).code, code, String(e));
          return true;
        },
      );
    });
  }

  test("a timeout of 0 (or less) means no deadline, as connect-es' CallOptions document it", async () => {
    for (const timeoutMs of [0, -5]) {
      const target = new FakeTarget((req, call) => {
        assert.equal(call.aborted, false);
        assert.equal(call.timeoutMs, undefined);
        return unaryOk(req);
      });
      await new CallRunner(target).unary(get, undefined, timeoutMs, undefined, { key: "k" });
      assert.equal(target.seen.length, 1);
    }
  });

  test("the caller's abort fires the call's signal with Canceled and its reason, and wins over the target's error", async () => {
    const controller = new AbortController();
    const target = new FakeTarget(async (_req, call) => {
      queueMicrotask(() => controller.abort(new Error("user pressed stop")));
      await whenAborted(call);
      throw new ConnectError("write after end", Code.Internal);
    });
    await assert.rejects(
      new CallRunner(target).unary(get, controller.signal, undefined, undefined, { key: "k" }),
      (e: unknown) =>
        e instanceof ConnectError &&
        e.code === Code.Canceled &&
        e.rawMessage === "user pressed stop",
    );
  });

  test("a signal already aborted is seen at once, and its ConnectError reason keeps its code", async () => {
    const controller = new AbortController();
    controller.abort(new ConnectError("given up", Code.Aborted));
    const target = new FakeTarget(async (_req, call) => {
      assert.equal(call.aborted, true);
      throw new Error("not sent");
    });
    await assert.rejects(
      new CallRunner(target).unary(get, controller.signal, undefined, undefined, { key: "k" }),
      (e: unknown) => e instanceof ConnectError && e.code === Code.Aborted,
    );
  });

  test("after a call completes, the caller's signal is no longer followed", async () => {
    const controller = new AbortController();
    const target = new FakeTarget(unaryOk);
    await new CallRunner(target).unary(get, controller.signal, undefined, undefined, { key: "k" });
    controller.abort(new Error("too late"));
    assert.equal(target.seen[0]!.call.reason, callDone());
  });
});

describe("CallRunner, streaming (fake target)", () => {
  test("builds a streaming request whose messages are normalized one by one", async () => {
    const got: unknown[] = [];
    const target = new FakeTarget(async (req) => {
      for await (const m of req.message as AsyncIterable<unknown>) got.push(m);
      return streamOf(req, events(0));
    });
    const res = await new CallRunner(target).stream(
      watch,
      undefined,
      undefined,
      { "x-s": "1" },
      oneWatch(),
    );
    for await (const _ of res.message) assert.fail("no messages expected");
    const { req } = target.seen[0]!;
    assert.equal(req.stream, true);
    assert.equal(req.url, "/example.kv.v1.KV/Watch");
    assert.equal(req.header.get("x-s"), "1");
    assert.equal(got.length, 1);
    assert.ok(isMessage(got[0], WatchRequestSchema));
  });

  test("the runner settles a stream when its last message is read, not before", async () => {
    const target = new FakeTarget((req) => streamOf(req, events(3)));
    const res = await new CallRunner(target).stream(
      watch,
      undefined,
      60_000,
      undefined,
      oneWatch(),
    );
    const { call } = target.seen[0]!;
    assert.equal(call.aborted, false, "open while messages remain");
    const keys: string[] = [];
    for await (const m of res.message) keys.push(m.key);
    assert.deepEqual(keys, ["k0", "k1", "k2"]);
    assert.equal(call.reason, callDone());
  });

  test("an error while reading reaches the caller as a ConnectError, and settles the call", async () => {
    const target = new FakeTarget((req) => streamOf(req, events(3, 1)));
    const res = await new CallRunner(target).stream(
      watch,
      undefined,
      undefined,
      undefined,
      oneWatch(),
    );
    const keys: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const m of res.message) keys.push(m.key);
      })(),
      (e: unknown) =>
        e instanceof ConnectError &&
        e.code === Code.Unknown &&
        e.rawMessage === "broken pipe while reading",
    );
    assert.deepEqual(keys, ["k0"]);
    assert.equal(target.seen[0]!.call.reason, callDone());
  });

  test("a deadline during reading wins over the error the messages then throw", async () => {
    const target = new FakeTarget((req, call) =>
      streamOf(
        req,
        (async function* () {
          yield create(WatchEventSchema, { key: "first" });
          await whenAborted(call);
          throw new Error("stream reset");
        })(),
      ),
    );
    const res = await new CallRunner(target).stream(watch, undefined, 30, undefined, oneWatch());
    const keys: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const m of res.message) keys.push(m.key);
      })(),
      (e: unknown) => e instanceof ConnectError && e.code === Code.DeadlineExceeded,
    );
    assert.deepEqual(keys, ["first"]);
  });

  test("a caller that stops reading cancels the call and ends the target's messages", async () => {
    let finished = false;
    const target = new FakeTarget((req) =>
      streamOf(
        req,
        (async function* () {
          try {
            for (let i = 0; ; i++) yield create(WatchEventSchema, { key: `k${i}` });
          } finally {
            finished = true;
          }
        })(),
      ),
    );
    const res = await new CallRunner(target).stream(
      watch,
      undefined,
      undefined,
      undefined,
      oneWatch(),
    );
    for await (const m of res.message) if (m.key === "k1") break;
    const { call } = target.seen[0]!;
    assert.equal(call.aborted, true);
    assert.equal(ConnectError.from(call.reason).code, Code.Canceled);
    assert.equal(
      ConnectError.from(call.reason).rawMessage,
      "the caller stopped reading the stream",
    );
    assert.equal(finished, true, "the target's iterator was returned");
  });

  test("a target that settles streams itself gets its response back as it is", async () => {
    const target = new FakeTarget((req) => streamOf(req, events(2)), true);
    const runner = new CallRunner(target);
    const res = await runner.stream(watch, undefined, undefined, undefined, oneWatch());
    const keys: string[] = [];
    for await (const m of res.message) keys.push(m.key);
    assert.deepEqual(keys, ["k0", "k1"]);
    assert.equal(target.seen[0]!.call.aborted, false, "left for the target to settle");
  });

  test("a stream that fails to open maps its error and settles, whoever settles the messages", async () => {
    for (const settlesStreams of [false, true]) {
      const controller = new AbortController();
      const target = new FakeTarget(async (_req, call) => {
        controller.abort(new Error("closed by the user"));
        await whenAborted(call);
        throw new ConnectError("connection refused", Code.Unavailable);
      }, settlesStreams);
      await assert.rejects(
        new CallRunner(target).stream(watch, controller.signal, undefined, undefined, oneWatch()),
        (e: unknown) =>
          e instanceof ConnectError &&
          e.code === Code.Canceled &&
          e.rawMessage === "closed by the user",
        `settlesStreams: ${settlesStreams}`,
      );
      assert.equal(target.seen[0]!.call.reason instanceof Error, true);
      assert.equal(target.seen[0]!.call.aborted, true);
    }
  });

  test("a stream interceptor that throws synchronously gives a rejection and settles the call", async () => {
    for (const settlesStreams of [false, true]) {
      let seenCall: { aborted: boolean; reason: unknown } | undefined;
      const throwing: Interceptor = () => (req) => {
        seenCall = abortOf(req);
        throw new ConnectError("refused by interceptor", Code.PermissionDenied);
      };
      const target = new FakeTarget((req) => streamOf(req, events(1)), settlesStreams);
      const pending = new CallRunner(target, [throwing]).stream(
        watch,
        undefined,
        60_000,
        undefined,
        oneWatch(),
      );
      await assert.rejects(
        pending,
        (e: unknown) => e instanceof ConnectError && e.code === Code.PermissionDenied,
      );
      assert.equal(seenCall?.reason, callDone(), `settlesStreams: ${settlesStreams}`);
    }
  });

  test("stream interceptors wrap in the same order as unary ones", async () => {
    const order: string[] = [];
    const named =
      (name: string): Interceptor =>
      (next) =>
      async (req) => {
        order.push(name);
        return next(req);
      };
    const target = new FakeTarget((req) => {
      order.push("target");
      return streamOf(req, events(0));
    });
    const res = await new CallRunner(target, [named("a"), named("b"), named("c")]).stream(
      watch,
      undefined,
      undefined,
      undefined,
      oneWatch(),
    );
    for await (const _ of res.message);
    assert.deepEqual(order, ["a", "b", "c", "target"]);
  });
});

test("newRequest builds the lazy request interceptors see, with the call's abort state behind it", () => {
  const abort = new CallAbort();
  const header = new Headers({ a: "1" });
  const req = newRequest<UnaryRequest>(
    abort,
    false,
    KV,
    get,
    "/example.kv.v1.KV/Get",
    header,
    createContextValues(),
    create(GetRequestSchema, { key: "x" }),
  );
  assert.equal(abortOf(req), abort);
  assert.equal(req.header, header);
  assert.equal(req.url, "/example.kv.v1.KV/Get");
  assert.equal(abort.createdSignal, undefined);
  assert.equal(req.signal.aborted, false);
  abort.abort(new ConnectError("stop", Code.Canceled));
  assert.equal(req.signal.aborted, true);
});

/**
 * An inline interceptor that records what it is told: `refuse` makes
 * begin() refuse, `own` (default true) gives each call an abort state of
 * its own (kept in `aborts`), `endedThrows` makes ended() throw. Its
 * failed() resolves to Unavailable "translated". Run as an interceptor, it
 * throws: the runner must not call it so.
 */
function recorder(options: { refuse?: ConnectError; own?: boolean; endedThrows?: boolean } = {}): {
  interceptor: Interceptor;
  log: string[];
  aborts: CallAbort[];
} {
  const log: string[] = [];
  const aborts: CallAbort[] = [];
  const inline: InlineInterceptor = {
    begin(service, caller) {
      log.push(`begin ${service.typeName} ${caller instanceof CallAbort}`);
      if (options.refuse !== undefined) return options.refuse;
      const state = options.own === false ? undefined : new CallAbort();
      if (state !== undefined) aborts.push(state);
      return {
        state,
        ended: () => {
          log.push("ended");
          if (options.endedThrows === true) throw new Error("ended broke");
        },
        failed: (error) => {
          log.push(`failed ${ConnectError.from(error).rawMessage}`);
          return Promise.resolve(new ConnectError("translated", Code.Unavailable));
        },
      };
    },
  };
  const interceptor = inlinable(
    () => () => {
      throw new Error("run as an interceptor");
    },
    inline,
  );
  return { interceptor, log, aborts };
}

describe("CallRunner, the lean unary path (no interceptor, or one that runs inline)", () => {
  /** A fake target that may claim privateRequests. */
  class BareTarget extends FakeTarget {
    constructor(
      answer: Answer,
      readonly privateRequests = false,
    ) {
      super(answer);
    }
  }

  test("an inline interceptor is begun with the call's service and state, the target sees its abort state, and it is told of the success", async () => {
    const target = new BareTarget(unaryOk);
    const { interceptor, log, aborts } = recorder();
    const runner = new CallRunner(target, [interceptor]);
    const res = await runner.unary(get, undefined, undefined, undefined, { key: "k" });
    assert.equal(res.message.found, true);
    assert.equal(res.header.get("x-answer"), "1");
    assert.deepEqual(log, ["begin example.kv.v1.KV true", "ended"]);
    assert.equal(abortOf(target.seen[0]?.req as UnaryRequest), aborts[0]);
  });

  test("a failure goes through the inline interceptor's failed(), and the caller gets what it resolves to", async () => {
    const target = new BareTarget(() => Promise.reject(new Error("wire broke")));
    const { interceptor, log } = recorder();
    const runner = new CallRunner(target, [interceptor]);
    await assert.rejects(
      runner.unary(get, undefined, undefined, undefined, { key: "k" }),
      (e: unknown) => e instanceof ConnectError && e.rawMessage === "translated",
    );
    assert.deepEqual(log, ["begin example.kv.v1.KV true", "failed wire broke"]);
  });

  test("a target that throws synchronously: failed() too, and a rejection", async () => {
    const target = new BareTarget(() => {
      throw new Error("sync");
    });
    const { interceptor, log } = recorder();
    const runner = new CallRunner(target, [interceptor]);
    await assert.rejects(
      runner.unary(get, undefined, undefined, undefined, { key: "k" }),
      (e: unknown) => e instanceof ConnectError && e.rawMessage === "translated",
    );
    assert.deepEqual(log, ["begin example.kv.v1.KV true", "failed sync"]);
  });

  test("a refusal from begin() fails the call with it, settles it, and the target is never called", async () => {
    const target = new BareTarget(unaryOk);
    const { interceptor } = recorder({
      refuse: new ConnectError("plugin p was closed", Code.Unavailable),
    });
    const runner = new CallRunner(target, [interceptor]);
    await assert.rejects(
      runner.unary(get, undefined, 5_000, undefined, { key: "k" }),
      (e: unknown) => e instanceof ConnectError && e.rawMessage === "plugin p was closed",
    );
    assert.equal(target.seen.length, 0);
  });

  test("an interceptor that is not inlinable, or two, run as a chain", async () => {
    const target = new BareTarget(unaryOk);
    const { interceptor: inline } = recorder();
    const seen: string[] = [];
    const plain: Interceptor = (next) => (req) => {
      seen.push("plain");
      return next(req);
    };
    await new CallRunner(target, [plain]).unary(get, undefined, undefined, undefined, {});
    assert.deepEqual(seen, ["plain"]);
    // [plain, inline]: the chain, in which the inline one runs as an interceptor (here: throws).
    await assert.rejects(
      new CallRunner(target, [plain, inline]).unary(get, undefined, undefined, undefined, {}),
      /run as an interceptor/,
    );
  });

  test("privateRequests: a call without headers or context values gets the shared empty ones; with them, its own", async () => {
    const target = new BareTarget(unaryOk, true);
    const runner = new CallRunner(target);
    await runner.unary(get, undefined, undefined, undefined, {});
    await runner.unary(get, undefined, undefined, undefined, {});
    const [a, b] = target.seen.map((s) => s.req);
    assert.ok(a?.header instanceof Headers && isSharedEmptyHeader(a.header));
    assert.equal(a.header, b?.header);
    assert.equal(a.contextValues, b?.contextValues);
    const kvKey = createContextKey("none");
    const values = createContextValues().set(kvKey, "given");
    await runner.unary(get, undefined, undefined, { "x-h": "1" }, {}, values);
    const c = target.seen[2]?.req;
    assert.equal(c?.header.get("x-h"), "1");
    assert.equal(isSharedEmptyHeader(c.header), false);
    assert.equal(c.contextValues, values);
    // A target without privateRequests gets its own every time.
    const own = new BareTarget(unaryOk);
    const r = new CallRunner(own);
    await r.unary(get, undefined, undefined, undefined, {});
    await r.unary(get, undefined, undefined, undefined, {});
    assert.notEqual(own.seen[0]?.req.header, own.seen[1]?.req.header);
    assert.notEqual(own.seen[0]?.req.contextValues, own.seen[1]?.req.contextValues);
    assert.equal(isSharedEmptyHeader(own.seen[0]?.req.header as Headers), false);
  });

  test("unaryMessage(): the message of the same call, with and without interceptors (a target without unaryTo)", async () => {
    const lean = new BareTarget(unaryOk);
    const { interceptor, log } = recorder();
    const message = await new CallRunner(lean, [interceptor]).unaryMessage(
      get,
      undefined,
      undefined,
      undefined,
      {},
    );
    assert.equal(message.found, true);
    assert.deepEqual(log, ["begin example.kv.v1.KV true", "ended"]);
    const chained = new BareTarget(unaryOk);
    const plain: Interceptor = (next) => (req) => next(req);
    const m2 = await new CallRunner(chained, [plain, plain]).unaryMessage(
      get,
      undefined,
      undefined,
      undefined,
      {},
    );
    assert.equal(m2.found, true);
  });

  test("unaryMessage(): errors and the deadline as unary() has them", async () => {
    const target = new BareTarget(
      (_req, call) => new Promise((_, reject) => call.onAbort(() => reject(new Error("late")))),
    );
    await assert.rejects(
      new CallRunner(target).unaryMessage(get, undefined, 20, undefined, {}),
      (e: unknown) => e instanceof ConnectError && e.code === Code.DeadlineExceeded,
    );
  });
});

describe("CallRunner, a target that settles message-only calls itself (unaryTo)", () => {
  type EndAnswer = (req: UnaryRequest, call: CallSignal, end: UnaryEnd<DescMessage>) => void;

  /** A fake target with unaryTo: records which entry each call took. */
  class EndTarget extends FakeTarget {
    readonly entries: string[] = [];
    constructor(private readonly endAnswer: EndAnswer) {
      super(unaryOk);
    }
    override unary<I extends DescMessage, O extends DescMessage>(
      req: UnaryRequest<I, O>,
      call: CallSignal,
    ): Promise<UnaryResponse<I, O>> {
      this.entries.push("unary");
      return super.unary(req, call);
    }
    unaryTo<I extends DescMessage, O extends DescMessage>(
      req: UnaryRequest<I, O>,
      call: CallSignal,
      end: UnaryEnd<O>,
    ): void {
      this.entries.push("unaryTo");
      this.seen.push({ req, call });
      this.endAnswer(req, call, end);
    }
  }

  const found = create(GetResponseSchema, { found: true });
  const okNow: EndAnswer = (_req, _call, end) => end.ok({ message: found });

  test("unaryMessage() on the lean path uses it: the message, the inline interceptor told, the call settled with no timer left", async () => {
    const target = new EndTarget(okNow);
    const { interceptor, log } = recorder({ own: false });
    const message = await new CallRunner(target, [interceptor]).unaryMessage(
      get,
      undefined,
      60_000,
      undefined,
      { key: "k" },
    );
    assert.equal(message, found);
    assert.deepEqual(target.entries, ["unaryTo"]);
    assert.deepEqual(log, ["begin example.kv.v1.KV true", "ended"]);
    const call = target.seen[0]?.call as CallSignal;
    assert.equal(call.reason, callDone(), "the call is done (its deadline timer cleared)");
    // Without interceptors too.
    const bareTarget = new EndTarget(okNow);
    assert.equal(
      await new CallRunner(bareTarget).unaryMessage(get, undefined, undefined, undefined, {}),
      found,
    );
    assert.deepEqual(bareTarget.entries, ["unaryTo"]);
  });

  test("unary() (the whole response) and a chain of interceptors still use unary()", async () => {
    const target = new EndTarget(okNow);
    await new CallRunner(target).unary(get, undefined, undefined, undefined, {});
    const plain: Interceptor = (next) => (req) => next(req);
    await new CallRunner(target, [plain, plain]).unaryMessage(
      get,
      undefined,
      undefined,
      undefined,
      {},
    );
    assert.deepEqual(target.entries, ["unary", "unary"]);
  });

  test("a failure: a ConnectError with its code, or through the inline interceptor's failed()", async () => {
    const failing = new EndTarget((_req, _call, end) =>
      end.fail(new ConnectError("no such key", Code.NotFound)),
    );
    await assert.rejects(
      new CallRunner(failing).unaryMessage(get, undefined, undefined, undefined, {}),
      (e: unknown) => e instanceof ConnectError && e.code === Code.NotFound,
    );
    assert.equal(failing.seen[0]?.call.reason, callDone());
    const { interceptor, log } = recorder({ own: false });
    await assert.rejects(
      new CallRunner(failing, [interceptor]).unaryMessage(get, undefined, undefined, undefined, {}),
      (e: unknown) => e instanceof ConnectError && e.rawMessage === "translated",
    );
    assert.deepEqual(log, ["begin example.kv.v1.KV true", "failed no such key"]);
  });

  test("the deadline wins over the error the target then reports", async () => {
    const target = new EndTarget((_req, call, end) =>
      call.onAbort(() => end.fail(new Error("late"))),
    );
    await assert.rejects(
      new CallRunner(target).unaryMessage(get, undefined, 20, undefined, {}),
      (e: unknown) => e instanceof ConnectError && e.code === Code.DeadlineExceeded,
    );
  });

  test("a target that throws synchronously: a rejection, failed() told, the call settled", async () => {
    const target = new EndTarget(() => {
      throw new Error("sync");
    });
    const { interceptor, log } = recorder({ own: false });
    await assert.rejects(
      new CallRunner(target, [interceptor]).unaryMessage(get, undefined, 60_000, undefined, {}),
      (e: unknown) => e instanceof ConnectError && e.rawMessage === "translated",
    );
    assert.deepEqual(log, ["begin example.kv.v1.KV true", "failed sync"]);
    assert.equal(target.seen[0]?.call.reason, callDone());
  });

  test("only the first outcome counts: a later ok or fail is ignored", async () => {
    const okThenFail = new EndTarget((_req, _call, end) => {
      end.ok({ message: found });
      end.fail(new Error("after"));
    });
    const { interceptor, log } = recorder({ own: false });
    assert.equal(
      await new CallRunner(okThenFail, [interceptor]).unaryMessage(
        get,
        undefined,
        undefined,
        undefined,
        {},
      ),
      found,
    );
    assert.deepEqual(log, ["begin example.kv.v1.KV true", "ended"]);
    const failThenOk = new EndTarget((_req, _call, end) => {
      end.fail(new ConnectError("first", Code.Aborted));
      end.ok({ message: found });
    });
    await assert.rejects(
      new CallRunner(failThenOk).unaryMessage(get, undefined, undefined, undefined, {}),
      (e: unknown) => e instanceof ConnectError && e.rawMessage === "first",
    );
  });

  test("an inline interceptor whose ended() throws: the caller gets the throw, no hang", async () => {
    const { interceptor } = recorder({ own: false, endedThrows: true });
    await assert.rejects(
      new CallRunner(new EndTarget(okNow), [interceptor]).unaryMessage(
        get,
        undefined,
        undefined,
        undefined,
        {},
      ),
      /ended broke/,
    );
  });
});
