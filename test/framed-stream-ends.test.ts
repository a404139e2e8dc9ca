/**
 * How a framed server stream ends now that runStream pulls from the
 * handler's own iterator and applies the normalising and call tracker's
 * maps itself (mapped-stream.ts): a handler's error after some messages
 * reaches the client after them, explained by the call tracker; a client's
 * cancel and a message over writeMaxBytes run the handler's `finally`; the
 * tracker sees each call end; an interceptor that replaces the stream with
 * one of its own is still read. Real unix sockets, the framed client.
 */
import { join } from "node:path";
import { after, test } from "node:test";
import assert from "node:assert/strict";
import {
  Code,
  ConnectError,
  createClient,
  type ConnectRouter,
  type Interceptor,
} from "@connectrpc/connect";
import { KV, type WatchEvent } from "../examples/kv/gen/example/kv/v1/kv_pb.js";
import { CallTracker } from "../src/plugin/call-tracker.js";
import { createFramedTransport } from "../src/transport/framed/client.js";
import { FramedServer } from "../src/transport/framed/server.js";
import { collected } from "./gc.js";
import { tempDir, waitFor } from "./helpers.js";

/** What the Watch handler saw: messages yielded, and whether its `finally` ran. */
const seen = { yielded: 0, finallyRan: 0, release: (): void => {} };
const stopped = new AbortController();
const tracker = new CallTracker(new Set(), stopped.signal);

const routes = (router: ConnectRouter): void => {
  router.service(KV, {
    async *watch(req) {
      try {
        // Plain objects, not messages: the normalising map makes them messages.
        for (let i = 0; i < 3; i++) {
          seen.yielded++;
          yield { key: `${req.key}-${i}` };
        }
        switch (req.key) {
          case "string":
            // eslint-disable-next-line @typescript-eslint/only-throw-error -- a handler may throw anything
            throw "not an Error";
          case "big":
            yield { key: "big", value: new Uint8Array(4096) };
            break;
          case "forever":
            for (;;) {
              seen.yielded++;
              yield { key: "more" };
            }
          case "stopped":
            await new Promise<void>((resolve) => (seen.release = resolve));
            throw new Error("gave up");
        }
      } finally {
        seen.finallyRan++;
      }
    },
  });
};

/** Replaces each stream with an async generator of its own that suffixes each key. */
const suffixing: Interceptor = (next) => async (req) => {
  const res = await next(req);
  if (!res.stream) return res;
  const messages = res.message as AsyncIterable<WatchEvent>;
  return {
    ...res,
    message: (async function* () {
      for await (const m of messages) yield { ...m, key: `${m.key}!` };
    })(),
  };
};

const closers: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const close of closers) await close();
});

async function watchClient(interceptors: Interceptor[], router = routes) {
  const path = join(tempDir("cpfse-"), "f.sock");
  const server = await FramedServer.listen(
    router,
    { network: "unix", path },
    { interceptors, writeMaxBytes: 1024 },
  );
  const transport = createFramedTransport({ network: "unix", address: path });
  closers.push(
    () => transport.close(),
    () => server.close(),
  );
  return createClient(KV, transport.transport);
}

async function collect(
  stream: AsyncIterable<WatchEvent>,
): Promise<{ keys: string[]; error: unknown }> {
  const keys: string[] = [];
  try {
    for await (const m of stream) keys.push(m.key);
  } catch (error) {
    return { keys, error };
  }
  return { keys, error: undefined };
}

function reset(): void {
  seen.yielded = 0;
  seen.finallyRan = 0;
}

/** Watches `key`: its 3 messages arrive, then an error of `code`; `finally` ran, the tracker saw the end. */
async function failsAfterThree(key: string, code: Code, message: RegExp): Promise<void> {
  const client = await watchClient([tracker.interceptor]);
  reset();
  const { keys, error } = await collect(client.watch({ key }));
  assert.deepEqual(keys, [`${key}-0`, `${key}-1`, `${key}-2`]);
  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, code);
  assert.match(error.rawMessage, message);
  assert.equal(seen.finallyRan, 1);
  assert.equal(tracker.inFlight, 0);
}

test("a handler that throws a non-Error after 3 messages: the client gets the 3, then Unknown; the tracker sees the end", () =>
  failsAfterThree("string", Code.Unknown, /not an Error/));

test("a message over writeMaxBytes after 3: the client gets the 3, then ResourceExhausted; the handler's finally runs", () =>
  failsAfterThree("big", Code.ResourceExhausted, /larger than|1024/));

test("a client that cancels an endless stream: the handler's finally runs, no message after, the tracker sees the end", async () => {
  const client = await watchClient([tracker.interceptor]);
  reset();
  const abort = new AbortController();
  let got = 0;
  await assert.rejects(
    (async () => {
      for await (const _ of client.watch({ key: "forever" }, { signal: abort.signal })) {
        if (++got === 100) abort.abort();
      }
    })(),
    (error: unknown) => ConnectError.from(error).code === Code.Canceled,
  );
  for (let i = 0; i < 200 && seen.finallyRan === 0; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(seen.finallyRan, 1);
  assert.equal(tracker.inFlight, 0);
});

test("an interceptor that replaces the stream with its own generator: its messages and the handler's error reach the client", async () => {
  const client = await watchClient([tracker.interceptor, suffixing]);
  reset();
  const { keys, error } = await collect(client.watch({ key: "string" }));
  assert.deepEqual(keys, ["string-0!", "string-1!", "string-2!"]);
  assert.equal(ConnectError.from(error).code, Code.Unknown);
  assert.equal(seen.finallyRan, 1);
});

test("a message over writeMaxBytes from a stream whose return() throws synchronously: the client still gets ResourceExhausted (the body's error wins, as in for await)", async () => {
  let returned = 0;
  const client = await watchClient([tracker.interceptor], (router) => {
    router.service(KV, {
      watch: () => ({
        [Symbol.asyncIterator]: () => {
          let sent = 0;
          return {
            next: () =>
              Promise.resolve(
                sent++ < 3
                  ? { done: false, value: { key: `k-${sent}` } }
                  : { done: false, value: { key: "big", value: new Uint8Array(4096) } },
              ),
            return: () => {
              returned++;
              throw new Error("return failed");
            },
          };
        },
      }),
    });
  });
  const { keys, error } = await collect(client.watch({ key: "x" }));
  assert.deepEqual(keys, ["k-1", "k-2", "k-3"]);
  assert.equal(ConnectError.from(error).code, Code.ResourceExhausted);
  assert.equal(returned, 1);
});

test("a message over writeMaxBytes from a handler whose finally never settles: the client still gets ResourceExhausted (return() is not awaited, as on the lean HTTP/2 path)", async () => {
  let entered = 0;
  const client = await watchClient([tracker.interceptor], (router) => {
    router.service(KV, {
      async *watch() {
        try {
          yield { key: "k" };
          yield { key: "big", value: new Uint8Array(4096) };
        } finally {
          entered++;
          await new Promise<never>(() => {});
        }
      },
    });
  });
  let bound: NodeJS.Timeout | undefined;
  const { keys, error } = await Promise.race([
    collect(client.watch({ key: "x" })),
    new Promise<never>((_, reject) => {
      bound = setTimeout(() => reject(new Error("no end of the stream in 10 s")), 10_000);
    }),
  ]).finally(() => clearTimeout(bound));
  assert.deepEqual(keys, ["k"]);
  assert.equal(ConnectError.from(error).code, Code.ResourceExhausted);
  assert.equal(entered, 1);
});

// Last: it stops the tracker for good.
test("a handler that fails after the grace period, mid-stream: the client gets its messages, then the shutdown's reason", async () => {
  const client = await watchClient([tracker.interceptor]);
  reset();
  const stream = client.watch({ key: "stopped" });
  const result = collect(stream);
  for (let i = 0; i < 200 && seen.yielded < 3; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(tracker.inFlight, 1);
  assert.equal(await tracker.drain(0), 1);
  stopped.abort(new ConnectError("plugin stopped", Code.Unavailable));
  seen.release();
  const { keys, error } = await result;
  assert.deepEqual(keys, ["stopped-0", "stopped-1", "stopped-2"]);
  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.Unavailable);
  assert.match(error.rawMessage, /plugin stopped/);
  assert.equal(tracker.inFlight, 0);
});

test("a stream whose client is gone and whose handler's finally never settles: the server stops it without waiting and keeps nothing of the call (return() is not awaited, as on the HTTP/2 path)", async () => {
  const hang: (() => void)[] = [];
  let entered = 0;
  let header: WeakRef<Headers> | undefined;
  const keepHeader: Interceptor = (next) => (req) => {
    header = new WeakRef(req.header);
    return next(req);
  };
  const client = await watchClient([keepHeader], (router) => {
    router.service(KV, {
      async *watch() {
        try {
          // The first message after the client's cancel finds the call gone.
          for (;;) {
            yield { key: "k" };
            await new Promise((r) => setTimeout(r, 10));
          }
        } finally {
          entered++;
          // Reachable (the test holds its resolver) and never settled.
          await new Promise<void>((resolve) => hang.push(resolve));
        }
      },
    });
  });
  const abort = new AbortController();
  await assert.rejects(
    (async () => {
      for await (const _ of client.watch({ key: "x" }, { signal: abort.signal })) abort.abort();
    })(),
    (error: unknown) => ConnectError.from(error).code === Code.Canceled,
  );
  await waitFor("the handler's finally", () => entered === 1, 5_000);
  assert.ok(await collected(header!), "the call's request headers were collected");
  assert.equal(hang.length, 1);
});
