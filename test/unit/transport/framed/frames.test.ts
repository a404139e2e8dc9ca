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
import { Duplex, PassThrough } from "node:stream";
import { create } from "@bufbuild/protobuf";
import { BytesValueSchema } from "@bufbuild/protobuf/wkt";
import {
  DEFAULT_FRAME_TIMEOUT_MS,
  DEFAULT_MAX_FRAME_BYTES,
  FRAME_HEADER_BYTES,
  FrameReader,
  FrameType,
  FrameWriter,
  MessageQueue,
  encodeFrame,
  headersToPairs,
  jsonPayload,
  pairsToHeaders,
  parseJson,
  readFrames,
} from "../../../../src/transport/framed/frames.js";
import { MessageEncoder } from "../../../../src/transport/framed/encode.js";

interface Seen {
  type: number;
  id: number;
  payload: string;
}

function reader(max?: number): { reader: FrameReader; seen: Seen[] } {
  const seen: Seen[] = [];
  const r = new FrameReader(
    (type, id, payload) => seen.push({ type, id, payload: Buffer.from(payload).toString("hex") }),
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
  const ended = once(peer, "end"); // comes whatever the frames hold: the test cannot hang
  const writer = new FrameWriter(client);
  const large = Buffer.alloc(200 * 1024, 7); // over the copy limit, and split by the kernel
  writer.frame(FrameType.open, 1, jsonPayload({ p: "/s/m" }));
  writer.frame(FrameType.message, 1, large);
  writer.frame(FrameType.end, 1);
  await new Promise(setImmediate); // the writer flushes on the next tick
  client.end();
  await ended;
  assert.deepEqual(
    seen.map((s) => [s.type, s.id, s.payload.length / 2]),
    [
      [FrameType.open, 1, jsonPayload({ p: "/s/m" }).length],
      [FrameType.message, 1, large.length],
      [FrameType.end, 1, 0],
    ],
  );
  assert.equal(seen[1]!.payload, large.toString("hex"));
  assert.equal(r.partial, false);
});

/** The reader with an onOversized callback: what it was told, and what it delivered. */
function skippingReader(max: number, maxSkip?: number) {
  const seen: Seen[] = [];
  const oversized: Array<[number, number, number]> = [];
  const r = new FrameReader(
    (type, id, payload) => seen.push({ type, id, payload: Buffer.from(payload).toString("hex") }),
    max,
    (type, id, length) => oversized.push([type, id, length]),
    maxSkip,
  );
  return { reader: r, seen, oversized };
}

const hex = (s: string): string => Buffer.from(s).toString("hex");

test("partial and completed: a frame is partial from its first byte until its last, then counted", () => {
  const { reader: r, seen } = reader();
  assert.equal(r.partial, false);
  assert.equal(r.completed, 0);
  const frame = encodeFrame(FrameType.message, 3, Buffer.from("abcdef"));
  r.push(frame.subarray(0, 1));
  assert.equal(r.partial, true, "one header byte");
  r.push(frame.subarray(1, 12));
  assert.equal(r.partial, true, "header and half the payload");
  assert.equal(r.completed, 0);
  r.push(frame.subarray(12));
  assert.deepEqual(
    seen,
    [{ type: FrameType.message, id: 3, payload: hex("abcdef") }],
    "delivered with its last byte",
  );
  assert.equal(r.partial, false);
  assert.equal(r.completed, 1);
  r.push(Buffer.concat([encodeFrame(FrameType.end, 3), encodeFrame(FrameType.cancel, 4)]));
  assert.equal(r.completed, 3);
  assert.equal(r.partial, false);
});

test("a frame whole in one chunk is handed on without a copy; one split across chunks is joined once", () => {
  const payloads: Uint8Array[] = [];
  const r = new FrameReader((_t, _i, payload) => payloads.push(payload));
  const chunk = encodeFrame(FrameType.message, 1, Buffer.from("zero-copy"));
  r.push(chunk);
  assert.equal(payloads[0]!.buffer, chunk.buffer, "a view of the chunk that arrived");
  assert.equal(payloads[0]!.byteOffset, chunk.byteOffset + FRAME_HEADER_BYTES);
  const split = encodeFrame(FrameType.message, 2, Buffer.alloc(100, 5));
  for (let i = 0; i < split.length; i += 10) r.push(split.subarray(i, i + 10));
  assert.equal(payloads.length, 2);
  assert.deepEqual(payloads[1], new Uint8Array(100).fill(5));
  assert.equal(payloads[1]?.byteLength, 100);
  assert.ok(!(payloads[0] instanceof Buffer), "a plain Uint8Array for protobuf-es");
  assert.ok(!(payloads[1] instanceof Buffer), "a plain Uint8Array for protobuf-es");
});

test("after a large split frame, a small one split in two is delivered with its own last byte", () => {
  const { reader: r, seen } = reader();
  const large = encodeFrame(FrameType.message, 1, Buffer.alloc(1000, 1));
  r.push(large.subarray(0, 500));
  r.push(large.subarray(500));
  assert.equal(seen.length, 1);
  const small = encodeFrame(FrameType.end, 2);
  r.push(small.subarray(0, 4));
  r.push(small.subarray(4));
  assert.deepEqual(seen[1], { type: FrameType.end, id: 2, payload: "" });
  assert.equal(r.partial, false);
});

test("an oversized frame with onOversized: told its type, id and length, its payload skipped, the next frame read", () => {
  const { reader: r, seen, oversized } = skippingReader(16);
  const big = encodeFrame(FrameType.message, 0x0a0b0c0d, Buffer.alloc(40, 0xee));
  const after = encodeFrame(FrameType.end, 9, Buffer.from("ok"));
  // A small frame first, so the oversized one starts mid-chunk.
  r.push(Buffer.concat([encodeFrame(FrameType.open, 1, Buffer.from("o")), big.subarray(0, 20)]));
  assert.deepEqual(oversized, [[FrameType.message, 0x0a0b0c0d, 40]]);
  assert.equal(r.partial, true, "still skipping");
  assert.equal(r.completed, 1);
  r.push(big.subarray(20, 30));
  assert.equal(r.partial, true);
  r.push(Buffer.concat([big.subarray(30), after]));
  assert.deepEqual(seen, [
    { type: FrameType.open, id: 1, payload: hex("o") },
    { type: FrameType.end, id: 9, payload: hex("ok") },
  ]);
  assert.equal(r.partial, false);
  assert.equal(r.completed, 3, "the skipped frame counts once it is over");
});

test("an oversized frame whole in one chunk is skipped in place; one that ends a chunk exactly leaves nothing pending", () => {
  const { reader: r, seen, oversized } = skippingReader(4);
  const big = encodeFrame(FrameType.message, 2, Buffer.alloc(10, 1));
  r.push(Buffer.concat([big, encodeFrame(FrameType.message, 3, Buffer.from("hi")), big]));
  assert.deepEqual(oversized, [
    [FrameType.message, 2, 10],
    [FrameType.message, 2, 10],
  ]);
  assert.deepEqual(seen, [{ type: FrameType.message, id: 3, payload: hex("hi") }]);
  assert.equal(r.partial, false);
  assert.equal(r.completed, 3);
  r.push(encodeFrame(FrameType.end, 4));
  assert.equal(seen.length, 2, "the stream goes on");
});

test("a length prefix beyond maxSkipBytes throws even with onOversized, naming the skip limit", () => {
  const { reader: r, oversized } = skippingReader(16, 100);
  r.push(encodeFrame(FrameType.message, 1, Buffer.alloc(100)));
  assert.deepEqual(oversized, [[FrameType.message, 1, 100]], "exactly the skip limit is skipped");
  const header = Buffer.alloc(FRAME_HEADER_BYTES);
  header.writeUInt32BE(101, 0);
  assert.throws(() => r.push(header), { message: "frame of 101 bytes exceeds the limit of 100" });
  const lying = Buffer.alloc(FRAME_HEADER_BYTES);
  lying.writeUInt32BE(0xffffffff, 0);
  assert.throws(() => skippingReader(16).reader.push(lying), {
    message: `frame of 4294967295 bytes exceeds the limit of ${DEFAULT_MAX_FRAME_BYTES}`,
  });
  assert.throws(() => new FrameReader(() => {}).push(lying), {
    message: `frame of 4294967295 bytes exceeds the limit of ${DEFAULT_MAX_FRAME_BYTES}`,
  });
});

test("pairsToHeaders takes only [name, value] arrays: a two-letter string is not a pair", () => {
  assert.deepEqual([...pairsToHeaders(["ab", ["x-k", "v"], [1, "v"]])], [["x-k", "v"]]);
});

/** A fake socket for readFrames: bytes go in through write(), as a peer's would arrive. */
function fakeSocket(): PassThrough {
  return new PassThrough();
}

test("readFrames (fake socket, mock timers): a frame still incomplete after timeoutMs cuts the peer off with the reason", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const socket = fakeSocket();
  const cut: string[] = [];
  const { reader: r, seen } = reader();
  readFrames(socket, r, 5_000, (why) => cut.push(why));
  const frame = encodeFrame(FrameType.message, 1, Buffer.from("slow"));
  socket.write(frame.subarray(0, 5));
  await new Promise(setImmediate);
  t.mock.timers.tick(4_999);
  assert.deepEqual(cut, []);
  t.mock.timers.tick(1);
  assert.deepEqual(cut, ["a frame was still incomplete 5000 ms after its first byte"]);
  assert.deepEqual(seen, []);
  assert.equal(DEFAULT_FRAME_TIMEOUT_MS, 30_000);
});

test("readFrames (fake socket, mock timers): whole frames, or a finished one, leave no timer behind", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const socket = fakeSocket();
  const cut: string[] = [];
  const { reader: r, seen } = reader();
  readFrames(socket, r, 1_000, (why) => cut.push(why));
  const frame = encodeFrame(FrameType.message, 1, Buffer.from("quick"));
  socket.write(frame);
  socket.write(frame.subarray(0, 3));
  await new Promise(setImmediate);
  socket.write(frame.subarray(3));
  await new Promise(setImmediate);
  t.mock.timers.tick(10_000);
  assert.deepEqual(cut, []);
  assert.equal(seen.length, 2);
  // A partial frame, then the socket closes: the timer goes with it.
  socket.write(frame.subarray(0, 3));
  await new Promise(setImmediate);
  socket.destroy();
  await once(socket, "close");
  t.mock.timers.tick(10_000);
  assert.deepEqual(cut, []);
});

test("readFrames (fake socket): a frame the reader refuses cuts the peer off at once with the reader's message", async () => {
  const socket = fakeSocket();
  const cut: string[] = [];
  readFrames(socket, reader(8).reader, 60_000, (why) => cut.push(why));
  socket.write(encodeFrame(FrameType.message, 1, Buffer.alloc(9)));
  await new Promise(setImmediate);
  assert.deepEqual(cut, ["frame of 9 bytes exceeds the limit of 8"]);
});

test("MessageQueue: items in order, then the end; onFinish told once; pushes after the end are ignored", async () => {
  const q = new MessageQueue<string>();
  const finished: boolean[] = [];
  q.onFinish = (failed) => finished.push(failed);
  q.push("a");
  q.push("b");
  assert.equal(q.queued, 2);
  q.end();
  q.push("late");
  const got: string[] = [];
  for await (const item of q) got.push(item);
  assert.deepEqual(got, ["a", "b"]);
  assert.deepEqual(finished, [false]);
  assert.equal(q.queued, 0);
});

test("MessageQueue: a waiting reader is woken by push, end and fail", async () => {
  const q = new MessageQueue<number>();
  const it = q[Symbol.asyncIterator]();
  const first = it.next();
  q.push(1);
  assert.deepEqual(await first, { done: false, value: 1 });
  const second = it.next();
  q.end();
  assert.deepEqual(await second, { done: true, value: undefined });
  const failing = new MessageQueue<number>();
  const finished: boolean[] = [];
  failing.onFinish = (f) => finished.push(f);
  const pending = failing[Symbol.asyncIterator]().next();
  failing.fail(new Error("peer gone"));
  await assert.rejects(pending, { message: "peer gone" });
  assert.deepEqual(finished, [true]);
});

test("MessageQueue: fail() lets queued items be read first; the first ending wins", async () => {
  const q = new MessageQueue<string>();
  q.push("kept");
  q.fail(new Error("first"));
  q.fail(new Error("second"));
  q.end();
  q.push("dropped");
  const it = q[Symbol.asyncIterator]();
  assert.deepEqual(await it.next(), { done: false, value: "kept" });
  await assert.rejects(it.next(), { message: "first" });
  const ended = new MessageQueue<string>();
  ended.end();
  ended.fail(new Error("too late"));
  assert.deepEqual(await ended[Symbol.asyncIterator]().next(), { done: true, value: undefined });
});

test("MessageQueue: queuedBytes counts the sizes given until each item is read", async () => {
  const q = new MessageQueue<string>();
  q.push("a", 10);
  q.push("b");
  q.push("c", 5);
  assert.equal(q.queuedBytes, 15);
  const it = q[Symbol.asyncIterator]();
  await it.next();
  assert.equal(q.queuedBytes, 5);
  await it.next();
  assert.equal(q.queuedBytes, 5, "an item without a size counts nothing");
  await it.next();
  assert.equal(q.queuedBytes, 0);
});

test("MessageQueue: discard() drops what is unread and the reader gets the error at once", async () => {
  const q = new MessageQueue<string>();
  q.push("x", 100);
  q.push("y", 100);
  q.discard(new Error("call over"));
  assert.equal(q.queued, 0);
  assert.equal(q.queuedBytes, 0);
  await assert.rejects(q[Symbol.asyncIterator]().next(), { message: "call over" });
  const failed = new MessageQueue<string>();
  failed.fail(new Error("original"));
  failed.discard(new Error("later"));
  await assert.rejects(failed[Symbol.asyncIterator]().next(), { message: "original" });
  const waiting = new MessageQueue<string>();
  const next = waiting[Symbol.asyncIterator]().next();
  waiting.discard(new Error("woken"));
  await assert.rejects(next, { message: "woken" });
});

test("MessageQueue: a consumer that stops early abandons the call once and drops the rest", async () => {
  const q = new MessageQueue<string>();
  let abandoned = 0;
  const finished: boolean[] = [];
  q.onAbandon = () => abandoned++;
  q.onFinish = (f) => finished.push(f);
  q.push("a", 1);
  q.push("b", 2);
  for await (const item of q) {
    assert.equal(item, "a");
    break;
  }
  assert.equal(abandoned, 1);
  assert.deepEqual(finished, [false]);
  assert.equal(q.queued, 0);
  assert.equal(q.queuedBytes, 0);
  q.push("c");
  assert.equal(q.queued, 0, "nothing is queued after return()");
  const done = new MessageQueue<string>();
  done.onAbandon = () => abandoned++;
  done.end();
  await done[Symbol.asyncIterator]().return!();
  assert.equal(abandoned, 1, "a queue that had ended is not abandoned");
  const failed = new MessageQueue<string>();
  failed.onAbandon = () => abandoned++;
  failed.fail(new Error("x"));
  await failed[Symbol.asyncIterator]().return!();
  assert.equal(abandoned, 1, "nor one that had failed");
});

test("MessageQueue: thousands of items read while more arrive keep their order and count", async () => {
  const q = new MessageQueue<number>();
  const it = q[Symbol.asyncIterator]();
  let next = 0;
  const got: number[] = [];
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 1500; i++) q.push(next++, 1);
    for (let i = 0; i < 1000; i++) got.push((await it.next()).value as number);
    assert.equal(q.queued, next - got.length);
    assert.equal(q.queuedBytes, next - got.length);
  }
  q.end();
  for (;;) {
    const r = await it.next();
    if (r.done === true) break;
    got.push(r.value);
  }
  assert.deepEqual(
    got,
    Array.from({ length: next }, (_, i) => i),
  );
});

/**
 * A fake writable sink for FrameWriter: it records each write() call and
 * cork()/uncork(), which a real socket hides (the bytes would be the same).
 */
class FakeSink {
  readonly calls: Array<Buffer | "cork" | "uncork"> = [];
  destroyed = false;
  writableEnded = false;
  writableNeedDrain = false;
  write(buf: Buffer): boolean {
    this.calls.push(buf);
    return true;
  }
  cork(): void {
    this.calls.push("cork");
  }
  uncork(): void {
    this.calls.push("uncork");
  }
  get bytes(): Buffer {
    return Buffer.concat(this.calls.filter((c): c is Buffer => typeof c !== "string"));
  }
}

function fakeWriter(): { writer: FrameWriter; sink: FakeSink } {
  const sink = new FakeSink();
  return { writer: new FrameWriter(sink as unknown as Duplex), sink };
}

const tick = (): Promise<void> => new Promise((resolve) => process.nextTick(resolve));

test("FrameWriter (fake sink): small frames of one tick leave in one write, after the tick", async () => {
  const { writer, sink } = fakeWriter();
  const frames = [1, 2, 3].map((id) => encodeFrame(FrameType.message, id, Buffer.from(`m${id}`)));
  for (const id of [1, 2, 3]) writer.frame(FrameType.message, id, Buffer.from(`m${id}`));
  assert.equal(sink.calls.length, 0, "nothing written before the tick");
  await tick();
  assert.equal(sink.calls.length, 1);
  assert.deepEqual(sink.calls[0], Buffer.concat(frames));
  writer.frame(FrameType.end, 4);
  await tick();
  assert.deepEqual(
    sink.calls.slice(1),
    [encodeFrame(FrameType.end, 4)],
    "the next tick is flushed too",
  );
  await tick();
  assert.equal(sink.calls.length, 2, "no empty writes");
});

test("FrameWriter (fake sink): small frames fill shared 64 KiB batches; a full batch leaves as one buffer, and bytes handed to the socket are never overwritten", async () => {
  const { writer, sink } = fakeWriter();
  const expected: Buffer[] = [];
  // 10,000 frames of 9 + 1..200 bytes, across ticks and many batches.
  for (let i = 0; i < 10_000; i++) {
    const payload = Buffer.alloc(1 + (i % 200), i % 251);
    expected.push(encodeFrame(FrameType.message, i + 1, payload));
    writer.frame(FrameType.message, i + 1, payload);
    if (i % 3_000 === 0) await tick();
  }
  await tick();
  // The sink keeps every buffer it was given: a batch reused under a write
  // in flight would show here as changed bytes.
  assert.deepEqual(sink.bytes, Buffer.concat(expected));
  const writes = sink.calls.filter((c): c is Buffer => typeof c !== "string");
  assert.ok(!sink.calls.includes("cork"), "small frames never need a corked writev");
  assert.ok(
    writes.every((w) => w.length <= 64 * 1024),
    "no write larger than a batch",
  );
  assert.ok(
    writes.some((w) => w.length > 64 * 1024 - 256 && w.length <= 64 * 1024),
    "full batches of just under 64 KiB",
  );
});

test("FrameWriter (fake sink): a payload of 16 KiB or more is written as it is, never copied, corked with its header", async () => {
  const { writer, sink } = fakeWriter();
  const large = new Uint8Array(16 * 1024).fill(9);
  writer.frame(FrameType.open, 1, Buffer.from("{}"));
  writer.frame(FrameType.message, 1, large);
  writer.frame(FrameType.end, 1);
  await tick();
  assert.equal(sink.calls[0], "cork");
  assert.equal(sink.calls.at(-1), "uncork");
  const written = sink.calls.filter((c): c is Buffer => typeof c !== "string");
  assert.equal(written.length, 4, "open, header, payload, end");
  assert.equal(written[2]!.buffer, large.buffer, "the caller's bytes, not a copy");
  assert.deepEqual(
    sink.bytes,
    Buffer.concat([
      encodeFrame(FrameType.open, 1, Buffer.from("{}")),
      encodeFrame(FrameType.message, 1, large),
      encodeFrame(FrameType.end, 1),
    ]),
  );
  // After a large frame, small ones are joined again.
  writer.frame(FrameType.message, 2, Buffer.from("a"));
  writer.frame(FrameType.message, 2, Buffer.from("b"));
  await tick();
  assert.equal(sink.calls.length, 6 + 1, "one more write, no cork");
});

test("FrameWriter (fake sink): a payload just under 16 KiB is copied into the joined write", async () => {
  const { writer, sink } = fakeWriter();
  const payload = new Uint8Array(16 * 1024 - 1).fill(3);
  writer.frame(FrameType.message, 1, payload);
  writer.frame(FrameType.end, 1);
  await tick();
  assert.equal(sink.calls.length, 1);
  assert.deepEqual(
    sink.calls[0],
    Buffer.concat([encodeFrame(FrameType.message, 1, payload), encodeFrame(FrameType.end, 1)]),
  );
});

test("FrameWriter (fake sink): 64 KiB queued is written at once, without waiting for the tick", async () => {
  const { writer, sink } = fakeWriter();
  writer.frame(FrameType.message, 1, new Uint8Array(64 * 1024 - FRAME_HEADER_BYTES - 1));
  assert.equal(sink.calls.length, 0, "one byte short of 64 KiB waits");
  writer.frame(FrameType.end, 1, new Uint8Array(0));
  assert.notEqual(sink.calls.length, 0, "64 KiB and more goes now");
  const now = sink.calls.length;
  await tick();
  assert.equal(sink.calls.length, now, "nothing left for the tick");
  const { writer: w2, sink: s2 } = fakeWriter();
  w2.frame(FrameType.message, 1, new Uint8Array(64 * 1024 - FRAME_HEADER_BYTES));
  assert.notEqual(s2.calls.length, 0, "exactly 64 KiB goes now");
  // What was written before does not count towards the next 64 KiB.
  const { writer: w3, sink: s3 } = fakeWriter();
  w3.frame(FrameType.message, 1, new Uint8Array(100));
  await tick();
  assert.equal(s3.calls.length, 1);
  w3.frame(FrameType.message, 2, new Uint8Array(64 * 1024 - FRAME_HEADER_BYTES - 1));
  assert.equal(s3.calls.length, 1, "a fresh count");
  await tick();
  assert.notEqual(s3.calls.length, 1, "written at the tick");
});

test("FrameWriter (fake sink): nothing is written to a destroyed or ended socket, and the queue is dropped", async () => {
  const { writer, sink } = fakeWriter();
  writer.frame(FrameType.message, 1, Buffer.from("x"));
  sink.destroyed = true;
  await tick();
  assert.equal(sink.calls.length, 0);
  sink.destroyed = false;
  writer.flush();
  assert.equal(sink.calls.length, 0, "the dropped frame is not sent later");
  const ended = fakeWriter();
  ended.writer.frame(FrameType.message, 1, Buffer.from("x"));
  ended.sink.writableEnded = true;
  await tick();
  assert.equal(ended.sink.calls.length, 0);
  assert.equal(ended.writer.needDrain, false);
  ended.sink.writableNeedDrain = true;
  assert.equal(ended.writer.needDrain, true);
});

test("MessageQueue: two next() calls waiting at once both get an item, in order", async () => {
  const q = new MessageQueue<string>();
  const it = q[Symbol.asyncIterator]();
  const first = it.next();
  const second = it.next();
  q.push("a");
  q.push("b");
  q.end();
  assert.deepEqual(await Promise.all([first, second]), [
    { done: false, value: "a" },
    { done: false, value: "b" },
  ]);
  assert.deepEqual(await it.next(), { done: true, value: undefined });
});

test("MessageQueue: a next() made after an item arrived does not overtake next() calls already waiting", async () => {
  const q = new MessageQueue<string>();
  const it = q[Symbol.asyncIterator]();
  const first = it.next();
  const second = it.next();
  q.push("a"); // wakes the waiting calls; they have not run yet when the third comes
  const third = it.next();
  q.push("b");
  q.push("c");
  const fourth = it.next();
  q.end();
  assert.deepEqual(
    (await Promise.all([first, second, third, fourth, it.next()])).map((r) =>
      r.done === true ? "done" : r.value,
    ),
    ["a", "b", "c", "done", "done"],
  );
});

test("MessageQueue: return() while next() calls wait answers them done; none is left pending", async () => {
  const q = new MessageQueue<string>();
  let abandoned = 0;
  q.onAbandon = () => abandoned++;
  const it = q[Symbol.asyncIterator]();
  const waiting = [it.next(), it.next()];
  assert.deepEqual(await it.return?.(), { done: true, value: undefined });
  const pending = Symbol("pending");
  const settled = await Promise.race([
    Promise.all(waiting),
    new Promise((r) => setImmediate(r, pending)),
  ]);
  assert.deepEqual(settled, [
    { done: true, value: undefined },
    { done: true, value: undefined },
  ]);
  assert.equal(abandoned, 1);
  q.push("late");
  assert.deepEqual(await it.next(), { done: true, value: undefined });
});

test("a large encoded frame leaves in one buffer with the frames queued before it", async () => {
  // A TLS socket joins a writev's buffers into a new one before encrypting
  // them; one buffer is encrypted as it is. So no writev here.
  const writes: string[] = [];
  const chunks: Buffer[] = [];
  const sink = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, done) {
      writes.push("write");
      chunks.push(chunk);
      done();
    },
    writev(list, done) {
      writes.push(`writev of ${list.length}`);
      for (const { chunk } of list) chunks.push(chunk as Buffer);
      done();
    },
  });
  const writer = new FrameWriter(sink);
  const encoder = new MessageEncoder();
  const value = new Uint8Array(1024 * 1024).fill(9);
  writer.frame(FrameType.open, 3, jsonPayload({ p: "/s/m" }));
  encoder.measure(BytesValueSchema, create(BytesValueSchema, { value }), Infinity);
  encoder.send(writer, FrameType.message, 3);
  writer.frame(FrameType.end, 3);
  await new Promise(setImmediate);
  assert.deepEqual(writes.slice(0, 1), ["write"]);
  assert.ok(!writes.some((w) => w.startsWith("writev")), writes.join(", "));
  const { reader: r, seen } = reader();
  for (const chunk of chunks) r.push(chunk);
  assert.deepEqual(
    seen.map((s) => [s.type, s.id, s.payload.length / 2]),
    [
      [FrameType.open, 3, jsonPayload({ p: "/s/m" }).length],
      [FrameType.message, 3, value.length + 4], // BytesValue: tag, 3-byte length, bytes
      [FrameType.end, 3, 0],
    ],
  );
  assert.equal(r.partial, false);
});
