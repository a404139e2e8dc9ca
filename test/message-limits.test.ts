/**
 * One message size limit in every location: `serve(def, { readMaxBytes,
 * writeMaxBytes })` is honoured by the framed transport as by HTTP, an
 * oversized message fails its call with ResourceExhausted naming the limit,
 * and the connection and later calls are unharmed.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { remote, type PluginSource } from "../src/index.js";
import { FrameReader, FrameType, encodeFrame } from "../src/transport/framed/frames.js";
import { decode, encode, fixture, kvClient, startNetworkPlugin } from "./helpers.js";

const limits = { FIXTURE_MAX_BYTES: "1024", FIXTURE_WRITE_MAX_BYTES: "512" };
let network: Awaited<ReturnType<typeof startNetworkPlugin>>;
before(async () => {
  network = await startNetworkPlugin("kv", limits);
});
after(() => network.stop());

const locations: Array<[string, () => PluginSource]> = [
  ["subprocess, framed", () => fixture("kv", limits)],
  ["subprocess, HTTP/2", () => ({ ...fixture("kv", limits), transports: ["connect"] })],
  ["remote", () => remote(network.url)],
];

async function failure(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (e) {
    const ce = ConnectError.from(e);
    return `[${Code[ce.code]}] ${ce.rawMessage}`;
  }
  assert.fail("the call succeeded");
}

const seen = new Map<string, string[]>();
for (const [where, source] of locations) {
  test(`oversized messages fail with ResourceExhausted, the connection unharmed (${where})`, async () => {
    const client = kvClient(source());
    await client.start();
    try {
      const kv = client.dispense("kv");
      const request = await failure(kv.put({ key: "big", value: new Uint8Array(4096) }));
      assert.match(
        request,
        /^\[ResourceExhausted\] message size is larger than configured readMaxBytes 1024$/,
      );
      await kv.put({ key: "big", value: new Uint8Array(700) });
      const response = await failure(kv.get({ key: "big" }));
      assert.match(
        response,
        /^\[ResourceExhausted\] message size \d+ is larger than configured writeMaxBytes 512$/,
      );
      // The same connection carries the next calls.
      await kv.put({ key: "small", value: encode("still here") });
      assert.equal(decode((await kv.get({ key: "small" })).value), "still here");
      seen.set(where, [request, response]);
    } finally {
      await client.close();
    }
  });
}

test("every location gives the same answer", () => {
  const answers = [...seen.values()].map((a) => JSON.stringify(a));
  assert.equal(answers.length, locations.length, "every location ran");
  assert.equal(new Set(answers).size, 1, answers.join("\n"));
});

test("a frame over the frame limit is skipped, and the frames after it still arrive", () => {
  const got: Array<[number, number, string]> = [];
  const oversized: Array<[number, number, number]> = [];
  const reader = new FrameReader(
    (type, id, payload) => got.push([type, id, Buffer.from(payload).toString()]),
    16,
    (type, id, length) => oversized.push([type, id, length]),
  );
  const bytes = Buffer.concat([
    encodeFrame(FrameType.message, 1, Buffer.from("small")),
    encodeFrame(FrameType.message, 3, Buffer.alloc(100, 1)),
    encodeFrame(FrameType.message, 5, Buffer.from("after")),
  ]);
  // In chunks of 7 bytes: the oversized payload straddles many of them.
  for (let i = 0; i < bytes.length; i += 7) reader.push(bytes.subarray(i, i + 7));
  assert.deepEqual(oversized, [[FrameType.message, 3, 100]]);
  assert.deepEqual(got, [
    [FrameType.message, 1, "small"],
    [FrameType.message, 5, "after"],
  ]);
});
