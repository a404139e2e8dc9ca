/**
 * wholeEnvelopes (src/transport/whole-envelopes.ts): what connect-es'
 * handlers are given of an enveloped request body. Every byte goes on, in
 * order, only in whole envelopes; a cut body fails with connect-es' own
 * error; an announcement over readMaxBytes goes on at once.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { readAllBytes, transformSplitEnvelope } from "@connectrpc/connect/protocol";
import {
  enveloped,
  hideLength,
  promised,
  upfrontLength,
  wholeEnvelopes,
} from "../../../src/transport/whole-envelopes.js";
import { envelope } from "./command-routes.js";

/** Bytes the current source has handed out so far. */
let given = 0;

async function* chunksOf(parts: Uint8Array[], error?: Error): AsyncGenerator<Uint8Array> {
  given = 0;
  for (const part of parts) {
    given += part.length;
    yield part;
  }
  if (error !== undefined) throw error;
}

/** What wholeEnvelopes yields for `parts`: each piece it gave, and how it ended. */
async function run(
  parts: Uint8Array[],
  readMaxBytes = 1024,
  error?: Error,
): Promise<{ pieces: Buffer[]; end: string; givenAt: number[] }> {
  const pieces: Buffer[] = [];
  const givenAt: number[] = [];
  try {
    for await (const piece of wholeEnvelopes(chunksOf(parts, error), readMaxBytes)) {
      pieces.push(Buffer.from(piece));
      givenAt.push(given);
    }
    return { pieces, end: "end", givenAt };
  } catch (e) {
    const ce = ConnectError.from(e);
    return { pieces, end: `${Code[ce.code]}: ${ce.rawMessage}`, givenAt };
  }
}

const a = envelope(new Uint8Array([1, 2, 3]));
const empty = envelope(new Uint8Array(0));
const b = envelope(new Uint8Array(300).fill(7), 1);
const body = Buffer.concat([a, empty, b]);

/** Where the envelopes of `body` end (and 0). */
const boundaries = new Set([0, a.length, a.length + empty.length, body.length]);
/** Where the envelope that byte `at` of `body` belongs to ends. */
const envelopeEnd = (at: number): number => Math.min(...[...boundaries].filter((e) => e > at));

test("the body cut at every pair of places: the same bytes, each given on only once its whole envelope came", async () => {
  for (let i = 0; i <= body.length; i++) {
    for (let j = i; j <= body.length; j += 7) {
      const parts = [body.subarray(0, i), body.subarray(i, j), body.subarray(j)];
      const { pieces, end, givenAt } = await run(parts);
      assert.equal(end, "end");
      assert.deepEqual(Buffer.concat(pieces), body, `cut at ${i}, ${j}`);
      let at = 0;
      pieces.forEach((piece, k) => {
        if (piece.length > 0) {
          const last = at + piece.length - 1;
          assert.ok(
            envelopeEnd(last) <= (givenAt[k] as number),
            `cut at ${i}, ${j}: bytes up to ${last} given on when ${givenAt[k]} had come`,
          );
        }
        at += piece.length;
      });
    }
  }
});

test("an envelope's bytes go on as soon as its last byte comes, not with the next envelope", async () => {
  // The first chunk ends a's envelope and starts b's: a goes on before b is whole.
  const source = chunksOf([body.subarray(0, a.length + 2), body.subarray(a.length + 2)]);
  const it = wholeEnvelopes(source, 1024)[Symbol.asyncIterator]();
  const first = await it.next();
  assert.deepEqual(Buffer.from(first.value as Uint8Array), Buffer.from(a));
});

test("a body that ends inside an envelope (its head, or its payload) fails as connect-es fails it, after the whole envelopes", async () => {
  for (const cut of [a.length + 3, a.length + empty.length + 7, body.length - 1]) {
    const { pieces, end } = await run([body.subarray(0, cut)]);
    assert.equal(end, "InvalidArgument: protocol error: incomplete envelope", `cut at ${cut}`);
    const whole = Buffer.concat(pieces).length;
    assert.ok(
      boundaries.has(whole) && envelopeEnd(whole) > cut,
      `cut at ${cut}: gave ${whole} bytes`,
    );
  }
  assert.equal((await run([])).end, "end");
  assert.equal((await run([new Uint8Array(0)])).end, "end");
});

test("an announcement over readMaxBytes goes on at once with all that follows, for connect-es to refuse", async () => {
  const huge = Buffer.alloc(15);
  huge.writeUInt32BE(0xffffffff, 1);
  const { pieces, end } = await run(
    [a, huge.subarray(0, 3), huge.subarray(3), Buffer.from([9])],
    1024,
  );
  assert.equal(end, "end");
  assert.deepEqual(Buffer.concat(pieces), Buffer.concat([a, huge, Buffer.from([9])]));
});

test("an announcement over readMaxBytes whose head comes in 1-byte pieces goes on once its head is in, with all that follows", async () => {
  const huge = Buffer.alloc(8, 1);
  huge.writeUInt32BE(1025, 1);
  const parts = [a.subarray(0, 6), a.subarray(6), ...[...huge].map((b) => Buffer.from([b]))];
  const { pieces, end, givenAt } = await run(parts, 1024);
  assert.equal(end, "end");
  assert.deepEqual(Buffer.concat(pieces), Buffer.concat([a, huge]));
  // The head goes on with its 5th byte, each byte after it as it comes.
  const head = pieces.findIndex((p) => p.length === 5);
  assert.deepEqual(pieces[head], huge.subarray(0, 5));
  assert.equal(givenAt[head], a.length + 5);
  assert.deepEqual(givenAt.slice(head).at(-1), a.length + huge.length);
});

test("the body's own error (a reset) goes on as it is, after the whole envelopes", async () => {
  const reset = new ConnectError("the client went away before the request ended", Code.Aborted);
  const { pieces, end } = await run([body.subarray(0, a.length + 4)], 1024, reset);
  assert.deepEqual(Buffer.concat(pieces), Buffer.from(a));
  assert.equal(end, "Aborted: the client went away before the request ended");
});

test("a reader that stops early stops the body too (its return() is called)", async () => {
  let returned = false;
  const source: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator]: () => ({
      next: () => Promise.resolve({ done: false, value: a }),
      return: () => {
        returned = true;
        return Promise.resolve({ done: true, value: undefined });
      },
    }),
  };
  for await (const _ of wholeEnvelopes(source, 1024)) break;
  assert.equal(returned, true);
});

test("an envelope that comes in 1-byte pieces goes on as one piece, and connect-es' reader takes it in linear time", async (t) => {
  // connect-es' reader sums every piece it holds for each new one
  // (createEnvelopeDecoder's byteLength): 32 KiB in 1-byte pieces took it
  // about 7 s (64 KiB: 33 s), all at once when they went on together.
  const size = 32 * 1024;
  const whole = envelope(new Uint8Array(size).fill(5));
  const ones = (): Uint8Array[] => Array.from(whole, (_, i) => whole.subarray(i, i + 1));
  const { pieces, end } = await run(ones(), size);
  assert.equal(end, "end");
  assert.deepEqual(Buffer.concat(pieces), Buffer.from(whole));
  assert.equal(pieces.length, 1, `went on in ${pieces.length} pieces`);
  const start = performance.now();
  let read = 0;
  const split = transformSplitEnvelope(size)(wholeEnvelopes(chunksOf(ones()), size));
  for await (const env of split) read += env.data.length;
  const ms = performance.now() - start;
  t.diagnostic(
    `connect-es' reader: ${size} bytes in 1-byte pieces through the gate in ${ms.toFixed(0)} ms`,
  );
  assert.equal(read, size);
  assert.ok(ms < 2000, `${ms.toFixed(0)} ms`);
});

test("which content types are read as envelopes", () => {
  for (const t of [
    "application/grpc",
    "application/grpc+proto",
    "application/GRPC+json",
    "application/grpc-web",
    "application/grpc-web+proto",
    "application/connect+proto",
    "application/connect+json; charset=utf-8",
  ]) {
    assert.equal(enveloped(t), true, t);
  }
  for (const t of [
    undefined,
    "application/proto",
    "application/json",
    "application/grpc-web-text",
    "application/grpc-web-text+proto",
  ]) {
    assert.equal(enveloped(t), false, String(t));
  }
});

test("a Content-Length connect-es would allocate at once: over 64 KiB, within readMaxBytes, parsed as connect-es parses it", () => {
  assert.equal(upfrontLength(undefined, 1e9), undefined);
  assert.equal(upfrontLength("65536", 1e9), undefined);
  assert.equal(upfrontLength("65537", 1e9), 65537);
  assert.equal(upfrontLength("1073741824 ", 0xffffffff), 1073741824);
  assert.equal(
    upfrontLength("1073741824", 1024 * 1024),
    undefined,
    "over readMaxBytes: connect-es refuses it",
  );
  assert.equal(upfrontLength("x", 1e9), undefined);
});

test("hidden Content-Length and promised(): connect-es' readAllBytes gives the same bytes and errors as with the length", async () => {
  const length = 100_000;
  const whole = Buffer.alloc(length, 3);
  for (const parts of [
    [whole],
    [whole.subarray(0, 10), whole.subarray(10)],
    [whole.subarray(0, length - 1)],
    [whole, Buffer.from([1])],
    [whole.subarray(0, 5000), whole.subarray(5000), Buffer.alloc(7)],
    [],
  ]) {
    const outcome = async (p: Promise<Uint8Array>): Promise<string> =>
      p.then(
        (bytes) => `${bytes.length} bytes`,
        (e: unknown) => `${Code[ConnectError.from(e).code]}: ${ConnectError.from(e).rawMessage}`,
      );
    const header = new Headers({ "content-length": String(length), "x-a": "b" });
    const expected = await outcome(
      readAllBytes(chunksOf(parts), 1e9, header.get("content-length")),
    );
    hideLength(header);
    assert.equal(header.get("content-length"), null);
    assert.equal(header.get("x-a"), "b");
    assert.equal(new Headers(header).get("content-length"), String(length), "a copy has it");
    const got = await outcome(
      readAllBytes(promised(chunksOf(parts), length), 1e9, header.get("content-length")),
    );
    assert.equal(got, expected);
  }
});
