/**
 * MappedStream as the HTTP/2 paths iterate it (for await over its own
 * iterator): maps composed over one source, in order; an error of the
 * source or of a value map passes through the error maps; return() reaches
 * the source (a generator's `finally` runs).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { MappedStream } from "../../../src/transport/mapped-stream.js";

async function* numbers(log: string[], failAt?: number): AsyncGenerator<number> {
  try {
    for (let i = 1; i <= 3; i++) {
      if (i === failAt) throw new Error(`source failed at ${i}`);
      yield i;
    }
  } finally {
    log.push("finally");
  }
}

test("values then errors compose over the source: one MappedStream, the value maps in order", async () => {
  const log: string[] = [];
  const source = numbers(log);
  const doubled = MappedStream.values(source, (v) => v * 2);
  const plusOne = MappedStream.values(doubled, (v) => v + 1);
  const explained = MappedStream.errors(plusOne, (e) => new Error(`explained: ${String(e)}`));
  const parts = MappedStream.parts(explained);
  assert.equal(parts.source, source);
  const got: number[] = [];
  for await (const v of explained) got.push(v);
  assert.deepEqual(got, [3, 5, 7]);
  assert.deepEqual(log, ["finally"]);
});

test("an error of the source and one of a value map both pass through the error map", async () => {
  const explain = (e: unknown): Error => new Error(`explained: ${(e as Error).message}`);
  const got: number[] = [];
  await assert.rejects(
    (async () => {
      for await (const v of MappedStream.errors(numbers([], 2), explain)) got.push(v);
    })(),
    /explained: source failed at 2/,
  );
  assert.deepEqual(got, [1]);
  const failing = MappedStream.values(numbers([]), (v) => {
    if (v === 3) throw new Error("map failed at 3");
    return v;
  });
  await assert.rejects(
    (async () => {
      for await (const _ of MappedStream.errors(failing, explain));
    })(),
    /explained: map failed at 3/,
  );
});

test("leaving the loop early calls the source's return(): its finally runs", async () => {
  const log: string[] = [];
  for await (const v of MappedStream.values(numbers(log), (v) => v)) {
    if (v === 1) break;
  }
  assert.deepEqual(log, ["finally"]);
});

test("parts() of a plain iterable: itself, with maps that change nothing", () => {
  const source = numbers([]);
  const parts = MappedStream.parts(source);
  assert.equal(parts.source, source);
  const error = new Error("x");
  assert.equal(parts.mapValue(7), 7);
  assert.equal(parts.mapError(error), error);
});

test("a source whose next() throws synchronously: the error passes through the error map, as the framed server maps it", async () => {
  const source: AsyncIterable<number> = {
    [Symbol.asyncIterator]: () => ({
      next: (): Promise<IteratorResult<number>> => {
        throw new Error("next failed");
      },
    }),
  };
  const explained = MappedStream.errors(
    source,
    (e) => new Error(`explained: ${(e as Error).message}`),
  );
  await assert.rejects(
    (async () => {
      for await (const _ of explained);
    })(),
    /explained: next failed/,
  );
});

test("throw() reaches the source, and its result is mapped as next()'s is", async () => {
  async function* catching(): AsyncGenerator<number> {
    try {
      yield 1;
    } catch {
      yield 2;
    }
    throw new Error("after the throw");
  }
  const explain = (e: unknown): Error => new Error(`explained: ${(e as Error).message}`);
  const it = MappedStream.errors(
    MappedStream.values(catching(), (v) => v * 10),
    explain,
  )[Symbol.asyncIterator]();
  assert.deepEqual(await it.next(), { done: false, value: 10 });
  assert.deepEqual(await it.throw?.(new Error("stop")), { done: false, value: 20 });
  await assert.rejects(it.next(), /explained: after the throw/);
  const bare = MappedStream.errors(singleton(), explain)[Symbol.asyncIterator]();
  await assert.rejects(bare.throw!(new Error("stop")), /explained: stop/);
});

function singleton(): AsyncIterable<number> {
  return {
    [Symbol.asyncIterator]: () => ({ next: () => Promise.resolve({ done: false, value: 1 }) }),
  };
}
