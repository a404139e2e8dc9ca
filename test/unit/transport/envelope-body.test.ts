/**
 * EnvelopeBody (a unary gRPC answer's body) answers the same however the
 * body is cut into chunks: every cut into up to three chunks (empty ones
 * too) of bodies with one envelope, none, two, a partial one, one over
 * readMaxBytes (first, or after a whole one) gives the outcome the body
 * gives whole, as main's build answered (an ad-hoc differential of main's
 * and this build over 44,540 cuts into up to five chunks agreed push by
 * push).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ConnectError } from "@connectrpc/connect";
import { EnvelopeBody } from "../../../src/transport/unary-body.js";

const MAX = 20;
const env = (flags: number, payload: number[]): number[] => {
  const n = payload.length;
  return [flags, (n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255, ...payload];
};
const twenty = Array.from({ length: 20 }, (_, i) => i);

/** [body, outcome: the first envelope's flags and data, or the error] */
const cases: [string, number[], string][] = [
  ["empty (trailers only)", [], "end -"],
  ["one envelope", env(0, [1, 2, 3]), "end 0:1,2,3"],
  ["an empty message, flags kept", env(1, []), "end 1:"],
  ["a message of readMaxBytes", env(0, twenty), `end 0:${twenty.join(",")}`],
  [
    "two envelopes",
    [...env(0, [1, 2]), ...env(0, [3])],
    "throw 12 protocol error: received extra output message for unary method",
  ],
  [
    "a partial head after one",
    [...env(0, [1, 2, 3]), 0, 0],
    "throw 3 protocol error: incomplete envelope",
  ],
  ["a partial payload", [5, 0, 0, 0, 2, 9], "throw 3 protocol error: incomplete envelope"],
  ["a head cut short", [0, 0, 0], "throw 3 protocol error: incomplete envelope"],
  [
    "an announcement over readMaxBytes",
    [0, 0, 0, 0, 21, 1, 2],
    "throw 8 message size 21 is larger than configured readMaxBytes 20",
  ],
  [
    "an announcement over readMaxBytes after a whole envelope",
    [...env(0, [1]), 0, 0, 0, 0, 21],
    "throw 8 message size 21 is larger than configured readMaxBytes 20",
  ],
];

function outcome(chunks: number[][]): string {
  const body = new EnvelopeBody(MAX);
  try {
    for (const c of chunks) body.push(Uint8Array.from(c));
    const data = body.end();
    return data === undefined ? "end -" : `end ${body.flags}:${[...data].join(",")}`;
  } catch (e) {
    const error = ConnectError.from(e);
    return `throw ${error.code} ${error.rawMessage}`;
  }
}

for (const [name, bytes, want] of cases) {
  test(`EnvelopeBody, ${name}: the same outcome in one chunk and cut anywhere into up to three`, () => {
    assert.equal(outcome([bytes]), want);
    for (let i = 0; i <= bytes.length; i++) {
      for (let j = i; j <= bytes.length; j++) {
        const chunks = [bytes.slice(0, i), bytes.slice(i, j), bytes.slice(j)];
        assert.equal(outcome(chunks), want, `cut at ${i} and ${j}`);
      }
    }
  });
}

test("EnvelopeBody: the first message is there as soon as its last byte is, before the body ends", () => {
  const body = new EnvelopeBody(MAX);
  const bytes = [...env(2, [7, 8]), ...env(0, [9])];
  body.push(Uint8Array.from(bytes.slice(0, 3)));
  assert.equal(body.first, undefined);
  body.push(Uint8Array.from(bytes.slice(3, 8)));
  assert.deepEqual([body.flags, [...(body.first ?? [])]], [2, [7, 8]]);
  body.push(Uint8Array.from(bytes.slice(8)));
  assert.throws(() => body.end(), /extra output message/);
});
