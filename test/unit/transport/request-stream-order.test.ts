/**
 * RequestStream with next() calls outstanding at once (readers sharing
 * the iterator) while a compressed message is being decompressed (async,
 * zlib): the calls settle in the order they were made, each with the
 * message in its place, as connect-es' request iterable (an async
 * generator, which queues its next() calls) settles them.
 */
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import { gzipSync } from "node:zlib";
import { compressionGzip } from "@connectrpc/connect-node";
import { RequestStream, type RequestFormat } from "../../../src/transport/request-stream.js";

const FORMAT: RequestFormat = {
  readMaxBytes: 1024,
  compression: compressionGzip,
  endFlag: 2,
  parse: (bytes) => Buffer.from(bytes).toString(),
};

/** An envelope of `text`, gzipped when `flags` has bit 1 (the bytes as they are when `raw`). */
function env(text: string, flags = 0, raw = false): Buffer {
  const data = (flags & 1) !== 0 && !raw ? gzipSync(text) : Buffer.from(text);
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(data.length, 1);
  return Buffer.concat([head, data]);
}

/** Each next() call's outcome, in the order they settled. */
async function settled(calls: Array<Promise<IteratorResult<unknown>>>): Promise<string[]> {
  const order: string[] = [];
  const watch = calls.map((p, i) =>
    p.then(
      (r) => order.push(`${i}:${r.done === true ? "done" : String(r.value)}`),
      () => order.push(`${i}:error`),
    ),
  );
  const timer = new Promise<void>((r) => setTimeout(r, 2000).unref());
  await Promise.race([Promise.all(watch), timer]);
  return order;
}

test("two next() calls waiting, a compressed message then a plain one: 1 settles before 2", async () => {
  const input = new RequestStream(new PassThrough(), FORMAT);
  const calls = [input.next(), input.next()];
  input.chunk(Buffer.concat([env("one", 1), env("two")]));
  input.end();
  assert.deepEqual(await settled(calls), ["0:one", "1:two"]);
});

test("two next() calls over a queued compressed message and a plain one: 1 settles before 2", async () => {
  const input = new RequestStream(new PassThrough(), FORMAT);
  input.chunk(Buffer.concat([env("one", 1), env("two")]));
  input.end();
  assert.deepEqual(await settled([input.next(), input.next(), input.next()]), [
    "0:one",
    "1:two",
    "2:done",
  ]);
});

test("a waiting next() when the body ends behind a compressed message: done after the message", async () => {
  const input = new RequestStream(new PassThrough(), FORMAT);
  const calls = [input.next(), input.next()];
  input.chunk(env("one", 1));
  input.end();
  assert.deepEqual(await settled(calls), ["0:one", "1:done"]);
});

test("a compressed end envelope before messages (skipped): the next calls get them in order", async () => {
  const input = new RequestStream(new PassThrough(), FORMAT);
  input.chunk(Buffer.concat([env("{}", 3), env("two"), env("three")]));
  input.end();
  assert.deepEqual(await settled([input.next(), input.next()]), ["0:two", "1:three"]);
});

test("a compressed message that does not decompress: the call after it gets no later message", async () => {
  const input = new RequestStream(new PassThrough(), FORMAT);
  input.chunk(Buffer.concat([env("not gzip", 1, true), env("two")]));
  input.end();
  assert.deepEqual(await settled([input.next(), input.next()]), ["0:error", "1:done"]);
});

test("twenty next() calls over messages compressed at random: they settle in order, each its own", async () => {
  const input = new RequestStream(new PassThrough(), FORMAT);
  const texts = Array.from({ length: 20 }, (_, i) => `m${i}`);
  const calls = texts.slice(0, 10).map(() => input.next());
  for (const text of texts) input.chunk(env(text, Math.random() < 0.5 ? 1 : 0));
  input.end();
  calls.push(...texts.slice(10).map(() => input.next()));
  assert.deepEqual(
    await settled(calls),
    texts.map((t, i) => `${i}:${t}`),
  );
});

/** Until the decompression of a message queued now (zlib, on the thread pool) is surely over. */
const decompressed = (): Promise<void> => new Promise((r) => setTimeout(r, 50));

/** What reaches the stream once its first (compressed) message is out, and what the second call gets. */
const AFTER: Array<[string, (input: RequestStream) => void, string]> = [
  [
    "the next message arriving",
    (input) => {
      input.chunk(env("two"));
      input.end();
    },
    "1:two",
  ],
  ["the body ending", (input) => input.end(), "1:done"],
  ["the body failing", (input) => input.fail(new Error("the client went away")), "1:error"],
];

for (const [what, then, second] of AFTER) {
  test(`two next() calls over a compressed message, ${what} after it: 2 settles (${second})`, async () => {
    const input = new RequestStream(new PassThrough(), FORMAT);
    input.chunk(env("one", 1));
    const calls = [input.next(), input.next()];
    await calls[0];
    then(input);
    assert.deepEqual(await settled(calls), ["0:one", second]);
  });
}

test("one reader over a compressed end envelope, the next message arriving after it: it gets it", async () => {
  const input = new RequestStream(new PassThrough(), FORMAT);
  input.chunk(env("{}", 3));
  const first = input.next();
  await decompressed();
  input.chunk(env("two"));
  const calls = [first];
  assert.deepEqual(await settled(calls), ["0:two"]);
  input.end();
  assert.deepEqual(await settled([input.next()]), ["0:done"]);
});

test("two calls waiting, a compressed message, a third call, then the rest one by one: in order", async () => {
  const input = new RequestStream(new PassThrough(), FORMAT);
  const calls = [input.next(), input.next()];
  input.chunk(env("one", 1));
  calls.push(input.next());
  await decompressed();
  input.chunk(env("two"));
  await decompressed();
  input.chunk(env("three", 1));
  await decompressed();
  input.end();
  calls.push(input.next());
  assert.deepEqual(await settled(calls), ["0:one", "1:two", "2:three", "3:done"]);
});
