/**
 * EnvelopeSplitter: the same envelopes however the body is cut into
 * chunks, a body cut mid-envelope seen as partial, an announcement over
 * readMaxBytes refused before anything is allocated for it.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { EnvelopeSplitter, type EnvelopeSink } from "../../../src/transport/envelope-split.js";

function envelope(flags: number, payload: number[]): number[] {
  const n = payload.length;
  return [flags, (n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255, ...payload];
}

class Collect implements EnvelopeSink {
  got: [number, number[]][] = [];
  finished = false;
  constructor(private readonly stopAfter = Infinity) {}
  envelope(flags: number, data: Uint8Array): void {
    this.got.push([flags, [...data]]);
    if (this.got.length >= this.stopAfter) this.finished = true;
  }
}

const big = Array.from({ length: 70_000 }, (_, i) => i & 255);
const body = [
  ...envelope(0, [1, 2, 3]),
  ...envelope(0, []),
  ...envelope(2, [9]),
  ...envelope(0, big),
  ...envelope(1, [7, 7]),
];
const want: [number, number[]][] = [
  [0, [1, 2, 3]],
  [0, []],
  [2, [9]],
  [0, big],
  [1, [7, 7]],
];

describe("EnvelopeSplitter", () => {
  for (const size of [1, 2, 4, 5, 6, 7, 13, 4096, 65_536, body.length]) {
    test(`chunks of ${size} bytes give the same envelopes`, () => {
      const sink = new Collect();
      const split = new EnvelopeSplitter(sink, 1 << 20);
      const bytes = Uint8Array.from(body);
      for (let at = 0; at < bytes.length; at += size) split.push(bytes.subarray(at, at + size));
      assert.deepEqual(sink.got, want);
      assert.equal(split.partial, false);
    });
  }

  test("each payload is a copy: changing the chunk later changes no message", () => {
    const sink = new Collect();
    const chunk = Uint8Array.from(envelope(0, [1, 2, 3]));
    new EnvelopeSplitter(sink, 100).push(chunk);
    chunk.fill(0);
    assert.deepEqual(sink.got, [[0, [1, 2, 3]]]);
  });

  test("a body that stops inside an envelope's head or payload is partial", () => {
    for (const cut of [1, 4, 5, 7]) {
      const sink = new Collect();
      const split = new EnvelopeSplitter(sink, 100);
      split.push(Uint8Array.from(envelope(0, [1, 2, 3, 4])).subarray(0, cut));
      assert.equal(split.partial, true, `cut at ${cut}`);
      assert.deepEqual(sink.got, []);
    }
  });

  for (const [name, chunks] of [
    ["in one chunk", [[0, 0, 0, 0, 11, 1]]],
    [
      "with its head split",
      [
        [0, 0, 0],
        [0, 11, 1],
      ],
    ],
    ["with its head in 1-byte chunks", [[1], [0], [0], [0], [11], [1]]],
    ["after a whole envelope, its head split in three", [[0, 0, 0, 0, 1, 5, 1, 0], [0, 0], [11]]],
  ] as const) {
    test(`an announcement over readMaxBytes ${name} throws ResourceExhausted`, () => {
      const split = new EnvelopeSplitter(new Collect(), 10);
      assert.throws(
        () => {
          for (const c of chunks) split.push(Uint8Array.from(c));
        },
        (e: unknown) =>
          e instanceof ConnectError &&
          e.code === Code.ResourceExhausted &&
          /message size 11 is larger than configured readMaxBytes 10/.test(e.rawMessage),
      );
    });
  }

  test("a splitter that threw for a split head throws again for the next chunk, and hands on nothing of it", () => {
    const sink = new Collect();
    const split = new EnvelopeSplitter(sink, 10);
    split.push(Uint8Array.from([1, 0, 0]));
    assert.throws(() => split.push(Uint8Array.from([0, 11])), ConnectError);
    // Before EnvelopePart, the kept head went on as an empty message here.
    assert.throws(() => split.push(Uint8Array.from([1, 2, 3])), ConnectError);
    assert.deepEqual(sink.got, []);
  });

  test("a finished sink stops the split of the rest of the chunk", () => {
    const sink = new Collect(1);
    new EnvelopeSplitter(sink, 100).push(
      Uint8Array.from([...envelope(0, [1]), ...envelope(0, [2]), ...envelope(0, [3])]),
    );
    assert.deepEqual(sink.got, [[0, [1]]]);
  });
});
