import assert from "node:assert/strict";
import { AsyncLocalStorage, AsyncResource, createHook, executionAsyncId } from "node:async_hooks";
import * as http2 from "node:http2";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { requestLeanBound } from "../../../src/transport/lean-bind.js";

const nodeBind = (AsyncResource.prototype as { bind: unknown }).bind;
const bindNow = (): unknown => (AsyncResource.prototype as { bind: unknown }).bind;

/**
 * A node:http2 server answering every request with 200 and "ok", in a
 * child process (so that its objects stay out of this heap), and a client
 * session to it.
 */
async function pair(): Promise<{ session: http2.ClientHttp2Session; close: () => void }> {
  const server = spawn(
    process.execPath,
    [
      "-e",
      `require("node:http2").createServer((q, s) => s.end("ok")).listen(0, "127.0.0.1", function () { console.log(this.address().port); });`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    server.stdout.once("data", (d: Buffer) => resolve(Number(d.toString().trim())));
    server.once("exit", (code) => reject(new Error(`server exited with ${code}`)));
  });
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  return {
    session,
    close: () => {
      session.destroy();
      server.kill();
    },
  };
}

/** One request's status and body, on `open`'s stream. */
function answer(stream: http2.ClientHttp2Stream): Promise<[number, string]> {
  return new Promise((resolve, reject) => {
    let status = 0;
    let body = "";
    stream.on("response", (h) => (status = h[":status"] ?? 0));
    stream.setEncoding("utf8");
    stream.on("data", (c: string) => (body += c));
    stream.on("error", reject);
    stream.on("close", () => resolve([status, body]));
    stream.end();
  });
}

test("requests through requestLeanBound are answered, before and after the session connects, and node's bind is back after each", async () => {
  const { session, close } = await pair();
  try {
    // The first request is made while the session is still connecting:
    // node:http2 keeps its bound callback and calls it on "connect".
    assert.equal(session.connecting, true);
    const first = requestLeanBound(session, { ":path": "/a" });
    assert.equal(bindNow(), nodeBind);
    assert.deepEqual(await answer(first), [200, "ok"]);
    const later = await Promise.all(
      Array.from({ length: 8 }, () => answer(requestLeanBound(session, { ":path": "/b" }))),
    );
    assert.deepEqual(
      later,
      Array.from({ length: 8 }, () => [200, "ok"]),
    );
    assert.equal(bindNow(), nodeBind);
  } finally {
    close();
  }
});

test("what node runs on connect sees the AsyncLocalStorage store and async scope of the request, through node's request() and through requestLeanBound alike", async () => {
  const seen: Record<string, { store: unknown; scope: boolean }> = {};
  for (const how of ["node", "lean"] as const) {
    const { session, close } = await pair();
    try {
      assert.equal(session.connecting, true);
      const storage = new AsyncLocalStorage<string>();
      const pending: number[] = [];
      const hook = createHook({
        init: (id, type) => void (type === "PendingRequest" && pending.push(id)),
      }).enable();
      const stream = storage.run("at request", () =>
        how === "node"
          ? session.request({ ":path": "/" })
          : requestLeanBound(session, { ":path": "/" }),
      );
      hook.disable();
      // node emits "ready" from its bound connect callback, once the
      // session connects (outside the store).
      stream.once("ready", () => {
        seen[how] = {
          store: storage.getStore(),
          scope: pending.length === 1 && executionAsyncId() === pending[0],
        };
      });
      assert.deepEqual(await answer(stream), [200, "ok"]);
    } finally {
      close();
    }
  }
  assert.deepEqual(seen, {
    node: { store: "at request", scope: true },
    lean: { store: "at request", scope: true },
  });
});

test("a request() that throws throws the same error through requestLeanBound, and node's bind is back", async () => {
  const { session, close } = await pair();
  close();
  assert.throws(() => requestLeanBound(session, { ":path": "/" }), {
    code: "ERR_HTTP2_INVALID_SESSION",
  });
  assert.equal(bindNow(), nodeBind);
});

test("a function bound inside the swap runs in its resource's async scope with the caller's this and arguments, and has no deprecated accessor", () => {
  const storage = new AsyncLocalStorage<string>();
  let seen: { scope: string | undefined; id: number; self: unknown; args: unknown[] } | undefined;
  let resourceId = -1;
  let bound: ((...args: unknown[]) => unknown) | undefined;
  let withThis: ((...args: unknown[]) => unknown) | undefined;
  const fake = {
    request(): http2.ClientHttp2Stream {
      const resource = new AsyncResource("Test");
      resourceId = resource.asyncId();
      bound = resource.bind(function (this: unknown, ...args: unknown[]) {
        seen = { scope: storage.getStore(), id: executionAsyncId(), self: this, args };
        return "result";
      });
      // With a thisArg, node's own bind (and its accessor) as before.
      const withArg = resource as unknown as {
        bind(fn: () => void, thisArg: object): () => void;
      };
      withThis = withArg.bind(() => undefined, {});
      return {} as http2.ClientHttp2Stream;
    },
  } as unknown as http2.ClientHttp2Session;
  storage.run("at bind", () => requestLeanBound(fake, {}));
  const self = { me: 1 };
  const result = storage.run("at call", () => bound?.call(self, 1, "two"));
  assert.equal(result, "result");
  assert.deepEqual(seen, { scope: "at bind", id: resourceId, self, args: [1, "two"] });
  assert.equal(Object.hasOwn(bound ?? {}, "asyncResource"), false);
  assert.equal(Object.hasOwn(withThis ?? {}, "asyncResource"), true);
  assert.throws(
    () =>
      requestLeanBound(
        { request: () => new AsyncResource("T").bind(1 as unknown as () => void) } as never,
        {},
      ),
    { code: "ERR_INVALID_ARG_TYPE" },
  );
});

test("when AsyncResource.prototype.bind is not node's own, requestLeanBound leaves it in place", () => {
  const proto = AsyncResource.prototype as { bind: unknown };
  const theirs = function (this: AsyncResource, fn: () => void): () => void {
    return fn;
  };
  let seen: unknown;
  proto.bind = theirs;
  try {
    requestLeanBound(
      {
        request: () => {
          seen = bindNow();
          return {};
        },
      } as unknown as http2.ClientHttp2Session,
      {},
    );
  } finally {
    proto.bind = nodeBind;
  }
  assert.equal(seen, theirs);
  assert.equal(bindNow(), nodeBind);
});

test("a bind put in place while request() runs is not undone by requestLeanBound", () => {
  const proto = AsyncResource.prototype as { bind: unknown };
  const theirs = function (this: AsyncResource, fn: () => void): () => void {
    return fn;
  };
  try {
    requestLeanBound(
      {
        request: () => {
          proto.bind = theirs;
          return {};
        },
      } as unknown as http2.ClientHttp2Session,
      {},
    );
    assert.equal(bindNow(), theirs);
  } finally {
    proto.bind = nodeBind;
  }
});

test("when AsyncResource.prototype.bind is read-only (a frozen prototype), requests go through node's bind and do not throw", async () => {
  const proto = AsyncResource.prototype;
  const { session, close } = await pair();
  Object.defineProperty(proto, "bind", { writable: false });
  try {
    let seen: unknown;
    const hook = createHook({ init: () => void (seen ??= bindNow()) }).enable();
    const stream = requestLeanBound(session, { ":path": "/" });
    hook.disable();
    assert.equal(seen, nodeBind);
    assert.deepEqual(await answer(stream), [200, "ok"]);
  } finally {
    Object.defineProperty(proto, "bind", { writable: true });
    close();
  }
  assert.equal(bindNow(), nodeBind);
});

test("a request made inside the swap (from an init hook, say) leaves the swap to the outer one", () => {
  const during: unknown[] = [];
  const inner = {
    request: () => {
      during.push(bindNow());
      return {};
    },
  } as unknown as http2.ClientHttp2Session;
  const outer = {
    request: () => {
      requestLeanBound(inner, {});
      during.push(bindNow());
      return {};
    },
  } as unknown as http2.ClientHttp2Session;
  requestLeanBound(outer, {});
  assert.equal(during.length, 2);
  assert.notEqual(during[0], nodeBind);
  assert.equal(during[1], during[0]);
  assert.equal(bindNow(), nodeBind);
});
