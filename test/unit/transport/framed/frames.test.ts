/**
 * src/transport/framed/frames.ts: the framed protocol's codec. Every frame
 * kind round-trips; frames split anywhere (one byte at a time, across
 * chunks) come out whole; a truncated frame is held until its rest arrives;
 * an oversized one is refused before its payload is buffered.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, connect, type Socket } from "node:net";
import {
  DEFAULT_MAX_FRAME_BYTES,
  FRAME_HEADER_BYTES,
  FrameReader,
  FrameType,
  FrameWriter,
  encodeFrame,
  headersToPairs,
  jsonPayload,
  pairsToHeaders,
  parseJson,
} from "../../../../src/transport/framed/frames.js";

interface Seen {
  type: number;
  id: number;
  payload: string;
}

function reader(max?: number): { reader: FrameReader; seen: Seen[] } {
  const seen: Seen[] = [];
  const r = new FrameReader(
    (type, id, payload) => seen.push({ type, id, payload: payload.toString("hex") }),
    max,
  );
  return { reader: r, seen };
}

const KINDS = Object.entries(FrameType);

test("every frame kind round-trips with its call id and payload", () => {
  const { reader: r, seen } = reader();
  const sent: Seen[] = [];
  for (const [i, [name, type]] of KINDS.entries()) {
    const payload = Buffer.from(`${name}:${i}`);
    const id = 0xfffffff0 + i; // ids use all 32 bits
    r.push(encodeFrame(type, id, payload));
    sent.push({ type, id, payload: payload.toString("hex") });
  }
  assert.deepEqual(seen, sent);
  assert.deepEqual(
    KINDS.map(([, t]) => t).sort(),
    [1, 2, 3, 4, 5, 6, 7],
    "the test covers every kind there is",
  );
});

test("the header is 9 bytes: length u32, type u8, call id u32, big-endian", () => {
  const frame = encodeFrame(FrameType.message, 0x01020304, Buffer.from([0xaa, 0xbb]));
  assert.equal(FRAME_HEADER_BYTES, 9);
  assert.deepEqual([...frame], [0, 0, 0, 2, 2, 1, 2, 3, 4, 0xaa, 0xbb]);
  assert.deepEqual([...encodeFrame(FrameType.end, 7)], [0, 0, 0, 0, 3, 0, 0, 0, 7], "no payload");
});

test("frames split at every byte, or many in one chunk, come out whole and in order", () => {
  const frames = KINDS.map(([, type], i) => encodeFrame(type, i + 1, Buffer.alloc(i * 3, i)));
  const stream = Buffer.concat(frames);
  const whole = reader();
  whole.reader.push(stream);
  const bytewise = reader();
  for (const byte of stream) bytewise.reader.push(Buffer.from([byte]));
  assert.equal(whole.seen.length, KINDS.length);
  assert.deepEqual(bytewise.seen, whole.seen);
});

test("a truncated frame is held, not delivered, until the rest arrives", () => {
  const frame = encodeFrame(FrameType.message, 5, Buffer.from("hello"));
  const { reader: r, seen } = reader();
  r.push(frame.subarray(0, 4)); // half a header
  r.push(frame.subarray(4, FRAME_HEADER_BYTES + 2)); // header and part of the payload
  assert.deepEqual(seen, [], "nothing delivered from a partial frame");
  r.push(frame.subarray(FRAME_HEADER_BYTES + 2));
  assert.deepEqual(seen, [
    { type: FrameType.message, id: 5, payload: Buffer.from("hello").toString("hex") },
  ]);
});

test("an oversized frame is refused from its header, with the sizes in the message", () => {
  const { reader: r, seen } = reader(16);
  r.push(encodeFrame(FrameType.message, 1, Buffer.alloc(16))); // exactly the limit passes
  assert.equal(seen.length, 1);
  const header = encodeFrame(FrameType.message, 2, Buffer.alloc(17)).subarray(
    0,
    FRAME_HEADER_BYTES,
  );
  assert.throws(() => r.push(header), {
    message: "frame of 17 bytes exceeds the limit of 16",
  });
  assert.equal(seen.length, 1);
  assert.equal(DEFAULT_MAX_FRAME_BYTES, 256 * 1024 * 1024);
});

test("JSON payloads and header pairs survive the trip; repeated names are kept", () => {
  const open = { p: "/example.kv.v1.KV/Get", t: 250 };
  assert.deepEqual(parseJson(jsonPayload(open)), open);
  assert.equal(parseJson(new Uint8Array()), undefined, "empty payload");
  const headers = new Headers([["x-a", "1"]]);
  headers.append("x-a", "2");
  headers.set("x-b", "3");
  assert.deepEqual(headersToPairs(headers), [
    ["x-a", "1, 2"],
    ["x-b", "3"],
  ]);
  assert.equal(headersToPairs(new Headers()), undefined);
  const back = pairsToHeaders([["x-a", "1"], ["x-a", "2"], ["bad"], 7, ["x-c", 5]]);
  assert.deepEqual([...back], [["x-a", "1, 2"]], "malformed pairs are dropped");
  assert.deepEqual([...pairsToHeaders("not a list")], []);
});

test("FrameWriter sends small and large frames over a real socket, in order", async (t) => {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.after(() => server.close());
  const address = server.address();
  assert.ok(address !== null && typeof address === "object");
  const accepted = once(server, "connection") as Promise<[Socket]>;
  const client = connect(address.port, "127.0.0.1");
  await once(client, "connect");
  const [peer] = await accepted;
  t.after(() => {
    client.destroy();
    peer.destroy();
  });
  const { reader: r, seen } = reader();
  peer.on("data", (chunk: Buffer) => r.push(chunk));
  const writer = new FrameWriter(client);
  const large = Buffer.alloc(200 * 1024, 7); // over the copy limit, and split by the kernel
  writer.frame(FrameType.open, 1, jsonPayload({ p: "/s/m" }));
  writer.frame(FrameType.message, 1, large);
  writer.frame(FrameType.end, 1);
  while (seen.length < 3) await once(peer, "data");
  assert.deepEqual(
    seen.map((s) => [s.type, s.id, s.payload.length / 2]),
    [
      [FrameType.open, 1, jsonPayload({ p: "/s/m" }).length],
      [FrameType.message, 1, large.length],
      [FrameType.end, 1, 0],
    ],
  );
  assert.equal(seen[1]!.payload, large.toString("hex"));
});
